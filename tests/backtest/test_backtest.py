"""A short backtest end to end on the real source (ingestion, features, Feast, XGBoost, Evidently),
its outputs, and a resume after a crash mid-day giving the same bytes as an uninterrupted run.

Small on purpose (CI): 14 days of initial window from the history's start, 4 replayed days
across a weekend, two policies, a light XGBoost (60 rounds). The shared ingestion and features
are computed once for the module and copied into each workspace.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
from datetime import timedelta

import pytest

from airloop.backtest import Workspace, WorkspaceError, prepare_shared, run_backtest
from airloop.core.usecase import load_use_case

USE_CASE = load_use_case("airloop.usecases.flights:USE_CASE")
HISTORY = USE_CASE.day("2025-12-30")
START, END = USE_CASE.day("2026-01-13"), USE_CASE.day("2026-01-16")
POLICIES = ("frozen", "scheduled:2")
LIGHT = {"num_boost_round": 60, "learning_rate": 0.1, "min_child_weight": 20}
OUTPUTS = ("backtest.json", "backtest.csv", "backtest.html")

pytestmark = pytest.mark.slow


def fake_cpu():
    """A CPU clock that ticks once per reading: training figures are then the same in every run
    (real CPU seconds differ between two runs of the same work; they are measured, not replayed)."""
    counter = itertools.count()
    return lambda: float(next(counter))


@pytest.fixture(scope="module")
def settings_module(tmp_path_factory, loaded_source):
    from airloop.core.config import Settings, get_settings

    data = tmp_path_factory.mktemp("backtest-live")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRLOOP_DATA_DIR", str(data))
        mp.setenv("AIRLOOP_SOURCE_URL", loaded_source)
        mp.delenv("AIRLOOP_LAKE_URL", raising=False)
        mp.delenv("AIRLOOP_REGISTRY_URL", raising=False)
        get_settings.cache_clear()
        yield Settings.from_env()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def template(settings_module, tmp_path_factory):
    """A workspace whose shared zone (raw, features, Feast) covers the history's start .. END."""
    workspace = Workspace.open(tmp_path_factory.mktemp("template"), settings_module)
    prepare_shared(workspace, settings_module, HISTORY.range_to(END), log=lambda line: None)
    return workspace


def fresh(template: Workspace, folder) -> Workspace:
    shutil.copytree(template.shared_dir, folder / "shared")
    return Workspace(folder)


@pytest.fixture(scope="module")
def uninterrupted(template, settings_module, tmp_path_factory):
    workspace = fresh(template, tmp_path_factory.mktemp("whole"))
    lines = []
    result = run_backtest(START, END, policies=POLICIES, workspace=workspace, settings=settings_module,
                          train_overrides=LIGHT, cpu_clock=fake_cpu(), log=lines.append)  # fmt: skip
    return result, lines


def test_a_short_backtest_replays_every_day_and_writes_its_report(uninterrupted, settings_module):
    from airloop.registry import ModelRegistry

    result, lines = uninterrupted
    root = result.workspace.root
    assert all((root / name).stat().st_size > 0 for name in OUTPUTS)
    report = json.loads((root / "backtest.json").read_text())
    assert report["start"] == START.key and report["end"] == END.key
    by_name = {p["policy"]: p for p in report["policies"]}
    assert set(by_name) == set(POLICIES)

    frozen, scheduled = by_name["frozen"], by_name["scheduled:2"]
    assert frozen["summary"]["trainings"] == 1 and frozen["summary"]["promotions"] == 1 and frozen["trainings"] == []
    assert [t["ds"] for t in scheduled["trainings"]] == [START.shift(2).key]  # every 2 days from the first
    training = scheduled["trainings"][0]
    assert training["window_end"] == START.shift(1).key and training["window_start"] == HISTORY.key
    assert training["status"] in ("promoted", "refused") and training["cpu_s"] > 0
    for figures in (frozen, scheduled):
        aucs = [w["auc"] for w in figures["weekly"]]
        assert aucs and all(a is None or 0.5 < a < 1 for a in aucs)
        assert sum(w["days"] for w in figures["weekly"]) == len(START.range_to(END))
        assert 0.5 < figures["summary"]["pooled_auc"] < 1
    # Frozen served its initial model every day.
    assert {v for w in frozen["weekly"] for v in w["model_versions"]} == {1}

    # The CSV: one row per policy per week, the same numbers as the JSON.
    csv_lines = (root / "backtest.csv").read_text().splitlines()
    assert csv_lines[0].startswith("policy,week,days,flights,late_share,auc")
    assert len(csv_lines) == 1 + sum(len(p["weekly"]) for p in report["policies"])

    # The HTML stands alone: inline SVG, no script, nothing fetched.
    html = (root / "backtest.html").read_text()
    assert "<svg" in html and "<script" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)

    # The policy's registry holds the replayed instants, not today's.
    registry = ModelRegistry(f"sqlite:///{result.workspace.policy_dir('frozen') / 'registry.db'}")
    (entry,) = registry.history(USE_CASE.model.name)
    assert entry.at == START.cutoff - timedelta(hours=1)
    assert registry.champion_at(USE_CASE.model.name, entry.at - timedelta(seconds=1)) is None
    # Never the live registry.
    assert not (settings_module.data_dir / "registry.db").exists()
    assert any("replay day 4/4" in line and "ETA" in line for line in lines)


def test_a_backtest_killed_mid_day_resumes_with_the_same_bytes(uninterrupted, template, settings_module, tmp_path, monkeypatch):
    """The run crashes on the third day after the scheduled training registered and promoted its
    model (SQL rows written, day not finished); the rerun restores the last finished day's
    checkpoint, redoes the day and writes the same files as the run that was never killed."""
    import airloop.backtest.replay as replay

    whole, _ = uninterrupted
    workspace = fresh(template, tmp_path)
    real_train = replay.train

    def crashing_train(run, day, decision, **kwargs):
        out = real_train(run, day, decision, **kwargs)
        if day == START.shift(2):
            raise KeyboardInterrupt("killed mid-day")
        return out

    monkeypatch.setattr(replay, "train", crashing_train)
    with pytest.raises(KeyboardInterrupt):
        run_backtest(START, END, policies=POLICIES, workspace=workspace, settings=settings_module,
                     train_overrides=LIGHT, cpu_clock=fake_cpu(), log=lambda line: None)  # fmt: skip
    assert not (workspace.root / "backtest.json").exists()
    state = json.loads((workspace.policy_dir("scheduled:2") / "checkpoint" / "state.json").read_text())
    assert [d["ds"] for d in state["days"]] == [START.key, START.shift(1).key]

    monkeypatch.setattr(replay, "train", real_train)
    lines = []
    run_backtest(START, END, policies=POLICIES, workspace=workspace, settings=settings_module,
                 train_overrides=LIGHT, cpu_clock=fake_cpu(), log=lines.append)  # fmt: skip
    assert any("resuming after" in line for line in lines)
    for name in OUTPUTS:
        assert (workspace.root / name).read_bytes() == (whole.workspace.root / name).read_bytes(), name


def test_a_workspace_refuses_another_range_and_the_live_data_folder(uninterrupted, settings_module):
    whole, _ = uninterrupted
    with pytest.raises(WorkspaceError, match="use another workspace"):
        run_backtest(START, END.shift(1), policies=POLICIES, workspace=whole.workspace, settings=settings_module,
                     train_overrides=LIGHT, log=lambda line: None)  # fmt: skip
    with pytest.raises(WorkspaceError, match="live data folder"):
        Workspace.open(settings_module.data_dir, settings_module)
    with pytest.raises(ValueError, match="before it starts"):
        run_backtest(END, START, policies=POLICIES, workspace=whole.workspace, settings=settings_module)


def test_a_range_past_the_source_is_refused_before_any_work(settings_module, tmp_path):
    """The flights' last replayed day has no weather: a backtest to it is refused at once, naming
    the table and the last day it may end on (it used to fail after the whole shared preparation)."""
    from airloop.core.usecase import load_use_case

    use_case = load_use_case(settings_module.use_case)
    workspace = Workspace.open(tmp_path / "past-the-end", settings_module)
    with pytest.raises(ValueError, match=r"runs to 2026-12-29, but the source's weather ends at 2026-12-28T23:00:00\+00:00 "
                                         r"\(replayed\): end it on or before 2026-12-28"):  # fmt: skip
        run_backtest(use_case.day("2026-12-20"), use_case.day("2026-12-29"), policies=POLICIES, workspace=workspace,
                     settings=settings_module, log=lambda line: None)  # fmt: skip
    assert not any(workspace.shared_lake().list_keys("raw/"))

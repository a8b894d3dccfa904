"""A task killed with SIGKILL in the middle of each stage's write, for real.

Each stage runs in a child interpreter (``killpoint.py``) that kills itself at the moment of its
Nth write (before the rename that makes a local file visible, or before the registry's
transaction commits). Before the kill the stage's partition holds a *last good* version that
differs from what the run writes. After the kill: every partition reads whole (manifest and
sha256 checked) and is either the last good bytes or the new ones, never a mix; the registry has
exactly one champion. Then a rerun converges to the bytes of a clean run, rows included.
"""

from __future__ import annotations

import re

import pytest

from faultkit import (
    NEWEST,
    counted_replaces,
    manifest_rows,
    publish_last_good,
    published_view,
    registry_state,
    run_stage,
    snapshot,
    without_random_ids,
)

pytestmark = pytest.mark.slow


def partitions_of(lake, zone: str, ds: str) -> list[str]:
    from airloop.core.storage import MANIFEST_NAME

    suffix = "/" + MANIFEST_NAME
    return sorted(k[: -len(suffix)] for k in lake.list_keys(zone + "/") if k.endswith(suffix) and f"/ds={ds}/" in k + "/")


def check_killed_then_rerun(settings, tmp_path, *, code, match, prefixes, rerun, points, same=lambda files: files):
    """Kill ``code`` at each of ``points`` (indexes into its writes; -1: the last), check, rerun.

    The reference is a clean run of the stage on the seeded inputs (before any fault); ``same``
    maps a partition's files to what must be identical (default: every byte).

    Returns [(write killed at, partitions left new, partitions left last-good, orphan files)].
    """
    from airloop.core.storage import MANIFEST_NAME, open_lake, read_partition_files

    lake = open_lake(settings)
    rows = {p: manifest_rows(lake, p) for p in prefixes}
    for p in prefixes:  # so that the clean run rewrites every file, as the killed runs will
        publish_last_good(lake, p)
    with counted_replaces(match) as counted:
        rerun()  # the clean run (and the writes to kill at)
    reference = {p: same(snapshot(lake, p)) for p in prefixes}
    assert {p: manifest_rows(lake, p) for p in prefixes} == rows
    writes = counted.writes
    assert writes, f"the stage made no write matching {match!r}"
    outcomes = []
    for point in points:
        at = point % len(writes) + 1
        for p in prefixes:
            publish_last_good(lake, p)
        last_good = {p: same(published_view(lake, p)) for p in prefixes}
        child = run_stage(code, tmp_path / "writes.log", at=at, match=match)
        assert child.killed, f"the child was not killed at write {at} ({child.returncode}): {child.stderr[-2000:]}"
        unhashed = lambda names: [re.sub(r"-[0-9a-f]{12}(\.\w+)$", r"\1", n) for n in names]  # noqa: E731
        assert unhashed(child.writes) == unhashed(writes[:at]), "the killed run wrote in another order than the clean run"
        published_before = {w.rsplit("/", 1)[0] for w in writes[: at - 1] if w.endswith(MANIFEST_NAME)}
        new, old, orphans = [], [], 0
        for prefix in prefixes:
            read_partition_files(lake, prefix)  # whole: every listed file there, sha256 matching
            now = same(published_view(lake, prefix))
            orphans += len(snapshot(lake, prefix)) - len(now)
            if now == last_good[prefix]:
                old.append(prefix)
            else:
                assert now == reference[prefix], f"{prefix} is neither the last good nor the new partition"
                new.append(prefix)
        assert set(new) == {p for p in prefixes if any(w.endswith("/" + p) for w in published_before)}, (at, new)
        rerun()
        for p in prefixes:
            again = same(snapshot(lake, p))
            differing = sorted(k for k in again.keys() | reference[p].keys() if again.get(k) != reference[p].get(k))
            assert not differing, f"rerun after a kill at {writes[at - 1]}: {differing}"
        assert {p: manifest_rows(lake, p) for p in prefixes} == rows  # zero rows lost
        outcomes.append((writes[at - 1].split("/lake/", 1)[-1], len(new), len(old), orphans))
    return outcomes


def test_features_killed_while_publishing_a_day(world, tmp_path):
    from airloop.core.storage import open_lake
    from airloop.features import compute_features
    from airloop.core.usecase import load_use_case

    settings, facts = world
    lake = open_lake(settings)
    prefixes = partitions_of(lake, "features", NEWEST)
    assert len(prefixes) >= 2, prefixes
    day = load_use_case(settings.use_case).day(NEWEST)
    code = f"from airloop.features import compute_features\ncompute_features(use_case.day({NEWEST!r}), settings=settings, lake=lake)"
    # The first data file, the first manifest (one view published, the others not), the last manifest.
    outcomes = check_killed_then_rerun(
        settings, tmp_path, code=code, match="/features/", prefixes=prefixes, points=[1, -1],
        rerun=lambda: compute_features(day, settings=settings, lake=lake),
    )  # fmt: skip
    # Killed at the first manifest: no view published yet; at the last: all but the last view.
    assert outcomes[0][1] == 0 and outcomes[-1][1] == len(prefixes) - 1, outcomes
    assert registry_state(settings.registry_url, facts["model"])["champions"] == [facts["champion"]]


def test_scoring_killed_while_publishing_predictions(world, tmp_path):
    from airloop.core.storage import open_lake
    from airloop.core.usecase import load_use_case
    from airloop.scoring import prediction_prefix, score_day

    settings, facts = world
    lake = open_lake(settings)
    day = load_use_case(settings.use_case).day(NEWEST)
    version = facts["champion"]
    call = f"score_day(use_case.day({NEWEST!r}), settings=settings, lake=lake, model_version={version})"
    outcomes = check_killed_then_rerun(
        settings, tmp_path, code="from airloop.scoring import score_day\n" + call, match="/predictions/",
        prefixes=[prediction_prefix(day)], points=[0, -1],
        rerun=lambda: score_day(day, settings=settings, lake=lake, model_version=version),
    )  # fmt: skip
    assert [o[1] for o in outcomes] == [0, 0]


def test_drift_report_killed_while_publishing(world, tmp_path):
    from airloop.core.storage import open_lake
    from airloop.core.usecase import load_use_case
    from airloop.monitoring import monitor_drift
    from airloop.monitoring.lake import report_prefix

    settings, facts = world
    lake = open_lake(settings)
    day = load_use_case(settings.use_case).day(NEWEST)
    code = f"from airloop.monitoring import monitor_drift\nmonitor_drift(use_case.day({NEWEST!r}), settings=settings, lake=lake)"
    outcomes = check_killed_then_rerun(
        settings, tmp_path, code=code, match="/reports/", prefixes=[report_prefix(day, "drift")], points=[0, -1],
        same=without_random_ids,
        rerun=lambda: monitor_drift(day, settings=settings, lake=lake),
    )  # fmt: skip
    assert [o[1] for o in outcomes] == [0, 0]


def test_training_set_file_killed_while_written(world, tmp_path):
    """``airloop training-set`` writes beside the target and renames: a kill leaves the old file."""
    from airloop.cli import main

    settings, facts = world
    out = tmp_path / "training.parquet"
    assert main(["training-set", "2026-01-02", "2026-01-05", "--out", str(out)]) == 0
    last_good = out.read_bytes()
    args = ["training-set", "2026-01-02", "2026-01-09", "--out", str(out), "--force"]
    child = run_stage(f"from airloop.cli import main\nmain({args!r})", tmp_path / "writes.log", at=1, match="training.parquet")
    assert child.killed and child.writes == [str(out)], child.stderr[-2000:]
    assert out.read_bytes() == last_good
    assert main(args) == 0  # the rerun
    rerun = out.read_bytes()
    clean = tmp_path / "clean.parquet"
    assert main([*args[:3], "--out", str(clean)]) == 0
    assert rerun == clean.read_bytes() and rerun != last_good
    import pandas as pd

    assert len(pd.read_parquet(out)) == len(pd.read_parquet(clean)) > len(pd.read_parquet(__import__("io").BytesIO(last_good)))


REGISTER = """
from airloop.registry import ModelRegistry
from airloop.training import load_candidate, register_candidate
registry = ModelRegistry(settings.registry_url)
register_candidate(load_candidate(lake, {prefix!r}), use_case.model, registry=registry, lake=lake, run_id="fault/artifact")
"""


def register_in(data_dir, prefix):
    """Register the seeded candidate as run ``fault/artifact`` in the data folder ``data_dir``."""
    from airloop.core.storage import LocalLake
    from airloop.core.usecase import load_use_case
    from airloop.registry import ModelRegistry
    from airloop.training import load_candidate, register_candidate

    lake, registry = LocalLake(data_dir / "lake"), ModelRegistry(f"sqlite:///{data_dir / 'registry.db'}")
    spec = load_use_case("airloop.usecases.flights:USE_CASE").model
    mv = register_candidate(load_candidate(lake, prefix), spec, registry=registry, lake=lake, run_id="fault/artifact")
    registry.engine.dispose()
    return mv, snapshot(lake, f"models/{spec.name}/v{mv.version}")


def test_model_registration_killed_while_writing_the_artifact(world, fault_world, tmp_path):
    """A kill between the version's reservation and its manifest: the champion serves on, the
    half-registered version is never a candidate, and the rerun registers the same files."""
    import shutil

    from airloop.core.storage import open_lake
    from airloop.registry import ModelRegistry

    settings, facts = world
    lake = open_lake(settings)
    model = facts["model"]
    before = registry_state(settings.registry_url, model)
    code = REGISTER.format(prefix=facts["candidate_prefix"])
    killed = run_stage(code, tmp_path / "writes.log", at=1, match=rf"/models/{model}/v\d+/_manifest\.json$")
    assert killed.killed, killed.stderr[-2000:]
    state = registry_state(settings.registry_url, model)
    assert state["champions"] == [facts["champion"]] and state["history"] == before["history"]
    registry = ModelRegistry(settings.registry_url)
    registry.read_artifact(registry.champion(model), lake)  # the serving model still loads (sha256 checked)
    dangling = registry.versions(model)[-1]
    registry.engine.dispose()
    assert dangling.status == "pending" and not dangling.artifact_uri and not dangling.sha256
    assert not lake.exists(f"models/{model}/v{dangling.version}/_manifest.json")

    rerun, rerun_files = register_in(settings.data_dir, facts["candidate_prefix"])
    clean_dir = tmp_path / "clean"
    shutil.copytree(fault_world[0], clean_dir)
    clean, clean_files = register_in(clean_dir, facts["candidate_prefix"])
    assert rerun.status == "candidate" and rerun.sha256 == clean.sha256
    assert registry_state(settings.registry_url, model)["champions"] == [facts["champion"]]
    # The rerun takes the number the killed attempt reserved: the same version, the same bytes.
    assert (rerun.version, rerun_files) == (clean.version, clean_files)


PROMOTE = """
from datetime import datetime, timezone
from airloop.core.clock import ReplayClock
from airloop.registry import ModelRegistry
registry = ModelRegistry(settings.registry_url, clock=ReplayClock(datetime(2026, 1, 15, 8, tzinfo=timezone.utc)))
registry.promote({model!r}, {version}, reason="fault test", actor="fault", run_id="fault/promote", expected_champion={champion})
"""


def test_promotion_killed_inside_its_transaction(world, tmp_path):
    """SIGKILL after the alias, status and history statements reached the database, before the
    commit: nothing of it is visible, one champion; the rerun promotes exactly once."""
    settings, facts = world
    model, champion, [challenger, _] = facts["model"], facts["champion"], facts["candidates"]
    before = registry_state(settings.registry_url, model)
    code = PROMOTE.format(model=model, version=challenger, champion=champion)
    killed = run_stage(code, tmp_path / "writes.log", on="commit", at=1)
    assert killed.killed and killed.writes == ["Session.commit"], killed.stderr[-2000:]
    assert registry_state(settings.registry_url, model) == before
    run_stage(code, tmp_path / "writes.log")
    after = registry_state(settings.registry_url, model)
    assert after["champion"] == challenger and after["champions"] == [challenger]
    assert after["statuses"][champion] == "retired"
    assert after["history"] == [*before["history"], ("promote", champion, challenger, challenger, "fault/promote")]


def test_ingestion_killed_at_its_commit_point_and_after_it(world, fault_world, tmp_path):
    """The real-SIGKILL case of ingestion (write failures at every point: tests/ingest/test_day_commit.py)."""
    import shutil

    from airloop.core.storage import LocalLake, open_lake
    from airloop.core.usecase import load_use_case
    from airloop.ingest import day_status, ingest_tables

    settings, facts = world
    lake = open_lake(settings)
    use_case = load_use_case(settings.use_case)
    day, tables = use_case.day("2026-01-15"), list(use_case.tables)
    history = {k: lake.read_bytes(k) for k in lake.list_keys("raw/")}
    shutil.copytree(fault_world[0] / "lake", tmp_path / "clean-lake")  # a clean run on the same history
    ingest_tables(day, settings.with_overrides(lake_url=(tmp_path / "clean-lake").as_uri()), tables)
    reference = {k: v for k, v in snapshot(LocalLake(tmp_path / "clean-lake"), "").items()
                 if f"ds={day.key}" in k and not k.startswith("_ingest/")}  # fmt: skip
    code = f"from airloop.ingest import ingest_tables\ningest_tables(use_case.day('{day.key}'), settings, {tables!r})"
    outcomes = []
    for at, match in ((1, r"/_commit\.json$"), (2, rf"/raw/\w+/ds={day.key}/_manifest\.json$")):
        killed = run_stage(code, tmp_path / "writes.log", at=at, match=match)
        assert killed.killed, killed.stderr[-2000:]
        problems = day_status(lake, day.key, tables)
        outcomes.append(problems)
        assert {k: lake.read_bytes(k) for k in history} == history  # every earlier day untouched
        ingest_tables(day, settings, tables)  # the rerun (Airflow's retry) rolls forward or redoes
        published = {k: v for k, v in snapshot(lake, "").items() if f"ds={day.key}" in k and not k.startswith("_ingest/")}
        assert published == reference and day_status(lake, day.key, tables) == []
        for key in [k for k in lake.list_keys("") if f"ds={day.key}" in k]:
            lake.delete([key])
        shutil.rmtree(settings.data_dir / "lake" / "_ingest", ignore_errors=True)
    assert outcomes[0] == [] and any("not fully applied" in p for p in outcomes[1]), outcomes

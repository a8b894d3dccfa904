"""``airloop seed`` (what ``make demo`` runs before Airflow starts): the history the first DAG runs
read, made with the stages' own calls on the real source; a second run finds it in place."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_seed_makes_the_history_the_dags_read_then_finds_it_in_place(settings, lake):
    from airloop.core.storage import partition_prefix, read_manifest
    from airloop.core.usecase import load_use_case
    from airloop.loop.seed import seed_history
    from airloop.monitoring import MonitoringStore, predictions_prefix
    from airloop.registry import ModelRegistry
    from airloop.scoring import upstream_partitions, view_prefixes

    use_case = load_use_case(settings.use_case)
    newest = use_case.day("2026-01-14")
    lines = []
    report = seed_history(settings, newest=newest, training_days=14, scored_days=2, log=lines.append)

    registry = ModelRegistry(settings.registry_url)
    (version,) = registry.versions(use_case.model.name)  # trained once, on the 14 days before the scored days
    assert report.trained and (version.window_start.isoformat(), version.window_end.isoformat()) == ("2025-12-30", "2026-01-12")
    assert any("[seed] training on 2025-12-30 .. 2026-01-12 (the model serving from 2026-01-13)" in line for line in lines)
    # Raw days from the data's first day (progress per day); features for every lookup up to tomorrow's.
    assert report.ingested == 16 and read_manifest(lake, partition_prefix("raw", "flights", "2025-12-30"))
    assert any(line.startswith("[seed] ingested 2026-01-14 (16/16)") for line in lines)
    prefixes = view_prefixes(settings, use_case, lake=lake)
    assert all(read_manifest(lake, p) for p in upstream_partitions(newest.shift(1), use_case, prefixes))
    champion = registry.champion(use_case.model.name)
    if champion is None:  # the gate is not bypassed: the refusal is said, nothing is scored
        assert report.refusal.startswith(f"v{version.version} refused: kept baseline")
        assert version.status == "rejected" and report.scored == report.monitored == 0
        assert read_manifest(lake, predictions_prefix(newest)) is None
    else:  # registered when its window closed: it serves the scored days and tonight's run
        assert report.champion == champion.version == version.version
        for day in (newest.shift(-1), newest, newest.shift(1)):
            assert registry.champion_at(use_case.model.name, day.cutoff).version == champion.version, day
        for day in (newest.shift(-1), newest):
            assert read_manifest(lake, predictions_prefix(day))["model"]["version"] == champion.version
        store = MonitoringStore(settings.registry_url)
        assert {str(r["ds"]) for r in store.rows(kind="drift")} >= {"2026-01-13", "2026-01-14"}

    if champion is not None:  # a second run finds everything in place
        again = seed_history(settings, newest=newest, training_days=14, scored_days=2, log=lines.append)
        assert (again.ingested, again.features, again.trained, again.scored, again.monitored) == (0, 0, False, 0, 0)
        assert again.champion == champion.version


def test_seed_replays_the_weekly_training_and_scores_each_day_with_its_champion(settings, lake):
    """A range in the middle of the data, several trainings: each goes through the gate against the
    champion of its day (or the baseline before the first), is registered when its window closed,
    and each scored day names the champion that served it; days before any champion are not scored."""
    from airloop.core.storage import read_manifest
    from airloop.core.usecase import load_use_case
    from airloop.loop.seed import seed_history
    from airloop.monitoring import MonitoringStore, predictions_prefix
    from airloop.registry import ModelRegistry

    use_case = load_use_case(settings.use_case)
    newest = use_case.day("2026-02-20")
    report = seed_history(settings, newest=newest, training_days=14, scored_days=10, retrain_every=4, log=lambda _: None)

    registry = ModelRegistry(settings.registry_url)
    versions = sorted(registry.versions(use_case.model.name), key=lambda v: v.version)
    # Trainings at 2026-02-11, 02-15 and 02-19, each on the 14 days before.
    assert [(v.window_start.isoformat(), v.window_end.isoformat()) for v in versions] == [
        ("2026-01-28", "2026-02-10"), ("2026-02-01", "2026-02-14"), ("2026-02-05", "2026-02-18")]
    assert len(report.trainings) == 3
    for v in versions:  # registered at the instant its window closed
        assert v.created_at == use_case.day(v.window_end).end
    store = MonitoringStore(settings.registry_url)
    drift_days = {str(r["ds"]) for r in store.rows(kind="drift")}
    for day in use_case.day("2026-02-11").range_to(newest):
        served = registry.champion_at(use_case.model.name, day.cutoff)
        manifest = read_manifest(lake, predictions_prefix(day))
        if served is None:
            assert manifest is None and str(day.key) not in drift_days, day
        else:
            assert manifest["model"]["version"] == served.version and str(day.key) in drift_days, day
    assert report.scored == sum(read_manifest(lake, predictions_prefix(d)) is not None
                                for d in use_case.day("2026-02-11").range_to(newest))  # fmt: skip
    # Evidently's HTML reports for the newest 7 days (the default), the numbers only before them.
    reports = {str(r["ds"]): r["report_prefix"] for r in store.rows(kind="drift")}
    newest_week = {d.key for d in newest.shift(-6).range_to(newest)}
    assert reports and all((prefix is not None) == (ds in newest_week) for ds, prefix in reports.items()), reports


@pytest.mark.parametrize("field, value", [("scored_days", 0), ("retrain_every", 0)])
def test_seed_refuses_empty_ranges(settings, field, value):
    from airloop.core.usecase import load_use_case
    from airloop.loop.seed import seed_history

    use_case = load_use_case(settings.use_case)
    with pytest.raises(ValueError, match=f"{field} must be at least 1 day, got 0"):
        seed_history(settings, newest=use_case.day("2026-02-20"), **{field: value}, log=lambda _: None)

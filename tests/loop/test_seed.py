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
    assert any("[seed] training the first model on 2025-12-30 .. 2026-01-12" in line for line in lines)
    # Raw days from the data's first day (progress per day); features for every lookup up to tomorrow's.
    assert report.ingested == 16 and read_manifest(lake, partition_prefix("raw", "flights", "2025-12-30"))
    assert any(line.startswith("[seed] ingested 2026-01-14 (16/16)") for line in lines)
    prefixes = view_prefixes(settings, use_case, lake=lake)
    assert all(read_manifest(lake, p) for p in upstream_partitions(newest.shift(1), use_case, prefixes))
    champion = registry.champion(use_case.model.name)
    if champion is None:  # the gate is not bypassed: the refusal is said, nothing is scored
        assert report.refusal.startswith(f"the gate kept no champion: v{version.version} refused")
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

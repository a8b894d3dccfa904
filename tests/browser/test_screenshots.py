"""The README's pictures: the grid, Model versions and Monitoring, each checked, then captured whole.

A real Airflow (scheduler, dag-processor, api-server, triggerer: the e2e harness) backfills three
days of ``ingest_flights`` from the real source, so the grid is the scheduler's own work. The
registry and the monitoring store are seeded with the library (two promoted model versions, a
week of Evidently drift reports on synthetic model inputs with one drifted day, performance where
outcomes are in), like ``test_ui_browser.py``. Chromium logs in as a user does; each page is
asserted on (every task of every backfilled run in the grid, the champion's row, the chart's
points and the retraining day) before it is captured.

Captures are whole pages (``full_page=True``): the Airflow UI scrolls inside its panels and the
plugin pages inside an iframe, so the viewport is first grown to the height of what scrolls.
They go to a temporary folder, or to ``AIRLOOP_SCREENSHOTS_DIR`` when set: ``make screenshots``
refreshes ``docs/screenshots/`` that way.

Run alone on shared machines: ``flock /tmp/airloop-e2e.lock pytest tests/browser/test_screenshots.py``.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import date
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from harness import AirflowStack  # noqa: E402
from test_ui_browser import frame, login  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
START_TIMEOUT_S = float(os.environ.get("AIRLOOP_E2E_START_TIMEOUT_S", "420"))
DAG_ID = "ingest_flights"
DAYS = ["2026-03-07", "2026-03-08", "2026-03-09"]
TASKS = ["extract_flights", "extract_weather", "contract_flights", "contract_weather", "publish_day"]
MONITORED = ["2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05", "2026-03-06", "2026-03-07", "2026-03-08"]
DRIFTED = "2026-03-05"
CHAMPION_AUC = 0.841  # about what the synthetic days score, so the AUC drops look like real ones
VIEWPORT = {"width": 1280, "height": 800}
MAX_HEIGHT = 4000  # px: a whole page, within reason for a README picture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (scripts/ensure-chromium.sh)"),
]


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": VIEWPORT}


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where the pictures go: ``AIRLOOP_SCREENSHOTS_DIR`` (``make screenshots``), else a temp folder."""
    target = os.environ.get("AIRLOOP_SCREENSHOTS_DIR")
    folder = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def seed_models_and_monitoring(data_dir: Path) -> None:
    """Two promoted versions; a monitored week with one drifted day and the retraining it fired."""
    import airloop.monitoring as monitor
    from airloop.core.config import Settings
    from airloop.core.dates import LogicalDay
    from airloop.core.storage import open_lake
    from airloop.registry import ModelRegistry

    settings = Settings(data_dir=data_dir, lake_url=(data_dir / "lake").as_uri(),
                        registry_url=f"sqlite:///{data_dir / 'registry.db'}", source_url="sqlite://")  # fmt: skip
    registry = ModelRegistry(settings.registry_url)
    for v, auc, brier, end in ((1, 0.823, 0.162, date(2026, 2, 1)), (2, CHAMPION_AUC, 0.158, date(2026, 3, 1))):
        registry.reserve_version("flight_delay_xgb", feature_service="flight_delay_v1", feature_columns=["distance"],
                                 window_start=date(2026, 1, 1), window_end=end, fingerprint=f"fp{v}", params={},
                                 metrics={"roc_auc": auc, "brier": brier}, code_version="screenshots", device="cpu",
                                 training_rows=21_000 * v)  # fmt: skip
        registry.finalize_version("flight_delay_xgb", v, artifact_uri="x", sha256="0" * 64, reference_uri=None)
    registry.promote("flight_delay_xgb", 1, reason="first model beats the baseline", actor="gate")
    registry.promote("flight_delay_xgb", 2, reason="AUC +0.018 over v1", actor="gate")
    lake, store = open_lake(settings), monitor.MonitoringStore(settings.registry_url)
    reference = frame(2000, 1)
    for ds in MONITORED:
        day = LogicalDay.parse(ds)
        drift = monitor.drift_report(day, reference, frame(800, int(ds[-2:]), ds == DRIFTED), model_version=2)
        store.upsert(drift, report_prefix=monitor.publish_report(lake, drift), measured_on=ds)
        if ds != MONITORED[-1]:  # outcomes arrive a day later: the newest day awaits them
            perf = monitor.performance_report(day, frame(800, 100 + int(ds[-2:])), reference_auc=CHAMPION_AUC, model_version=2)
            store.upsert(perf, report_prefix=monitor.publish_report(lake, perf), measured_on=ds)
    store.record_event(DRIFTED, model_version=2, window_start="2026-02-05", window_end="2026-03-04",
                       evidence={"drift_share": 0.75})  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory, loaded_source):
    """A real Airflow that has backfilled DAYS of ingest_flights, with models and monitoring seeded."""
    root = tmp_path_factory.mktemp("screenshot-stack")
    stack = AirflowStack(root / "home", root / "data", extra_env={"AIRLOOP_SOURCE_URL": loaded_source})
    try:
        stack.start(wait_for=[DAG_ID], timeout=START_TIMEOUT_S)
        seed_models_and_monitoring(stack.data_dir)
        stack.unpause(DAG_ID)
        backfill = stack.backfill(DAG_ID, DAYS[0], DAYS[-1])
        runs = stack.wait_for_runs(DAG_ID, len(DAYS), timeout=900, where=lambda r: r.partition_key in DAYS)
        for run in runs:
            assert run.state == "success", stack.explain(DAG_ID, run)
        stack.wait_for_backfill(backfill, timeout=300)  # else the grid shows "Backfill in progress"
        stack.backfilled = {r.partition_key: r.run_id for r in runs}
        yield stack
    finally:
        stack.stop(artifacts=ROOT / "test-artifacts" / "browser" / "screenshot-logs")


# How far anything on the page (or in its iframes) scrolls beyond what is shown.
_HIDDEN_HEIGHT = """() => Math.max(0, document.scrollingElement.scrollHeight - window.innerHeight,
    ...Array.from(document.querySelectorAll('*')).filter(e => /auto|scroll/.test(getComputedStyle(e).overflowY))
        .map(e => e.scrollHeight - e.clientHeight))"""


def capture_whole(page, path: Path) -> None:
    """Grow the viewport until nothing scrolls (at most MAX_HEIGHT), then capture the full page."""
    for _ in range(3):  # a taller page can lay out (and lazily render) more
        hidden = max(f.evaluate(_HIDDEN_HEIGHT) for f in page.frames)
        if hidden <= 2:
            break
        height = min(MAX_HEIGHT, page.viewport_size["height"] + hidden)
        page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
        page.wait_for_timeout(800)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(VIEWPORT)


def test_the_grid_models_and_monitoring_pages_as_the_readme_shows_them(stack, page, shots):
    base = stack.base_url
    login(page, base)

    # The grid: every task of every backfilled run has its cell, and the scheduler says success.
    page.goto(f"{base}/dags/{DAG_ID}")
    for ds, run_id in stack.backfilled.items():
        for task in TASKS:
            cell = page.locator(f"[data-testid='grid-{run_id}-{task}']")
            cell.wait_for(timeout=60_000)
            assert cell.get_attribute("href").endswith(f"/runs/{run_id}/tasks/{task}")
        assert {ti["task_id"]: ti["state"] for ti in stack.task_instances(DAG_ID, run_id)} == dict.fromkeys(TASKS, "success")
    assert page.get_by_text("Failed Runs").is_visible()
    assert page.get_by_text("Backfill in progress").count() == 0
    # The grid panel starts at 20% of the width (two runs): widen it by one step (10%) so every run shows.
    page.locator("[data-resize-handle]").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(800)
    capture_whole(page, shots / "grid.png")

    # Model versions, inside the Airflow UI (Plugins > Airloop): the champion's row and its metrics.
    page.goto(f"{base}/plugin/airloop-models")
    models = page.frame_locator("iframe")
    models.locator("table.versions").wait_for(timeout=60_000)
    assert "champion: v2" in models.locator("main").inner_text()
    champion_row = models.locator("table.versions tr", has=models.locator(".badge.champion"))
    assert champion_row.count() == 1
    cells = champion_row.locator("td").all_inner_texts()
    assert cells[0].startswith("v2") and cells[1] == "champion" and cells[3:6] == ["42000", "0.841", "0.158"], cells
    assert "AUC +0.018 over v1" in models.locator("main").inner_text()
    capture_whole(page, shots / "model-versions.png")

    # Monitoring: a point per monitored day, the drifted day flagged, the newest day awaiting outcomes.
    page.goto(f"{base}/plugin/airloop-monitoring")
    monitoring = page.frame_locator("iframe")
    monitoring.locator("svg.trend").wait_for(timeout=60_000)
    assert monitoring.locator("svg.trend circle.point-drift").count() == len(MONITORED)
    assert monitoring.locator("svg.trend circle.point-performance").count() == len(MONITORED) - 1
    assert "retraining triggered" in monitoring.locator(f"tr#ds-{DRIFTED}").inner_text()
    assert "awaiting outcomes" in monitoring.locator(f"tr#ds-{MONITORED[-1]}").inner_text()
    capture_whole(page, shots / "monitoring.png")

    for name in ("grid.png", "model-versions.png", "monitoring.png"):
        picture = (shots / name).read_bytes()
        assert picture[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(picture[16:20], "big"), int.from_bytes(picture[20:24], "big")
        assert width == VIEWPORT["width"] and VIEWPORT["height"] <= height <= MAX_HEIGHT, (name, width, height)

"""The Airloop pages in a real browser, inside a real Airflow api-server (with the plugin).

The api-server runs on a free port with a fresh metadata DB (the e2e harness's environment); the
lake and registry it reads are filled with real monitoring results (Evidently reports of
synthetic drifted and undrifted days) and registered model versions. Chromium logs in through
Airflow's own login page, opens the plugin pages from the navigation, follows a link to an
Evidently report and checks what it shows. Screenshots go to ``test-artifacts/browser/``.
Anonymous access to every plugin URL is refused.

Run alone on shared machines: ``flock /tmp/airloop-e2e.lock pytest -m browser``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from harness import ADMIN_PASSWORD, ADMIN_USER, AirflowStack, StackError, tail  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "test-artifacts" / "browser"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (scripts/ensure-chromium.sh)"),
]


def frame(n, seed, shift=False):
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({"distance": rng.normal(2500 if shift else 1000, 300, n),
                        "sched_hour": rng.integers(15 if shift else 5, 23, n),
                        "carrier": rng.choice(["AA", "DL", "UA"], n)})  # fmt: skip
    out["score"] = rng.uniform(0.3 if shift else 0.0, 1.0, n)
    out["is_delayed"] = (rng.uniform(size=n) < out["score"]).astype(int)
    return out


def seed_data(data_dir: Path) -> None:
    """Two model versions with promotions; three monitored days, one drifted, one report lost."""
    import airloop.monitoring as monitor
    from airloop.core.dates import LogicalDay
    from airloop.core.config import Settings
    from airloop.registry import ModelRegistry
    from airloop.core.storage import open_lake

    settings = Settings(data_dir=data_dir, lake_url=(data_dir / "lake").as_uri(),
                        registry_url=f"sqlite:///{data_dir / 'registry.db'}", source_url="sqlite://")  # fmt: skip
    registry = ModelRegistry(settings.registry_url)
    for v, auc in ((1, 0.701), (2, 0.722)):
        registry.reserve_version("flight_delay_xgb", feature_service="flight_delay_v1", feature_columns=["distance"],
                                 window_start=date(2026, 1, 1), window_end=date(2026, 3, 31), fingerprint=f"fp{v}",
                                 params={}, metrics={"roc_auc": auc}, code_version="test", device="cpu")  # fmt: skip
        registry.finalize_version("flight_delay_xgb", v, artifact_uri="x", sha256="0" * 64, reference_uri=None)
    registry.promote("flight_delay_xgb", 1, reason="first model beats the baseline", actor="gate")
    registry.promote("flight_delay_xgb", 2, reason="AUC +0.021 over v1", actor="gate")
    lake, store = open_lake(settings), monitor.MonitoringStore(settings.registry_url)
    reference = frame(2000, 1)
    for ds, shift in (("2026-03-02", False), ("2026-03-03", True), ("2026-03-04", False)):
        result = monitor.drift_report(LogicalDay.parse(ds), reference, frame(800, int(ds[-2:]), shift), model_version=2)
        store.upsert(result, report_prefix=monitor.publish_report(lake, result), measured_on=ds)
    perf = monitor.performance_report(LogicalDay.parse("2026-03-02"), frame(800, 7), reference_auc=0.75, model_version=2)
    store.upsert(perf, report_prefix=monitor.publish_report(lake, perf), measured_on="2026-03-03")
    store.upsert(monitor.awaiting_outcomes(LogicalDay.parse("2026-03-03"), "outcomes of 2026-03-03 are not ingested yet", 2))
    store.record_event("2026-03-03", model_version=2, window_start="2026-02-03", window_end="2026-03-02",
                       evidence={"drift_share": 0.75})  # fmt: skip
    lake.delete(lake.list_keys("reports/ds=2026-03-04/drift/"))


@pytest.fixture(scope="module")
def api_server(tmp_path_factory):
    """A real ``airflow api-server`` (plugins folder = the repository's) on a free port."""
    root = tmp_path_factory.mktemp("browser-stack")
    stack = AirflowStack(root / "home", root / "data")
    stack.home.mkdir(parents=True)
    stack.data_dir.mkdir(parents=True)
    shutil.copy(ROOT / "airflow.cfg", stack.home / "airflow.cfg")
    (stack.home / "passwords.json").write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD}))
    deadline = time.monotonic() + 300
    stack._run_step(["airflow", "db", "migrate"], "db-migrate", deadline)
    seed_data(stack.data_dir)
    log = open(stack.home / "api-server.log", "wb")
    proc = subprocess.Popen(["airflow", "api-server"], cwd=stack.home, env=stack.env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    log.close()
    stack.processes["api-server"] = proc
    try:
        stack._wait(stack._api_ready, deadline, "the api-server to answer", "api-server")
        yield stack
    except StackError:
        raise
    finally:
        stack.stop(artifacts=SHOTS / "logs")
        if proc.returncode not in (None, 0, -15):
            print(tail(stack.home / "api-server.log"))


PLUGIN_URLS = ["/airloop/", "/airloop/models", "/airloop/monitoring", "/airloop/api/monitoring",
               "/airloop/reports/2026-03-03/drift"]  # fmt: skip


@pytest.mark.parametrize("path", PLUGIN_URLS)
def test_anonymous_requests_to_plugin_urls_are_refused(api_server, path):
    response = httpx.get(api_server.base_url + path, timeout=30)
    assert response.status_code in (401, 403), response.text[:300]
    assert "drift" not in response.text.lower() or "not authenticated" in response.text.lower()


def test_anonymous_browser_gets_no_page(api_server, page):
    response = page.goto(api_server.base_url + "/airloop/monitoring")
    assert response.status in (401, 403)
    assert "Monitoring" not in page.content()


def login(page, base_url: str) -> None:
    page.goto(base_url + "/")
    page.wait_for_url(re.compile(r".*/auth/login.*"), timeout=60_000)
    page.locator("input[name='username']").fill(ADMIN_USER)
    page.locator("input[name='password']").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=60_000)


def test_logged_in_user_sees_pages_chart_and_reports(api_server, page):
    SHOTS.mkdir(parents=True, exist_ok=True)
    base = api_server.base_url
    login(page, base)
    page.screenshot(path=str(SHOTS / "01-airflow-home.png"))

    # The nav entry renders the Monitoring page inside the Airflow UI (url_route -> /plugin/...).
    page.goto(base + "/plugin/airloop-monitoring")
    frame = page.frame_locator("iframe")
    frame.locator("svg.trend").wait_for(timeout=60_000)
    assert frame.locator("svg.trend circle.point-drift").count() == 3
    assert frame.locator("svg.trend circle.point-performance").count() == 1
    row_03 = frame.locator("tr#ds-2026-03-03")
    assert "retraining triggered" in row_03.inner_text() and "awaiting outcomes" in row_03.inner_text()
    assert "drift report missing" in frame.locator("tr#ds-2026-03-04").inner_text()
    page.screenshot(path=str(SHOTS / "02-monitoring-in-airflow-ui.png"), full_page=True)

    page.goto(base + "/plugin/airloop-models")
    models = page.frame_locator("iframe")
    models.locator("table.versions").wait_for(timeout=60_000)
    text = models.locator("main").inner_text()
    assert "champion: v2" in text and "AUC +0.021 over v1" in text
    page.screenshot(path=str(SHOTS / "03-models-in-airflow-ui.png"), full_page=True)

    # Open the drift report of the drifted day from its link (a new tab: target=_blank).
    page.goto(base + "/airloop/monitoring")
    with page.context.expect_page() as new_tab:
        page.locator("tr#ds-2026-03-03 a", has_text="drift report").click()
    report = new_tab.value
    report.wait_for_load_state("load")
    assert report.url.endswith("/airloop/reports/2026-03-03/drift")
    report.get_by_text("distance", exact=False).first.wait_for(timeout=60_000)
    body = report.locator("body").inner_text()
    # What Evidently computed for the drifted day: 3 of the 4 monitored columns moved.
    assert "Drift is detected for 75.0% of columns (3 out of 4)" in body
    assert "distance" in body and "sched_hour" in body
    report.screenshot(path=str(SHOTS / "04-evidently-drift-report.png"), full_page=False)

    missing = page.goto(base + "/airloop/reports/2026-03-04/drift")
    assert missing.status == 404
    assert "is not in the lake" in page.locator("main").inner_text()
    page.screenshot(path=str(SHOTS / "05-missing-report.png"))

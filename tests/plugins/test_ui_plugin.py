"""The Airloop UI plugin: registration, authentication of its app, and the pages' real content.

Authentication is Airflow's own: a migrated metadata DB in a temp dir (for the revoked-token
check), the simple auth manager, and a JWT it signed. No dependency is overridden.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "airloop-ui-plugin-test-secret-" * 4


@pytest.fixture(scope="module")
def airflow_auth(tmp_path_factory):
    """A migrated metadata DB and an initialized simple auth manager; yields an admin JWT."""
    home = tmp_path_factory.mktemp("airflow-home")
    conn = f"sqlite:///{home / 'airflow.db'}"
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn,
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}  # fmt: skip
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    saved = {k: os.environ.get(k) for k in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__API_AUTH__JWT_SECRET")}
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = conn
    os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = JWT_SECRET
    from airflow import settings
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    settings.configure_vars()
    settings.reconfigure_orm()
    manager = create_auth_manager()
    manager.init()
    yield manager.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    settings.configure_vars()
    settings.reconfigure_orm()


@pytest.fixture
def client():
    from fastapi.testclient import TestClient

    from airloop_plugins.ui.app import create_app

    return TestClient(create_app())


def test_plugin_registers_app_views_and_report_link():
    from airloop_plugins.operators.monitoring import EvidentlyReportLink
    from airloop_plugins.ui.plugin import AirloopUIPlugin

    (app_spec,) = AirloopUIPlugin.fastapi_apps
    assert app_spec["url_prefix"] == "/airloop"
    routes = {v["url_route"]: v["href"] for v in AirloopUIPlugin.external_views}
    assert routes == {"airloop-models": "/airloop/models", "airloop-monitoring": "/airloop/monitoring",
                      "airloop-backtest": "/airloop/backtest", "airloop-backfills": "/airloop/backfills"}  # fmt: skip
    assert all(v["destination"] == "nav" and v["category"] == "Airloop" for v in AirloopUIPlugin.external_views)
    assert any(isinstance(link, EvidentlyReportLink) for link in AirloopUIPlugin.operator_extra_links)


def test_plugin_file_does_not_import_heavy_libraries():
    code = ("import sys; import airloop_plugins.ui.plugin; "
            "print(sorted(m for m in ('pandas','evidently','pyarrow','sklearn') if m in sys.modules))")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'include'}:{ROOT / 'plugins'}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("path", ["/", "/models", "/monitoring", "/api/monitoring", "/reports/2026-03-02/drift",
                                  "/models/flight_delay_xgb/versions/1/card", "/models/flight_delay_xgb/versions/1/card.md"])
def test_anonymous_requests_are_refused(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert "Not authenticated" in response.text
    assert "Airloop" not in response.text


SAMPLE_PATH_VALUES = {"ds": "2026-03-02", "kind": "drift", "model_name": "flight_delay_xgb", "version": "1"}


def every_request(app) -> list[tuple[str, str]]:
    """(method, concrete path) for every route the app answers, path parameters filled in."""
    requests = []
    for route in app.routes:
        path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: SAMPLE_PATH_VALUES.get(m.group(1), "x"), route.path)
        requests.extend((method, path) for method in sorted(getattr(route, "methods", None) or {"GET"}))
    return requests


def test_every_route_of_the_app_refuses_anonymous_requests(client):
    requests = every_request(client.app)
    assert {path for _, path in requests} >= {"/", "/models", "/monitoring", "/api/monitoring", "/reports/2026-03-02/drift",
                                              "/models/flight_delay_xgb/versions/1/card",
                                              "/models/flight_delay_xgb/versions/1/card.md",
                                              "/backtest", "/backtest/x/report", "/backfills", "/api/backfills"}  # fmt: skip
    for method, path in requests:
        response = client.request(method, path)
        assert response.status_code == 401, (method, path, response.status_code)
        assert "Airloop" not in response.text and "openapi" not in response.text.lower()


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
def test_fastapi_docs_and_schema_are_not_served(client, airflow_auth, path):
    for credentials in ({}, {"cookies": {"_token": airflow_auth}}):
        response = client.get(path, **credentials)
        assert response.status_code in (401, 404), (path, response.status_code)
        assert "swagger" not in response.text.lower() and "redoc" not in response.text.lower()


# Whatever makes a browser fetch from elsewhere: <script src>, <link href> (stylesheets,
# preloads, icons), <img>/<iframe>/<source> src, CSS url() and @import of an absolute URL.
EXTERNAL_LOAD = re.compile(
    r"<(?:script|img|iframe|source|embed|audio|video)\b[^>]*\bsrc\s*=\s*[\"']?\s*(?:[a-z]+:)?//"
    r"|<link\b[^>]*\bhref\s*=\s*[\"']?\s*(?:[a-z]+:)?//"
    r"|url\(\s*[\"']?\s*(?:https?:)?//|@import\s+(?:url\()?\s*[\"']?\s*(?:https?:)?//",
    re.IGNORECASE,
)


def test_no_page_loads_anything_from_outside_the_deployment(client, airflow_auth, monitored):
    pages = ["/", "/models", "/monitoring", "/reports/2026-03-03/drift", "/reports/2026-03-02/performance",
             "/reports/2026-03-04/drift"]  # fmt: skip
    for path in pages:
        response = client.get(path, cookies={"_token": airflow_auth})
        assert response.status_code in (200, 404) and "<html" in response.text.lower(), path
        assert EXTERNAL_LOAD.findall(response.text) == [], path
    assert EXTERNAL_LOAD.findall("<script src='https://cdn.example.com/x.js'></script>")  # the check can fail


def test_a_forged_token_is_refused(client, airflow_auth):
    import jwt

    forged = jwt.encode({"sub": "admin", "role": "admin"}, "not-the-secret-" * 8, algorithm="HS512")
    assert client.get("/models", headers={"Authorization": f"Bearer {forged}"}).status_code == 403
    assert client.get("/models", cookies={"_token": forged}).status_code == 403


def test_models_page_lists_versions_champion_and_history(client, airflow_auth, airloop_env):
    from airloop.registry import ModelRegistry

    registry = ModelRegistry(airloop_env.registry_url)
    name = "flight_delay_xgb"
    for v, auc in ((1, 0.701), (2, 0.722)):
        registry.reserve_version(name, feature_service="flight_delay_v1", feature_columns=["distance"],
                                 window_start=date(2026, 1, 1), window_end=date(2026, 3, 31), fingerprint=f"fp{v}",
                                 params={}, metrics={"roc_auc": auc}, code_version="test", device="cpu",
                                 training_rows=1000 * v)  # fmt: skip
        registry.finalize_version(name, v, artifact_uri=f"models/{name}/v{v}/model.ubj", sha256="0" * 64, reference_uri=None)
    registry.promote(name, 1, reason="first model", actor="test")
    registry.promote(name, 2, reason="AUC +0.021 over v1", actor="test")

    page = client.get("/models", cookies={"_token": airflow_auth})
    assert page.status_code == 200
    html = page.text
    assert "flight_delay_xgb — champion: v2" in html
    assert re.search(r"v2 <span class='badge champion'>champion</span>", html)
    assert "v1 <span class='badge champion'>" not in html
    assert "0.722" in html and "AUC +0.021 over v1" in html and "first model" in html
    assert html.index("AUC +0.021 over v1") < html.index("first model")  # newest promotion first


def test_models_page_without_models_says_so(client, airflow_auth, airloop_env):
    html = client.get("/models", headers={"Authorization": f"Bearer {airflow_auth}"}).text
    assert "No model is registered yet" in html


def frame(n, seed, shift=False):
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({"distance": rng.normal(2500 if shift else 1000, 300, n),
                        "sched_hour": rng.integers(15 if shift else 5, 23, n),
                        "carrier": rng.choice(["AA", "DL", "UA"], n)})  # fmt: skip
    out["score"] = rng.uniform(0.3 if shift else 0.0, 1.0, n)
    out["is_delayed"] = (rng.uniform(size=n) < out["score"]).astype(int)
    return out


@pytest.fixture
def monitored(airloop_env):
    """Three monitored days: calm, drifted (retraining fired), and one whose report file is gone."""
    import airloop.monitoring as monitor
    from airloop.core.dates import LogicalDay
    from airloop.core.storage import open_lake

    lake, store = open_lake(airloop_env), monitor.MonitoringStore(airloop_env.registry_url)
    reference = frame(2000, 1)
    for ds, shift in (("2026-03-02", False), ("2026-03-03", True), ("2026-03-04", False)):
        result = monitor.drift_report(LogicalDay.parse(ds), reference, frame(800, int(ds.replace("-", "")) % 1000, shift), model_version=2)
        store.upsert(result, report_prefix=monitor.publish_report(lake, result), measured_on=ds)
    perf = monitor.performance_report(LogicalDay.parse("2026-03-02"), frame(800, 7), reference_auc=0.75, model_version=2)
    store.upsert(perf, report_prefix=monitor.publish_report(lake, perf), measured_on="2026-03-03")
    store.upsert(monitor.awaiting_outcomes(LogicalDay.parse("2026-03-03"), "outcomes of 2026-03-03 are not ingested yet", 2))
    store.record_event("2026-03-03", model_version=2, window_start="2026-02-03", window_end="2026-03-02",
                       evidence={"drift_share": 0.75})  # fmt: skip
    lake.delete(lake.list_keys("reports/ds=2026-03-04/drift/"))  # the listed report went missing
    return store


def test_monitoring_page_shows_chart_table_links_and_missing_reports(client, airflow_auth, monitored):
    response = client.get("/monitoring", cookies={"_token": airflow_auth})
    assert response.status_code == 200
    html = response.text
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert svg.count("class='point-drift'") == 3 and svg.count("class='point-performance'") == 1
    assert "class='series-drift'" in svg and "drift policy fired on 2026-03-03" in svg
    assert "href='/airloop/reports/2026-03-02/drift'" in html
    assert "href='/airloop/reports/2026-03-02/performance'" in html
    assert "href='/airloop/reports/2026-03-04/drift'" not in html
    row_04 = html[html.index("id='ds-2026-03-04'") :].split("</tr>")[0]
    assert "drift report missing" in row_04
    row_03 = html[html.index("id='ds-2026-03-03'") :].split("</tr>")[0]
    assert "retraining triggered" in row_03 and "awaiting outcomes" in row_03
    assert "distance" in row_03  # the drifted column is named
    row_02 = html[html.index("id='ds-2026-03-02'") :].split("</tr>")[0]
    auc = monitored.rows(kind="performance", start="2026-03-02", end="2026-03-02")[0]["auc"]
    assert f"{auc:.3f}" in row_02


def test_monitoring_page_says_when_a_long_day_was_tested_on_a_sample(client, airflow_auth, monitored, airloop_env):
    import airloop.monitoring as monitor
    from airloop.core.dates import LogicalDay
    from airloop.core.storage import open_lake

    config = monitor.MonitorConfig(test_max_rows=300)
    result = monitor.drift_report(LogicalDay.parse("2026-03-05"), frame(2000, 1), frame(800, 5), model_version=2, config=config)
    monitored.upsert(result, report_prefix=monitor.publish_report(open_lake(airloop_env), result), measured_on="2026-03-05")
    html = client.get("/monitoring", cookies={"_token": airflow_auth}).text
    row_05 = html[html.index("id='ds-2026-03-05'") :].split("</tr>")[0]
    assert "tested on a seeded sample of 300 of 800 current rows" in row_05
    row_02 = html[html.index("id='ds-2026-03-02'") :].split("</tr>")[0]
    assert "sample" not in row_02


def test_monitoring_date_filter_and_bad_dates(client, airflow_auth, monitored):
    html = client.get("/monitoring?start=2026-03-03&end=2026-03-03", cookies={"_token": airflow_auth}).text
    assert "id='ds-2026-03-03'" in html and "id='ds-2026-03-02'" not in html
    bad = client.get("/monitoring?start=03/02/2026", cookies={"_token": airflow_auth})
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.text
    empty = client.get("/monitoring?start=2027-01-01&end=2027-01-31", cookies={"_token": airflow_auth}).text
    assert "No monitoring results between 2027-01-01 and 2027-01-31" in empty


def test_report_route_serves_the_evidently_report_or_says_it_is_missing(client, airflow_auth, monitored):
    report = client.get("/reports/2026-03-03/drift", cookies={"_token": airflow_auth})
    assert report.status_code == 200
    assert report.text.lstrip().lower().startswith("<!doctype html>") and "distance" in report.text
    missing = client.get("/reports/2026-03-04/drift", cookies={"_token": airflow_auth})
    assert missing.status_code == 404 and "The drift report of 2026-03-04 is not in the lake" in missing.text
    assert client.get("/reports/2026-03-03/quality", cookies={"_token": airflow_auth}).status_code == 404
    assert client.get("/reports/2026-3-3/drift", cookies={"_token": airflow_auth}).status_code == 422


def test_monitoring_json(client, airflow_auth, monitored):
    body = client.get("/api/monitoring", cookies={"_token": airflow_auth}).json()
    assert [d["ds"] for d in body["days"]] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    assert body["days"][1]["drift"]["drift_share"] >= 0.5
    assert [e["ds"] for e in body["drift_events"]] == ["2026-03-03"]


def test_report_link_points_at_the_plugin_page():
    from airloop_plugins.operators.monitoring import DriftReportOperator, EvidentlyReportLink

    op = DriftReportOperator(task_id="drift_report")
    assert EvidentlyReportLink().get_link(op, ti_key=None) == ""  # no report produced (yet)
    op.report_ds = "2026-03-03"
    assert EvidentlyReportLink().get_link(op, ti_key=None).endswith("/airloop/reports/2026-03-03/drift")


# --- model cards ---------------------------------------------------------------------------------


@pytest.fixture
def carded(airloop_env, monitored):
    """v1 trained, registered with its card and promoted; served (monitored) on 2026-03-09 and 10.
    v2 and v3 registered without a card (before cards existed); ``monitored`` has v2 serving 2026-03-02."""
    import airloop.monitoring as monitor
    from airloop.core.dates import LogicalDay
    from airloop.core.devices import DeviceChoice
    from airloop.core.storage import open_lake
    from airloop.core.usecase import load_use_case
    from airloop.registry import ModelRegistry
    from airloop.training import (apply_decision, evaluate_candidate, load_candidate, load_training_set,
                                  publish_candidate, publish_training_set, register_candidate, train_candidate)

    from training_data import synthetic_training_set

    lake, registry = open_lake(airloop_env), ModelRegistry(airloop_env.registry_url)
    spec = load_use_case(airloop_env.use_case).model
    stored = load_training_set(lake, publish_training_set(synthetic_training_set(days=30, rows_per_day=200), lake)["prefix"])
    cpu = DeviceChoice("cpu", "cpu", "fallback", "test")
    candidate = load_candidate(lake, publish_candidate(train_candidate(stored, spec, device=cpu, overrides={"num_boost_round": 30}),
                                                       stored, lake, spec)["candidate_prefix"])  # fmt: skip
    decision = evaluate_candidate(candidate, stored, spec, registry=registry, lake=lake)
    mv = register_candidate(candidate, spec, registry=registry, lake=lake, run_id="r1", training_set=stored, decision=decision)
    apply_decision(decision, mv, registry=registry, actor="alice via train_model/r1", run_id="r1")
    for ds, seed in (("2026-03-09", 11), ("2026-03-10", 12)):
        monitored.upsert(monitor.performance_report(LogicalDay.parse(ds), frame(600, seed), reference_auc=0.75, model_version=mv.version))
    for v in (2, 3):
        registry.reserve_version(spec.name, feature_service="flight_delay_v1", feature_columns=["distance"],
                                 window_start=date(2026, 1, 1), window_end=date(2026, 3, 31), fingerprint=f"fp{v}",
                                 params={}, metrics={"roc_auc": 0.7}, code_version="test", device="cpu", training_rows=10)  # fmt: skip
        registry.finalize_version(spec.name, v, artifact_uri=f"{lake.url}/models/{spec.name}/v{v}/model.ubj", sha256="0" * 64,
                                  reference_uri=None)  # fmt: skip
    return SimpleNamespace(name=spec.name, mv=mv, store=monitored)


def test_model_card_page_shows_the_card_and_how_it_fared(client, airflow_auth, carded):
    from airloop.training.model_card import weekly_auc

    models = client.get("/models", cookies={"_token": airflow_auth}).text
    assert f"href='/airloop/models/{carded.name}/versions/1/card'" in models
    assert f"href='/airloop/models/{carded.name}/versions/2/card'" in models
    response = client.get(f"/models/{carded.name}/versions/1/card", cookies={"_token": airflow_auth})
    assert response.status_code == 200
    html = response.text
    assert f"Model card: {carded.name} v1" in html and "<nav>" in html and "2026-03-01 .. 2026-03-30" in html
    assert "class='calibration'" in html and "class='importance'" in html and "class='weekly-auc'" in html
    (week,) = weekly_auc(carded.store.rows(kind="performance"), 1)
    assert week["week_start"] == "2026-03-09" and week["days"] == 2
    assert "2026-03-09 .. 2026-03-15" in html and f"{week['auc']:.4f}" in html
    assert "alice via train_model/r1" in html and "status now" in html  # the registry's decision, read now
    assert EXTERNAL_LOAD.findall(html) == []
    markdown = client.get(f"/models/{carded.name}/versions/1/card.md", headers={"Authorization": f"Bearer {airflow_auth}"})
    assert markdown.status_code == 200 and markdown.headers["content-type"].startswith("text/markdown")
    assert f"# Model card: {carded.name} v1" in markdown.text and f"{week['auc']:.4f}" in markdown.text


def test_model_card_of_a_version_without_a_card_or_service(client, airflow_auth, carded):
    html = client.get(f"/models/{carded.name}/versions/2/card", cookies={"_token": airflow_auth}).text
    assert "registered without a stored card" in html and "class='calibration'" not in html
    assert "2026-03-02 .. 2026-03-08" in html and "class='weekly-auc'" in html  # served (monitored) before cards
    html = client.get(f"/models/{carded.name}/versions/3/card", cookies={"_token": airflow_auth}).text
    assert "Not yet served" in html and "<svg" not in html
    missing = client.get(f"/models/{carded.name}/versions/9/card", cookies={"_token": airflow_auth})
    assert missing.status_code == 404 and "has no version 9; its versions are [1, 2, 3]" in missing.text
    assert client.get(f"/models/{carded.name}/versions/9/card.md", cookies={"_token": airflow_auth}).status_code == 404
    assert client.get(f"/models/{carded.name}/versions/one/card", cookies={"_token": airflow_auth}).status_code == 422


def test_backfills_page_shows_progress_per_stage_from_airflows_tables(client, airflow_auth):
    """A backfill of ingest_flights in Airflow's metadata DB: days done, running, failed days, rate."""
    from datetime import datetime, timedelta, timezone

    from airflow.models.backfill import Backfill
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    empty = client.get("/backfills", cookies={"_token": airflow_auth})
    assert empty.status_code == 200 and "No backfill of the loop's DAGs yet" in empty.text
    created = datetime.now(timezone.utc) - timedelta(minutes=10)
    with create_session() as session:
        session.merge(DagBundleModel(name="dags-folder"))
        session.flush()
        session.add(DagModel(dag_id="ingest_flights", bundle_name="dags-folder"))
        session.flush()
        backfill = Backfill(dag_id="ingest_flights", from_date=datetime(2026, 3, 1, tzinfo=timezone.utc),
                            to_date=datetime(2026, 3, 5, tzinfo=timezone.utc), dag_run_conf={},
                            reprocess_behavior="none", max_active_runs=2)  # fmt: skip
        session.add(backfill)
        session.flush()
        backfill.created_at = created
        for day, state in zip(range(1, 6), ("success", "success", "failed", "running", "queued")):
            key = f"2026-03-{day:02d}"
            run = DagRun(dag_id="ingest_flights", run_id=f"backfill__{key}", run_type="backfill", state=state,
                         logical_date=datetime(2026, 3, day, tzinfo=timezone.utc), backfill_id=backfill.id,
                         partition_key=key)  # fmt: skip
            session.add(run)
        backfill_id = backfill.id
    body = client.get("/api/backfills", cookies={"_token": airflow_auth}).json()
    (row,) = [r for r in body if r["id"] == backfill_id]
    assert (row["dag_id"], row["total"], row["done"], row["failed"]) == ("ingest_flights", 5, 3, ["2026-03-03"])
    assert row["counts"] == {"success": 2, "failed": 1, "running": 1, "queued": 1}
    assert 0.25 < row["rate_per_min"] < 0.35 and 5 < row["minutes_left"] < 9  # 3 days in ~10 min, 2 left
    html = client.get("/backfills", cookies={"_token": airflow_auth}).text
    assert "ingest_flights" in html and "3/5 (60%)" in html and "2026-03-03" in html and "about" in html


def test_monitoring_page_plots_the_calibrated_drift_signal_and_the_window_auc():
    """The chart and the table show what the retraining policy counts: the drift signal (PSI
    beyond calibrated thresholds) and the rolling window's AUC; Evidently's share stays as a note,
    and a row written before the signal existed still shows Evidently's share."""
    from airloop_plugins.ui import pages

    def drift(ds, **values):
        return {"ds": ds, "status": "ok", "drift_share": 0.8, "drifted_column_names": ["temp", "carrier_flights_1d"], **values}

    days = [
        {"ds": "2026-05-01", "drift": drift("2026-05-01", policy_drift_share=0.5), "performance": None},
        {"ds": "2026-05-02", "drift": drift("2026-05-02", drift_signal=0.1, drift_signal_columns=["distance"]),
         "performance": {"ds": "2026-05-02", "status": "ok", "auc": 0.71, "window_auc": 0.69, "rows_current": 800}},
        {"ds": "2026-05-03", "drift": drift("2026-05-03", drift_signal=0.0, drift_signal_columns=[]),
         "performance": {"ds": "2026-05-03", "status": "ok", "auc": 0.66, "window_auc": 0.68, "rows_current": 790}},
    ]
    html = pages.monitoring_page(days, [], start="2026-05-01", end="2026-05-03", threshold=0.3)
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert "2026-05-02: drift signal 0.100" in svg and "2026-05-01: drift signal 0.500" in svg
    assert "2026-05-03: window AUC 0.680" in svg and svg.count("class='point-window'") == 2
    assert "class='series-window'" in svg and "stroke-dasharray='5 4'" in svg  # the threshold line
    row = html[html.index("id='ds-2026-05-02'") :].split("</tr>")[0]
    assert "0.10 <span class='muted'>(Evidently, all columns: 0.80)</span>" in row
    assert "distance" in row and "temp" not in row  # the signal's columns, not Evidently's
    row = html[html.index("id='ds-2026-05-03'") :].split("</tr>")[0]
    assert "<span class='muted'>none</span>" in row
    row = html[html.index("id='ds-2026-05-01'") :].split("</tr>")[0]
    assert "0.50 <span class='muted'>(Evidently, all columns: 0.80)</span>" in row and "temp" in row

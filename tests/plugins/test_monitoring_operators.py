"""Monitoring operators against a real lake and registry, and the alert notifier against a real
local webhook server. Only Airflow's runtime context is stood in for (a dict with the keys the
operators read)."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowSkipException

from airloop.core.storage import frame_to_parquet, publish_partition

MODEL = "flight_delay_xgb"


def day_frame(n, seed, shift=False):
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({
        "carrier": rng.choice(["AA", "DL", "UA"], n, p=[0.8, 0.1, 0.1] if shift else None),
        "flight": rng.integers(1, 9000, n), "origin": "JFK",
        "dest": rng.choice(["LAX", "SFO", "ORD"], n),
        "sched_dep_ts": pd.Timestamp("2026-03-02T12:00Z") + pd.to_timedelta(np.arange(n), unit="min"),
        "distance": rng.normal(2500 if shift else 1000, 300, n), "sched_hour": rng.integers(15 if shift else 5, 23, n),
    })  # fmt: skip
    out["score"] = rng.uniform(0.4 if shift else 0.0, 1.0, n)
    return out


@pytest.fixture
def env(tmp_path, monkeypatch):
    from airloop.core.config import Settings, get_settings
    from airloop.registry import ModelRegistry
    from airloop.core.storage import open_lake

    monkeypatch.setenv("AIRLOOP_DATA_DIR", str(tmp_path))
    for var in ("AIRLOOP_LAKE_URL", "AIRLOOP_REGISTRY_URL", "AIRLOOP_ALERT_CONN_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AIRLOOP_DRIFT_CONSECUTIVE_DAYS", "2")
    get_settings.cache_clear()
    settings = Settings.from_env()
    lake = open_lake(settings)
    reference = day_frame(2000, 1)
    reference["is_delayed"] = (np.random.default_rng(2).uniform(size=2000) < reference["score"]).astype(int)
    lake.write_bytes(f"models/{MODEL}/v1/reference.parquet", frame_to_parquet(reference))
    registry = ModelRegistry(settings.registry_url)
    registry.reserve_version(MODEL, feature_service="flight_delay_v1", feature_columns=["distance", "sched_hour"],
                             window_start=date(2026, 1, 1), window_end=date(2026, 2, 28), fingerprint="fp",
                             params={}, metrics={"roc_auc": 0.7}, code_version="test", device="cpu")  # fmt: skip
    registry.finalize_version(MODEL, 1, artifact_uri=f"models/{MODEL}/v1/model.ubj", sha256="0" * 64,
                              reference_uri=lake.uri(f"models/{MODEL}/v1/reference.parquet"))  # fmt: skip
    yield settings, lake
    get_settings.cache_clear()


def score_day(lake, ds, shift=False, n=600):
    frame = day_frame(n, int(ds.replace("-", "")) % 997, shift)
    key = ["carrier", "flight", "origin", "dest", "sched_dep_ts"]
    publish_partition(lake, f"predictions/ds={ds}", {
        "part.parquet": frame_to_parquet(frame[key + ["score"]].assign(model_version=1)),
        "features.parquet": frame_to_parquet(frame[key + ["distance", "sched_hour"]]),
    }, {"ds": ds})  # fmt: skip
    return frame


def context(ds, run_id="manual__1"):
    outlet_events = defaultdict(lambda: SimpleNamespace(extra=None))
    return {"params": {"ds": ds}, "run_id": run_id, "outlet_events": outlet_events, "dag_run": None}


def test_drift_report_operator_writes_report_and_link(env):
    from airloop_plugins.operators.monitoring import DriftReportOperator, EvidentlyReportLink

    settings, lake = env
    score_day(lake, "2026-03-02", shift=True)
    op = DriftReportOperator(task_id="drift_report")
    summary = op.execute(context("2026-03-02"))
    assert summary["status"] == "ok" and summary["model_version"] == 1
    assert summary["drift_share"] >= 0.5 and "distance" in summary["drifted_column_names"]
    assert lake.exists("reports/ds=2026-03-02/drift/_manifest.json")
    assert EvidentlyReportLink().get_link(op, ti_key=None).endswith("/airloop/reports/2026-03-02/drift")


def test_drift_report_operator_skips_an_unscored_day(env):
    from airloop_plugins.operators.monitoring import DriftReportOperator

    with pytest.raises(AirflowSkipException, match="2026-03-09 was not scored"):
        DriftReportOperator(task_id="drift_report").execute(context("2026-03-09"))


def test_performance_operator_awaits_then_reads_yesterdays_outcomes(env):
    from airloop.monitoring import MonitoringStore
    from airloop_plugins.operators.monitoring import PerformanceReportOperator

    settings, lake = env
    frame = score_day(lake, "2026-03-01")
    op = PerformanceReportOperator(task_id="performance_report")
    assert op.execute(context("2026-03-02"))["status"] == "awaiting_outcomes"
    assert op.report_ds is None
    rng = np.random.default_rng(5)
    raw = frame.drop(columns=["score"]).assign(arr_delay=np.where(rng.uniform(size=len(frame)) < frame["score"], 40.0, 0.0))
    publish_partition(lake, "raw/flights/ds=2026-03-01", {"part.parquet": frame_to_parquet(raw)}, {})
    summary = op.execute(context("2026-03-02"))
    assert summary["status"] == "ok" and summary["ds"] == "2026-03-01" and summary["auc"] > 0.6
    assert summary["reference_auc"] == 0.7  # the holdout AUC in the registry, not the in-sample reference
    (row,) = MonitoringStore(settings.registry_url).rows(kind="performance")
    assert row["measured_on"] == "2026-03-02" and row["status"] == "ok"


def test_policy_operator_fires_once_per_episode_with_window(env):
    from airloop_plugins.assets import DRIFT
    from airloop_plugins.operators.monitoring import DriftPolicyOperator, DriftReportOperator

    settings, lake = env
    calls = []
    policy = DriftPolicyOperator(task_id="drift_policy", outlets=[DRIFT], notifier=lambda ctx: calls.append(ctx["drift"]))
    days = [(date(2026, 3, 2) + timedelta(days=i)).isoformat() for i in range(4)]
    outcomes = []
    for ds in days:
        score_day(lake, ds, shift=True)
        DriftReportOperator(task_id="drift_report").execute(context(ds))
        ctx = context(ds, run_id=f"run-{ds}")
        try:
            extra = policy.execute(ctx)
            outcomes.append((ds, "fired", ctx["outlet_events"][DRIFT].extra))
        except AirflowSkipException as exc:
            outcomes.append((ds, "skipped", str(exc)))
    assert [o[1] for o in outcomes] == ["skipped", "fired", "skipped", "skipped"]
    assert "1 consecutive breaching day" in outcomes[0][2]
    assert "same drift episode as the firing on 2026-03-03" in outcomes[2][2]
    assert "cooldown" in outcomes[3][2]  # a fresh 2-day streak after the firing, but in cooldown
    extra = outcomes[1][2]
    assert extra == calls[0] and len(calls) == 1
    assert (extra["ds"], extra["window_end"], extra["window_start"]) == ("2026-03-03", "2026-03-02", "2026-02-03")
    assert extra["drift_share"] >= 0.5 and len(extra["evidence"]) == 2
    # a rerun of the firing day from another run does not start a second retraining
    with pytest.raises(AirflowSkipException, match="already fired"):
        policy.execute(context("2026-03-03", run_id="manual__rerun"))
    # a retry of the same run still emits (the first attempt may have died before success)
    retry = context("2026-03-03", run_id="run-2026-03-03")
    assert policy.execute(retry)["ds"] == "2026-03-03" and retry["outlet_events"][DRIFT].extra["ds"] == "2026-03-03"


def test_policy_operator_does_not_fire_on_calm_or_tiny_days(env):
    from airloop_plugins.operators.monitoring import DriftPolicyOperator, DriftReportOperator

    settings, lake = env
    score_day(lake, "2026-03-02", shift=True)
    score_day(lake, "2026-03-03", shift=True, n=10)  # tiny: skipped, no evidence
    for ds in ("2026-03-02", "2026-03-03"):
        assert DriftReportOperator(task_id="d").execute(context(ds))["status"] in ("ok", "skipped")
    with pytest.raises(AirflowSkipException, match="did not fire"):
        DriftPolicyOperator(task_id="drift_policy").execute(context("2026-03-03"))


def test_the_checks_and_the_policy_read_the_calibration_in_the_lake(env):
    from airloop.monitoring import DriftCalibration, MonitoringStore, save_calibration
    from airloop_plugins.operators.monitoring import DriftPolicyOperator, DriftReportOperator

    settings, lake = env
    # Measured on a period where distance and the schedule hour varied this much: the shift below is within it.
    save_calibration(lake, DriftCalibration(columns={"distance": {"role": "policy", "threshold": 50.0},
                                                     "carrier": {"role": "policy", "threshold": 50.0},
                                                     "sched_hour": {"role": "context", "threshold": 0.1}},
                                            auc_tolerance=0.03))  # fmt: skip
    for ds in ("2026-06-10", "2026-06-11", "2026-06-12"):
        score_day(lake, ds, shift=True)
        summary = DriftReportOperator(task_id="drift_report").execute(context(ds))
        assert summary["drift_signal"] == 0.0 and summary["drift_share"] >= 0.5  # Evidently's share still reported
    rows = MonitoringStore(settings.registry_url).rows(kind="drift")
    assert [r["drift_signal"] for r in rows] == [0.0, 0.0, 0.0]
    with pytest.raises(AirflowSkipException, match="did not fire"):
        DriftPolicyOperator(task_id="drift_policy").execute(context("2026-06-12"))


def test_a_damaged_calibration_fails_the_check_with_its_name(env):
    from airloop.monitoring import MonitorInputError
    from airloop_plugins.operators.monitoring import DriftReportOperator

    settings, lake = env
    lake.write_bytes("monitoring/calibration.json", b"{not json")
    score_day(lake, "2026-06-10")
    with pytest.raises(MonitorInputError, match="calibration.json is not a drift calibration"):
        DriftReportOperator(task_id="drift_report").execute(context("2026-06-10"))


# --- notifier -------------------------------------------------------------------------------


@pytest.fixture
def webhook():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], received
    server.shutdown()


def test_notifier_logs_only_by_default(caplog):
    from airloop_plugins.notifiers import failure_notifier

    ti = SimpleNamespace(dag_id="monitor_model", task_id="drift_report", try_number=2)
    notifier = failure_notifier()
    body = notifier.payload({"ti": ti, "run_id": "r1", "params": {"ds": "2026-03-02"}, "exception": ValueError("boom")})
    assert body["error"] == "ValueError: boom" and body["ds"] == "2026-03-02"
    assert notifier.subject(body) == "[airloop] monitor_model.drift_report failed (2026-03-02)"
    notifier.notify({"ti": ti, "run_id": "r1", "params": {"ds": "2026-03-02"}, "exception": ValueError("boom")})


def test_drift_alert_goes_to_the_webhook_connection(webhook, monkeypatch):
    from airloop_plugins.notifiers import drift_notifier

    port, received = webhook
    monkeypatch.setenv("AIRFLOW_CONN_AIRLOOP_ALERTS", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http", "extra": {"endpoint": "/hooks/ops"}}))  # fmt: skip
    monkeypatch.setenv("AIRLOOP_ALERT_CONN_ID", "airloop_alerts")
    drift = {"ds": "2026-03-05", "drift_share": 0.75, "window_start": "2026-02-05", "window_end": "2026-03-04"}
    drift_notifier()({"ti": SimpleNamespace(dag_id="monitor_model", task_id="drift_policy", try_number=1),
                      "run_id": "r9", "drift": drift})  # fmt: skip
    ((path, content_type, body),) = received
    assert path == "/hooks/ops" and content_type == "application/json"
    assert body["event"] == "drift" and body["drift"]["drift_share"] == 0.75 and body["ds"] == "2026-03-05"
    assert body["text"] == "[airloop] drift on 2026-03-05: retraining on 2026-02-05..2026-03-04"


def test_an_unsupported_alert_connection_is_a_clear_error(monkeypatch):
    from airloop_plugins.notifiers import failure_notifier

    monkeypatch.setenv("AIRFLOW_CONN_AIRLOOP_ALERTS", json.dumps({"conn_type": "postgres", "host": "db"}))
    with pytest.raises(ValueError, match="use smtp or http"):
        failure_notifier("airloop_alerts").notify({"run_id": "r1"})
    monkeypatch.setenv("AIRFLOW_CONN_AIRLOOP_ALERTS", json.dumps({"conn_type": "smtp", "host": "mail"}))
    with pytest.raises(ValueError, match="needs extra"):
        failure_notifier("airloop_alerts").notify({"run_id": "r1"})

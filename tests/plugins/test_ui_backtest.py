"""The Backtest page's content (its authentication is the app's: tests/plugins/test_ui_plugin.py
asks every route of the app anonymously, these included)."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from airloop_plugins.ui.backtest import router


@pytest.fixture
def backtests(tmp_path, monkeypatch):
    root = tmp_path / "backtest"
    year = root / "year"
    year.mkdir(parents=True)
    report = {"start": "2026-03-30", "end": "2026-12-29", "policies": [
        {"policy": "frozen", "summary": {"monthly_auc_mean": 0.6704, "monthly_auc_min": 0.616, "monthly_auc_max": 0.724,
                                         "pooled_auc": 0.692, "trainings": 1, "promotions": 1, "drift_firings": 0,
                                         "training_cpu_s": 0.0, "initial_training_cpu_s": 41.5}}]}  # fmt: skip
    (year / "backtest.json").write_text(json.dumps(report))
    (year / "backtest.html").write_text("<html><body><svg></svg>the report</body></html>")
    (root / "running").mkdir()  # no backtest.json yet: not listed
    (root / "broken").mkdir()
    (root / "broken" / "backtest.json").write_text("{not json")
    (tmp_path / "secret.html").write_text("outside")
    monkeypatch.setenv("AIRLOOP_BACKTEST_DIR", str(root))
    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


def test_the_page_lists_each_backtest_with_its_figures_and_report_link(backtests):
    html = backtests.get("/backtest").text
    assert "2026-03-30 .. 2026-12-29" in html and "0.670" in html and "41.5" in html
    assert "/airloop/backtest/year/report" in html
    assert "running" not in html
    assert "unreadable backtest.json" in html  # a broken one says so, the page still renders


def test_the_report_route_serves_only_known_workspaces(backtests):
    assert backtests.get("/backtest/year/report").text.endswith("the report</body></html>")
    for name in ("running", "nope", "..", "%2e%2e", "year%2F..%2Fsecret.html"):
        response = backtests.get(f"/backtest/{name}/report")
        assert response.status_code == 404, name
        assert "outside" not in response.text


def test_without_backtests_the_page_says_how_to_run_one(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRLOOP_BACKTEST_DIR", str(tmp_path / "none"))
    app = FastAPI()
    app.include_router(router)
    html = TestClient(app).get("/backtest").text
    assert "No backtest" in html and "airloop backtest" in html

"""The FastAPI app behind the Airloop pages (mounted by the plugin at ``/airloop``).

Airflow does not authenticate plugin apps: every route here depends on
``airflow.api_fastapi.core_api.security.requires_authenticated()``, which accepts the UI's
session cookie (``_token``) or an ``Authorization: Bearer`` token and answers 401 (no token) or
403 (invalid token) otherwise. FastAPI's own ``/docs``, ``/redoc`` and ``/openapi.json`` are
off (they would answer anonymously), and no page loads anything from outside the deployment.
The data comes from the registry database and the lake named by the Airloop settings, read per
request (nothing is cached across requests).
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse

from airflow.api_fastapi.core_api.security import requires_authenticated

from airloop_plugins.ui import pages
from airloop_plugins.ui.backfills import router as backfills_router
from airloop_plugins.ui.backtest import router as backtest_router

URL_PREFIX = "/airloop"
DS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _settings():
    from airloop.core.config import get_settings

    return get_settings()


def _lake():
    from airloop.core.storage import open_lake

    return open_lake(_settings())


def _parse_day(value: str | None) -> date | None:
    if not value:
        return None
    if not DS_RE.match(value):
        raise HTTPException(status_code=422, detail=f"{value!r} is not a date in YYYY-MM-DD form")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HTTPException(status_code=422, detail=f"{value!r} is not a valid date") from None


def model_overview() -> list[dict]:
    """Every registered model with its versions, champion and promotion history."""
    from airloop.registry import ModelRegistry

    registry = ModelRegistry(_settings().registry_url)
    return [
        {"name": name, "champion": registry.champion_version(name), "versions": registry.versions(name),
         "history": registry.history(name)}  # fmt: skip
        for name in registry.model_names()
    ]


def model_card_view(model_name: str, version: int) -> tuple:
    """The version's stored card and what is known only now: its status, the registry's decisions
    about it, and its realized AUC per week from the monitoring table (when that table exists)."""
    import sqlalchemy as sa

    from airloop.registry import ModelRegistry
    from airloop.training.model_card import load_card, weekly_auc

    settings = _settings()
    registry = ModelRegistry(settings.registry_url)
    mv = registry.get(model_name, version)
    card = load_card(_lake(), mv)
    history = [h.as_dict() for h in registry.history(model_name) if version in (h.candidate_version, h.to_version)]
    weeks: list[dict] = []
    if sa.inspect(registry.engine).has_table("monitoring_metrics"):
        from airloop.monitoring import MonitoringStore

        weeks = weekly_auc(MonitoringStore(settings.registry_url).rows(kind="performance"), version)
    return card, {"status": mv.status, "status_reason": mv.status_reason, "history": history, "weeks": weeks}


def monitoring_days(start: date | None = None, end: date | None = None) -> tuple[list[dict], list[dict], str, str]:
    """Monitoring rows merged per date (with whether each listed report exists), drift events."""
    from airloop.monitoring import MonitoringStore
    from airloop.core.storage import MANIFEST_NAME

    store = MonitoringStore(_settings().registry_url)
    rows = store.rows()
    if end is None:
        end = date.fromisoformat(rows[-1]["ds"]) if rows else date.today()
    if start is None:
        start = end - timedelta(days=89)
    lake = _lake()
    by_day: dict[str, dict] = {}
    for row in rows:
        if not start.isoformat() <= row["ds"] <= end.isoformat():
            continue
        day = by_day.setdefault(row["ds"], {"ds": row["ds"]})
        day[row["kind"]] = row
        if row.get("report_prefix"):
            present = lake.exists(f"{row['report_prefix']}/{MANIFEST_NAME}")
            day[f"{row['kind']}_report"] = "ok" if present else "missing"
    events = [e for e in store.drift_events() if start.isoformat() <= str(e["ds"]) <= end.isoformat()]
    return [by_day[k] for k in sorted(by_day)], events, start.isoformat(), end.isoformat()


def create_app() -> FastAPI:
    app = FastAPI(
        title="Airloop",
        description="Model versions and monitoring of the Airloop pipeline",
        dependencies=[Depends(requires_authenticated())],
        # Closed by default: FastAPI serves its docs pages and schema outside the app's
        # dependencies (anonymous users got 200), and the docs pages load their scripts from a
        # public CDN. Nothing here is an API for others; the pages are the interface.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get("/", response_class=HTMLResponse)
    def index():
        return HTMLResponse(pages.page("Airloop", "<p>See <a href='/airloop/models'>model versions</a> and "
                                       "<a href='/airloop/monitoring'>monitoring</a>.</p>", base=URL_PREFIX))  # fmt: skip

    @app.get("/models", response_class=HTMLResponse)
    def models():
        return HTMLResponse(pages.models_page(model_overview(), base=URL_PREFIX))

    @app.get("/models/{model_name}/versions/{version}/card", response_class=HTMLResponse)
    def model_card(model_name: str, version: int):
        from airloop.registry import VersionNotFound
        from airloop.training.model_card import ModelCardError

        try:
            card, live = model_card_view(model_name, version)
        except (VersionNotFound, ModelCardError) as exc:
            return HTMLResponse(pages.page("No model card", f"<p class='empty'>{pages.escape(str(exc))}</p>", base=URL_PREFIX),
                                status_code=404)  # fmt: skip
        return HTMLResponse(pages.model_card_page(card, live, base=URL_PREFIX))

    @app.get("/models/{model_name}/versions/{version}/card.md")
    def model_card_markdown(model_name: str, version: int):
        from fastapi.responses import PlainTextResponse

        from airloop.registry import VersionNotFound
        from airloop.training.card_render import render_markdown
        from airloop.training.model_card import ModelCardError

        try:
            card, live = model_card_view(model_name, version)
        except (VersionNotFound, ModelCardError) as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        return PlainTextResponse(render_markdown(card, live), media_type="text/markdown; charset=utf-8")

    @app.get("/monitoring", response_class=HTMLResponse)
    def monitoring(start: str | None = Query(None), end: str | None = Query(None)):
        from airloop.monitoring import DriftPolicy

        days, events, shown_start, shown_end = monitoring_days(_parse_day(start), _parse_day(end))
        html = pages.monitoring_page(days, events, start=shown_start, end=shown_end,
                                     threshold=DriftPolicy.from_env().drift_share_threshold, base=URL_PREFIX)  # fmt: skip
        return HTMLResponse(html)

    @app.get("/api/monitoring")
    def monitoring_json(start: str | None = Query(None), end: str | None = Query(None)):
        days, events, _, _ = monitoring_days(_parse_day(start), _parse_day(end))
        return JSONResponse(_jsonable({"days": days, "drift_events": events}))

    @app.get("/reports/{ds}/{kind}", response_class=HTMLResponse)
    def report(ds: str, kind: str):
        from airloop.core.usecase import load_use_case
        from airloop.monitoring import KINDS, read_report

        if kind not in KINDS:
            raise HTTPException(status_code=404, detail=f"unknown report kind {kind!r}; use one of {list(KINDS)}")
        day = load_use_case(_settings().use_case).day(_parse_day(ds))
        html = read_report(_lake(), day, kind)
        if html is None:
            reason = (f"The {kind} report of {ds} is not in the lake: the monitor_model DAG has not produced it "
                      "(day not scored, sample too small, outcomes not yet known) or it was removed.")  # fmt: skip
            return HTMLResponse(pages.missing_report_page(ds, kind, reason, base=URL_PREFIX), status_code=404)
        return HTMLResponse(html)

    app.include_router(backtest_router)  # the Backtest page: same app, same authentication
    app.include_router(backfills_router)  # the Backfills page: same app, same authentication
    return app


def _jsonable(value):
    import json

    return json.loads(json.dumps(value, default=str))


app = create_app()

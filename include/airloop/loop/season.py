"""The whole loop over a replayed range, and what it did: ``make season FROM=.. TO=..``.

:func:`summarize` reads what the pipeline left behind (lake manifests, the registry, the
monitoring tables) for a range of days and :func:`format_summary` prints it: rows ingested and
quarantined, model versions and promotions, weekly AUC on realized outcomes, drift events and
the retrainings they caused. It reads only; it works on any lake, whoever filled it.

:func:`run_season` drives the loop through a real Airflow scheduler (see its docstring).
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airloop.core.config import Settings
    from airloop.core.dates import LogicalDay
    from airloop.core.storage import Lake


@dataclass
class SeasonSummary:
    start: str
    end: str
    ingested: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> rows, quarantined, days
    scored_days: int = 0
    scored_rows: int = 0
    versions: list[dict] = field(default_factory=list)
    promotions: list[dict] = field(default_factory=list)
    weekly: list[dict] = field(default_factory=list)
    monitored_days: int = 0
    drift_events: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def _manifest(lake: "Lake", prefix: str) -> dict | None:
    from airloop.core.storage import read_manifest

    return read_manifest(lake, prefix)


def ingestion_totals(lake: "Lake", days: "list[LogicalDay]", tables: list[str]) -> dict[str, dict[str, int]]:
    """Per table: valid rows, quarantined rows and days ingested, from the raw manifests."""
    from airloop.core.storage import partition_prefix

    out = {}
    for table in tables:
        totals = {"rows": 0, "quarantined": 0, "days": 0}
        for day in days:
            manifest = _manifest(lake, partition_prefix("raw", table, day.key))
            if manifest is None:
                continue
            totals["days"] += 1
            totals["rows"] += int(manifest.get("rows", 0))
            totals["quarantined"] += int(manifest.get("quarantined_rows", 0))
        out[table] = totals
    return out


def weekly_auc(lake: "Lake", days: "list[LogicalDay]", *, late_minutes: int = 15, key: tuple[str, ...] | None = None) -> list[dict]:
    """ROC AUC of the nightly predictions on their realized outcomes, per ISO week (Mon-Sun).

    Only days that were both scored and ingested count; unlabelled flights are left out.
    """
    import pandas as pd

    from airloop.monitoring import roc_auc, scored_outcomes

    weeks: dict[date, list] = defaultdict(list)
    for day in days:
        joined = scored_outcomes(lake, day, key=key, late_minutes=late_minutes)
        if joined is not None:
            weeks[day.date - timedelta(days=day.date.weekday())].append(joined.assign(ds=day.key))
    out = []
    for monday, frames in sorted(weeks.items()):
        frame = pd.concat(frames, ignore_index=True)
        versions = sorted({int(v) for v in frame.get("model_version", pd.Series(dtype=float)).dropna().unique()})
        out.append({
            "week": monday.isoformat(), "days": len(frames), "flights": len(frame),
            "late_share": float(frame["is_delayed"].mean()) if len(frame) else None,
            "auc": roc_auc(frame["is_delayed"], frame["score"]) if len(frame) else None,
            "model_versions": versions,
        })  # fmt: skip
    return out


def summarize(start: "str | date | LogicalDay", end: "str | date | LogicalDay", *, settings: "Settings",
              lake: "Lake | None" = None) -> SeasonSummary:  # fmt: skip
    """What the loop did over ``[start, end]`` (see the module docstring).

    The range is parsed here, once, into the use case's days.
    """
    from airloop.monitoring import MonitorConfig, MonitoringStore, predictions_prefix
    from airloop.core.storage import open_lake
    from airloop.core.usecase import load_use_case

    lake = lake or open_lake(settings)
    use_case = load_use_case(settings.use_case)
    days = use_case.day(start).range_to(use_case.day(end))
    summary = SeasonSummary(start=days[0].key, end=days[-1].key)
    summary.ingested = ingestion_totals(lake, days, list(use_case.tables))
    for day in days:
        manifest = _manifest(lake, predictions_prefix(day))
        if manifest is not None:
            summary.scored_days += 1
            summary.scored_rows += int(manifest.get("rows", 0) or 0)
    key = use_case.prediction.key if use_case.prediction is not None else None
    summary.weekly = weekly_auc(lake, days, late_minutes=MonitorConfig.from_env().late_minutes, key=key)

    try:
        from airloop.registry import ModelRegistry
    except ImportError:  # the training stage is not installed
        ModelRegistry = None
    if ModelRegistry is not None:
        registry = ModelRegistry(settings.registry_url)
        for name in registry.model_names():
            for mv in registry.versions(name):
                summary.versions.append({
                    "model": name, "version": mv.version, "status": mv.status,
                    "window": f"{mv.window_start}..{mv.window_end}", "run_id": mv.run_id,
                    "auc": (mv.metrics or {}).get("roc_auc"), "reason": mv.status_reason,
                })  # fmt: skip
            for h in registry.history(name):
                summary.promotions.append({"model": name, "action": h.action, "from": h.from_version,
                                           "to": h.to_version, "candidate": h.candidate_version, "reason": h.reason,
                                           "run_id": h.run_id})  # fmt: skip

    store = MonitoringStore(settings.registry_url)
    summary.monitored_days = len({r["ds"] for r in store.rows(kind="drift", start=days[0].date, end=days[-1].date)})
    for event in store.drift_events():
        if not summary.start <= str(event["ds"]) <= summary.end:
            continue
        caused = [v for v in summary.versions
                  if v["window"] == f"{event['window_start']}..{event['window_end']}"]  # fmt: skip
        summary.drift_events.append({
            "ds": str(event["ds"]), "model_version": event["model_version"],
            "drift_share": event["evidence"].get("drift_share"), "auc_drop": event["evidence"].get("auc_drop"),
            "reason": event["evidence"].get("reason"),
            "window": f"{event['window_start']}..{event['window_end']}",
            "retrainings": [f"v{v['version']} ({v['status']})" for v in caused],
        })  # fmt: skip
    return summary


def _num(value, digits=3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def format_summary(summary: SeasonSummary) -> str:
    """The summary as the plain text ``make season`` prints."""
    out = io.StringIO()
    w = out.write
    w(f"Airloop season {summary.start} .. {summary.end}\n\n")
    w("Ingestion (raw zone)\n")
    for table, t in summary.ingested.items():
        share = t["quarantined"] / (t["rows"] + t["quarantined"]) if t["rows"] + t["quarantined"] else 0.0
        w(f"  {table:8} {t['days']:4d} days  {t['rows']:9,d} rows ingested  {t['quarantined']:6,d} quarantined ({share:.2%})\n")
    w(f"\nScoring: {summary.scored_days} days scored, {summary.scored_rows:,d} predictions\n")
    w("\nModel versions\n")
    if not summary.versions:
        w("  none registered\n")
    for v in summary.versions:
        w(f"  {v['model']} v{v['version']:<3} {v['status']:10} window {v['window']}  validation AUC {_num(v['auc'])}"
          f"  {v['reason'] or ''}\n")  # fmt: skip
    w("\nPromotions\n")
    if not summary.promotions:
        w("  none\n")
    for p in summary.promotions:
        frm = f"v{p['from']}" if p["from"] is not None else "-"
        to = f"v{p['to']}" if p["to"] is not None else "-"
        w(f"  {p['action']:9} {frm:>4} -> {to:<4} (candidate v{p['candidate']}): {p['reason']}\n")
    w("\nWeekly AUC on realized outcomes (nightly predictions vs arrival delay > 15 min)\n")
    if not summary.weekly:
        w("  no scored day has its outcomes ingested yet\n")
    for wk in summary.weekly:
        versions = ",".join(f"v{v}" for v in wk["model_versions"]) or "-"
        w(f"  week of {wk['week']}  {wk['days']} days  {wk['flights']:6,d} flights  late {_num(wk['late_share'], 2)}"
          f"  AUC {_num(wk['auc'])}  model {versions}\n")  # fmt: skip
    w(f"\nMonitoring: {summary.monitored_days} days monitored, {len(summary.drift_events)} drift events\n")
    for e in summary.drift_events:
        caused = ", ".join(e["retrainings"]) or "no retraining registered yet"
        w(f"  {e['ds']}: {e['reason']} -> retrain on {e['window']} -> {caused}\n")
    return out.getvalue()


# --- driving the loop through a real scheduler ------------------------------------------------


class SeasonError(RuntimeError):
    """The season could not go on (a run failed, Airflow is unreachable, a wait timed out)."""


class AirflowClient:
    """The few REST calls the season needs, as the admin user of the simple auth manager.

    :param base_url: the api-server (``AIRLOOP_AIRFLOW_URL``, default ``http://localhost:8080``).
    :param password: default: ``AIRLOOP_AIRFLOW_PASSWORD`` or the generated password file in
        ``$AIRFLOW_HOME`` (``simple_auth_manager_passwords.json.generated``).
    """

    TERMINAL = ("success", "failed")

    def __init__(self, base_url: str | None = None, username: str = "admin", password: str | None = None):
        import os

        import httpx

        from airloop.core.config import env_str

        self.base_url = (base_url or env_str("AIRLOOP_AIRFLOW_URL", "http://localhost:8080")).rstrip("/")
        self.username = username
        self.password = password or os.environ.get("AIRLOOP_AIRFLOW_PASSWORD") or self._generated_password()
        self._http = httpx.Client(base_url=self.base_url, timeout=60)
        self._token: str | None = None

    def _generated_password(self) -> str:
        import json
        import os
        from pathlib import Path

        home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
        path = home / "simple_auth_manager_passwords.json.generated"
        if not path.exists():
            raise SeasonError(f"no Airflow password found ({path} is missing): start Airflow once (make demo), or export AIRLOOP_AIRFLOW_PASSWORD")
        return json.loads(path.read_text())[self.username]

    def api(self, method: str, path: str, **kwargs):
        import httpx

        for _ in range(2):
            if self._token is None:
                try:
                    resp = self._http.post("/auth/token", json={"username": self.username, "password": self.password})
                except httpx.HTTPError as exc:
                    raise SeasonError(f"Airflow is not reachable at {self.base_url}: {exc}") from None
                if resp.status_code not in (200, 201):
                    raise SeasonError(f"could not log in to {self.base_url}: {resp.status_code} {resp.text[:200]}")
                self._token = resp.json()["access_token"]
            resp = self._http.request(method, path, headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
            if resp.status_code != 401:
                break
            self._token = None
        if resp.status_code >= 400:
            raise SeasonError(f"{method} {path} -> {resp.status_code}: {resp.text[:500]}")
        return resp.json() if resp.content else None

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def runs(self, dag_id: str) -> list[dict]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 1000, "order_by": "run_after"})["dag_runs"]

    def backfill(self, dag_id: str, start: date, end: date, conf: dict | None = None) -> dict:
        from airloop.loop.backfill import request_body

        body = request_body(dag_id, start.isoformat(), end.isoformat(), "none", conf)
        return self.api("POST", "/api/v2/backfills", json={**body, "max_active_runs": 4})

    def trigger(self, dag_id: str, conf: dict) -> dict:
        return self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})

    def wait_for_partitions(self, dag_id: str, keys: set[str], timeout: float, log) -> list[dict]:
        """Wait until every key has a finished run of ``dag_id``; raise on failed runs."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            latest: dict[str, dict] = {}
            for run in self.runs(dag_id):
                if run.get("partition_key") in keys:
                    latest[run["partition_key"]] = run
            done = {k: r for k, r in latest.items() if r["state"] in self.TERMINAL}
            if len(done) == len(keys):
                failed = sorted(k for k, r in done.items() if r["state"] == "failed")
                if failed:
                    raise SeasonError(f"{dag_id} failed for {failed}: see the Airflow UI")
                return list(done.values())
            if time.monotonic() > deadline:
                missing = sorted(keys - set(done))
                raise SeasonError(f"timed out waiting for {dag_id} runs of {missing[:5]}{'...' if len(missing) > 5 else ''}")
            time.sleep(5)

    def wait_idle(self, dag_id: str, timeout: float, since_ids: set[str] | None = None) -> list[dict]:
        """Wait until no run of ``dag_id`` is queued or running; return runs not in ``since_ids``."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs(dag_id)
            if all(r["state"] in self.TERMINAL for r in runs):
                return [r for r in runs if since_ids is None or r["dag_run_id"] not in since_ids]
            if time.monotonic() > deadline:
                raise SeasonError(f"timed out waiting for {dag_id} to finish its runs")
            time.sleep(5)


SEASON_DAGS = ("ingest_flights", "materialize_features", "batch_predict", "monitor_model", "train_model")


def data_range(settings: "Settings", use_case) -> "tuple[date, date | None]":
    """The replayed data's first and last day (business time zone).

    From the source database's coverage of the event table when it answers; otherwise the use
    case's ``history_start`` (replayed) and no known end.
    """
    from zoneinfo import ZoneInfo

    from airloop.features.layout import history_start

    from airloop.ingest import SourceDatabase, SourceUnavailable

    first = history_start(settings, use_case.features)
    try:
        table = use_case.table(use_case.features.event_table)
        coverage = SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days).coverage(table)
    except (SourceUnavailable, ImportError):  # no source loaded here: the use case's own start is enough
        return first, None
    if coverage is None:
        return first, None
    zone = ZoneInfo(use_case.timezone)
    return max(first, coverage[0].astimezone(zone).date()), coverage[1].astimezone(zone).date()


def season_plan(start, end, *, settings: "Settings", warmup_days: int = 28,
                data: "tuple[date, date | None] | None" = None):  # fmt: skip
    """The warm-up plan of a season over ``[start, end]`` on this installation's data (no Airflow).

    :raises airloop.loop.warmup.WarmupError: the range cannot run on the data (names the days).
    """
    from airloop.core.usecase import load_use_case
    from airloop.loop.warmup import plan_warmup

    use_case = load_use_case(settings.use_case)
    data_first, data_last = data or data_range(settings, use_case)
    return plan_warmup(use_case.day(start), use_case.day(end), use_case=use_case, training_days=warmup_days,
                       data_first=data_first, data_last=data_last)  # fmt: skip


def missing_feature_days(lake: "Lake", use_case, days: "list[LogicalDay]", prefixes: "dict[str, str] | None" = None) -> "list[LogicalDay]":
    """Days of ``days`` where some feature view has no published partition.

    Day D's partitions are the ones scoring D + 1 waits for (:func:`airloop.scoring.upstream_partitions`),
    so the season checks exactly what its scoring will read.
    """
    from airloop.core.storage import read_manifest
    from airloop.scoring import upstream_partitions

    return [d for d in days if any(read_manifest(lake, p) is None for p in upstream_partitions(d.shift(1), use_case, prefixes))]


def run_season(
    start: str | date,
    end: str | date,
    *,
    settings: "Settings",
    client: AirflowClient,
    warmup_days: int = 28,
    log=print,
    timeout_s: float = 3600,
    data: "tuple[date, date | None] | None" = None,
    lake: "Lake | None" = None,
) -> SeasonSummary:
    """Run the loop over ``[start, end]`` through the scheduler, week by week, then summarize.

    1. Warm-up (:func:`airloop.loop.warmup.plan_warmup`, printed before anything starts): ingest
       the raw history the features need, compute the feature days the first training and the
       first scored day look up, and train the first champion on the ``warmup_days`` days
       before ``start`` if there is none.
    2. For each week of the range: ingest its days (their outcomes are what monitoring later
       evaluates; features are looked up point-in-time, so scoring never sees them early); score
       them with a backfill of ``batch_predict`` pinned to the current champion (past days have no
       serving history); each scored day triggers ``monitor_model`` through the predictions asset,
       whose drift policy may trigger ``train_model`` through the drift asset; wait for all of it;
       then the weekly retraining on the last ``window_days`` days that have features.

    Ingesting a range runs ``materialize_features`` per day through the raw-zone assets; a day
    whose raw lookback is not all in yet skips (backfill runs finish out of order), so after each
    ingestion the season triggers ``materialize_features`` for the days still without features.

    :param data: the data's first and last day (default: :func:`data_range`).
    :raises airloop.loop.warmup.WarmupError: the range cannot run on the data (names the days).
    """
    from airloop.core.storage import open_lake
    from airloop.core.usecase import load_use_case
    from airloop.registry import ModelRegistry
    from airloop.scoring import view_prefixes

    use_case = load_use_case(settings.use_case)
    plan = season_plan(start, end, settings=settings, warmup_days=warmup_days, data=data)
    first, last = plan.first, plan.last
    log(plan.describe())
    lake = lake or open_lake(settings)
    registry = ModelRegistry(settings.registry_url)
    model_name = use_case.model.name
    for dag_id in SEASON_DAGS:
        client.unpause(dag_id)

    def ingest(days: "list[LogicalDay]", feature_days: "list[LogicalDay]") -> None:
        keys = {d.key for d in days}
        log(f"[season] ingest {days[0]} .. {days[-1]} ({len(days)} days)")
        client.backfill("ingest_flights", days[0].date, days[-1].date)
        client.wait_for_partitions("ingest_flights", keys, timeout_s, log)
        client.wait_for_partitions("materialize_features", keys, timeout_s, log)
        missing = missing_feature_days(lake, use_case, feature_days, view_prefixes(settings, use_case, lake=lake))
        if missing:
            log(f"[season] features for {len(missing)} days ({missing[0]} .. {missing[-1]}) after their raw history")
            before = {r["dag_run_id"] for r in client.runs("materialize_features")}
            for day in missing:
                client.trigger("materialize_features", {"ds": day.key})
            client.wait_idle("materialize_features", timeout_s, before)
            still = missing_feature_days(lake, use_case, missing, view_prefixes(settings, use_case, lake=lake))
            if still:
                raise SeasonError(f"materialize_features published nothing for {[d.key for d in still][:5]}: "
                                  "see its runs (task log of compute_features) in the Airflow UI")  # fmt: skip

    def train(window_start: "LogicalDay", window_end: "LogicalDay", reason: str) -> None:
        before = {r["dag_run_id"] for r in client.runs("train_model")}
        log(f"[season] train on {window_start} .. {window_end} ({reason})")
        client.trigger("train_model", {"window_start": window_start.key, "window_end": window_end.key,
                                       "reason": reason})  # fmt: skip
        for run in client.wait_idle("train_model", timeout_s, before):
            log(f"[season]   train_model {run['dag_run_id']}: {run['state']}")

    if plan.raw_days:
        ingest(plan.raw_days, plan.feature_days)
    if registry.champion(model_name) is None:
        train(plan.training_days[0], plan.training_days[-1], "season: first model")
    if registry.champion(model_name) is None:
        raise SeasonError("no champion after the first training: see the train_model run in the Airflow UI")

    days = first.range_to(last)
    weeks = [days[i : i + 7] for i in range(0, len(days), 7)]
    for week in weeks:
        ingest(week, week)
        champion = registry.champion(model_name)
        keys = {d.key for d in week}
        trains_before = {r["dag_run_id"] for r in client.runs("train_model")}
        log(f"[season] score {week[0]} .. {week[-1]} with v{champion.version}, then monitor")
        client.backfill("batch_predict", week[0].date, week[-1].shift(1).date, {"model_version": champion.version})
        client.wait_for_partitions("batch_predict", keys, timeout_s, log)
        client.wait_for_partitions("monitor_model", keys, timeout_s, log)
        for run in client.wait_idle("train_model", timeout_s, trains_before):
            log(f"[season]   drift-triggered train_model {run['dag_run_id']}: {run['state']}")
        window_days = use_case.model.window_days
        train(max(plan.training_days[0], week[-1].shift(-(window_days - 1))), week[-1], "season: weekly retraining")
    return summarize(plan.raw_days[0] if plan.raw_days else first, last, settings=settings, lake=lake)

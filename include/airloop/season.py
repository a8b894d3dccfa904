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

from airloop.dates import ds_range, parse_ds

if TYPE_CHECKING:
    from airloop.config import Settings
    from airloop.storage import Lake


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
    from airloop.storage import read_manifest

    return read_manifest(lake, prefix)


def ingestion_totals(lake: "Lake", days: list[date], tables: list[str]) -> dict[str, dict[str, int]]:
    """Per table: valid rows, quarantined rows and days ingested, from the raw manifests."""
    from airloop.storage import partition_prefix

    out = {}
    for table in tables:
        totals = {"rows": 0, "quarantined": 0, "days": 0}
        for day in days:
            manifest = _manifest(lake, partition_prefix("raw", table, day.isoformat()))
            if manifest is None:
                continue
            totals["days"] += 1
            totals["rows"] += int(manifest.get("rows", 0))
            totals["quarantined"] += int(manifest.get("quarantined_rows", 0))
        out[table] = totals
    return out


def weekly_auc(lake: "Lake", days: list[date], *, late_minutes: int = 15, key: tuple[str, ...] | None = None) -> list[dict]:
    """ROC AUC of the nightly predictions on their realized outcomes, per ISO week (Mon-Sun).

    Only days that were both scored and ingested count; unlabelled flights are left out.
    """
    import pandas as pd

    from airloop.monitor import join_outcomes, load_outcomes, predictions_prefix, roc_auc
    from airloop.storage import PartitionNotFound, read_partition_frame

    weeks: dict[date, list] = defaultdict(list)
    for day in days:
        try:
            predictions = read_partition_frame(lake, predictions_prefix(day.isoformat()))
        except PartitionNotFound:
            continue
        outcomes = load_outcomes(lake, day.isoformat(), late_minutes=late_minutes)
        if outcomes is None:
            continue
        joined = join_outcomes(predictions, outcomes, key)
        weeks[day - timedelta(days=day.weekday())].append(joined.assign(ds=day.isoformat()))
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


def summarize(start: str | date, end: str | date, *, settings: "Settings", lake: "Lake | None" = None) -> SeasonSummary:
    """What the loop did over ``[start, end]`` (see the module docstring)."""
    from airloop.monitor import MonitorConfig, MonitoringStore, predictions_prefix
    from airloop.storage import open_lake
    from airloop.usecase import load_use_case

    lake = lake or open_lake(settings)
    use_case = load_use_case(settings.use_case)
    days = ds_range(start, end)
    summary = SeasonSummary(start=days[0].isoformat(), end=days[-1].isoformat())
    summary.ingested = ingestion_totals(lake, days, list(use_case.tables))
    for day in days:
        manifest = _manifest(lake, predictions_prefix(day.isoformat()))
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
    summary.monitored_days = len({r["ds"] for r in store.rows(kind="drift", start=summary.start, end=summary.end)})
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

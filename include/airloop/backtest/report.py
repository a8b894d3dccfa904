"""The backtest's figures: realized AUC per week, month and quarter per policy; trainings,
promotions, drift firings with their evidence; training CPU time. Written as ``backtest.json``,
``backtest.csv`` (one row per policy per week) and ``backtest.html`` (:mod:`~airloop.backtest.html`).

Realized AUC pools every labelled flight of the period (scores of the nightly predictions against
arrival delay > 15 min); months and quarters are those of the *source* calendar (the replayed
day minus the replay offset), so "April" is April 2013 whatever the offset. Everything is
recomputed from the policies' checkpoints and lakes, so the files are the same bytes whenever
they are written from the same days.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import date, timedelta
from typing import TYPE_CHECKING

from airloop.backtest.workspace import Workspace, dump_json, write_atomic

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.config import Settings
    from airloop.core.storage import Lake
    from airloop.core.usecase import UseCase

CSV_COLUMNS = ("policy", "week", "days", "flights", "late_share", "auc", "model_versions", "trainings", "promotions",
               "drift_firings", "training_cpu_s")  # fmt: skip


def realized_outcomes(lake: "Lake", days: list[str], use_case: "UseCase", late_minutes: int) -> dict[str, "pd.DataFrame"]:
    """Per scored day: its predictions joined to their realized labels (``is_delayed``, ``score``)."""
    from airloop.monitoring import scored_outcomes

    key = use_case.prediction.key if use_case.prediction is not None else None
    out = {}
    for ds in days:
        joined = scored_outcomes(lake, use_case.day(ds), key=key, late_minutes=late_minutes)
        if joined is not None:
            out[ds] = joined[["is_delayed", "score", "model_version"]].dropna(subset=["is_delayed"])
    return out


def _auc(frames: list["pd.DataFrame"]) -> tuple[float | None, int, float | None]:
    import pandas as pd

    from airloop.monitoring import roc_auc

    if not frames:
        return None, 0, None
    frame = pd.concat(frames, ignore_index=True)
    if frame.empty or frame["is_delayed"].nunique() < 2:
        return None, len(frame), None
    return _r(roc_auc(frame["is_delayed"].astype(int), frame["score"])), len(frame), _r(frame["is_delayed"].mean())


def _r(value, digits: int = 4):
    return None if value is None else round(float(value), digits)


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def policy_figures(name: str, state: dict, outcomes: dict, offset_days: int) -> dict:
    """One policy's figures from its day records and realized outcomes."""
    days = state["days"]
    weeks: dict[date, dict] = defaultdict(lambda: {"frames": [], "days": 0, "versions": set(), "trainings": 0,
                                                   "promotions": 0, "firings": 0, "cpu": 0.0})  # fmt: skip
    months: dict[str, list] = defaultdict(list)
    quarters: dict[str, list] = defaultdict(list)
    trainings, firings, signal = [], [], []
    for record in days:
        day = date.fromisoformat(record["ds"])  # our own stored key, read back
        week = weeks[_monday(day)]
        week["days"] += 1
        version = record["scoring"].get("model_version")
        if version is not None:
            week["versions"].add(int(version))
        frame = outcomes.get(record["ds"])
        if frame is not None:
            week["frames"].append(frame)
            source = day - timedelta(days=offset_days)
            months[f"{source.year}-{source.month:02d}"].append(frame)
            quarters[f"{source.year}-Q{(source.month - 1) // 3 + 1}"].append(frame)
        signal.append({"ds": record["ds"], **record.get("signal", {})})
        if record.get("firing"):
            week["firings"] += 1
            firings.append({"ds": record["ds"], "evidence": record["firing"],
                            "training_version": (record.get("training") or {}).get("version")})  # fmt: skip
        training = record.get("training")
        if training:
            week["trainings"] += 1
            week["promotions"] += training.get("status") == "promoted"
            week["cpu"] += float(training.get("cpu_s") or 0.0)
            trainings.append({"ds": record["ds"], **training})
    weekly = []
    for monday in sorted(weeks):
        w = weeks[monday]
        auc, flights, late = _auc(w["frames"])
        weekly.append({"policy": name, "week": monday.isoformat(), "days": w["days"], "flights": flights, "late_share": late,
                       "auc": auc, "model_versions": sorted(w["versions"]), "trainings": w["trainings"],
                       "promotions": w["promotions"], "drift_firings": w["firings"], "training_cpu_s": round(w["cpu"], 3)})  # fmt: skip
    monthly = [{"month": m, "auc": _auc(f)[0], "flights": _auc(f)[1]} for m, f in sorted(months.items())]
    quarterly = [{"quarter": q, "auc": _auc(f)[0], "flights": _auc(f)[1]} for q, f in sorted(quarters.items())]
    month_aucs = [m["auc"] for m in monthly if m["auc"] is not None]
    initial = state.get("initial") or {}
    return {
        "policy": name,
        "initial": initial,
        "summary": {
            "monthly_auc_mean": _r(sum(month_aucs) / len(month_aucs)) if month_aucs else None,
            "monthly_auc_min": min(month_aucs) if month_aucs else None,
            "monthly_auc_max": max(month_aucs) if month_aucs else None,
            "pooled_auc": _auc(list(outcomes.values()))[0],
            "trainings": len(trainings) + 1,  # the initial model counts, as in the table
            "promotions": sum(t.get("status") == "promoted" for t in trainings) + (initial.get("status") == "promoted"),
            "drift_firings": len(firings),
            "training_cpu_s": round(sum(float(t.get("cpu_s") or 0.0) for t in trainings), 3),
            "initial_training_cpu_s": round(float(initial.get("cpu_s") or 0.0), 3),
        },
        "weekly": weekly,
        "monthly": monthly,
        "quarterly": quarterly,
        "trainings": trainings,
        "firings": firings,
        "signal": signal,
    }


def build_report(states: dict[str, dict], *, policies, lakes: dict[str, "Lake"], settings: "Settings", use_case: "UseCase") -> dict:
    """The report's figures for every policy (see the module docstring)."""
    from airloop.monitoring import MonitorConfig

    late = MonitorConfig.from_env(use_case).late_minutes
    figures = []
    for policy in policies:
        state = states[policy.name]
        outcomes = realized_outcomes(lakes[policy.name], [d["ds"] for d in state["days"]], use_case, late)
        figures.append({**policy_figures(policy.name, state, outcomes, settings.replay_offset_days),
                        "parameters": policy.describe()})  # fmt: skip
    header = next(iter(states.values()))["header"]
    thresholds = _thresholds(policies)
    return {"start": header["start"], "end": header["end"], "initial_start": header["initial_start"],
            "train_overrides": header["train_overrides"], "replay_offset_days": settings.replay_offset_days,
            "thresholds": thresholds, "policies": figures}  # fmt: skip


def _thresholds(policies) -> dict:
    for policy in policies:
        drift_policy = getattr(policy, "drift_policy", None)
        if drift_policy is not None:
            return {"drift_share": getattr(drift_policy, "drift_share_threshold", None),
                    "auc_drop_bound": getattr(drift_policy, "auc_drop_threshold", None)}  # fmt: skip
    from airloop.monitoring import DriftPolicy

    shipped = DriftPolicy.from_env()
    return {"drift_share": shipped.drift_share_threshold, "auc_drop_bound": shipped.auc_drop_threshold}


def report_csv(report: dict) -> str:
    """One row per policy per week (``CSV_COLUMNS``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for figures in report["policies"]:
        for week in figures["weekly"]:
            row = dict(week, model_versions=" ".join(f"v{v}" for v in week["model_versions"]))
            writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
    return out.getvalue()


def format_summary(report: dict) -> str:
    """The per-policy table the CLI prints."""
    lines = [f"Backtest {report['start']} .. {report['end']} (initial model on {report['initial_start']} .. the day before)",
             f"{'policy':22} {'monthly AUC mean (min-max)':28} {'pooled':>7} {'trainings':>9} {'promoted':>8} "
             f"{'firings':>7} {'train CPU s':>11}"]  # fmt: skip
    for f in report["policies"]:
        s = f["summary"]
        rng = f"{_fmt(s['monthly_auc_mean'])} ({_fmt(s['monthly_auc_min'])}-{_fmt(s['monthly_auc_max'])})"
        lines.append(f"{f['policy']:22} {rng:28} {_fmt(s['pooled_auc']):>7} {s['trainings']:>9} {s['promotions']:>8} "
                     f"{s['drift_firings']:>7} {s['training_cpu_s'] + s['initial_training_cpu_s']:>11.1f}")  # fmt: skip
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def write_report(workspace: Workspace, states: dict[str, dict], *, policies, settings, lakes, use_case) -> dict:
    """Write ``backtest.json``, ``backtest.csv`` and ``backtest.html`` in the workspace; return the report."""
    from airloop.backtest.html import render_html

    report = build_report(states, policies=policies, lakes=lakes, settings=settings, use_case=use_case)
    write_atomic(workspace.root / "backtest.json", dump_json(report))
    write_atomic(workspace.root / "backtest.csv", report_csv(report).encode())
    write_atomic(workspace.root / "backtest.html", render_html(report).encode())
    return report

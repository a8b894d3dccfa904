"""Backtesting a retraining policy: replay history day by day through the loop's own functions.

``airloop backtest FROM TO --policy NAME ... --workspace DIR`` (:mod:`airloop.cli.backtest`)
wraps :func:`run_backtest`. In its own workspace (its own lake and SQLite registries, never the
live ones) it ingests and computes features once, then for each policy replays every day as the
DAGs would (score at 02:00, monitor, decide, train behind the gate at 03:00) on a replayed
:class:`~airloop.core.clock.ReplayClock`, checkpointing after each day, and writes
``backtest.json``, ``backtest.csv`` and ``backtest.html``.

* ``policies``: :class:`RetrainingPolicy` and the shipped ones (frozen, scheduled, drift,
  scheduled+drift), :class:`TrainDecision`, :class:`PolicyState`, :func:`make_policy`.
* ``replay``: :func:`run_backtest`, :func:`prepare_shared` (the shared ingestion and features).
* ``steps``: one day of one policy (score, monitor, decide, train).
* ``workspace``: the folders, :class:`WorkspaceLake`, :class:`Checkpoint`.
* ``report`` and ``html``: the figures, JSON, CSV and the self-contained HTML page.
"""

from __future__ import annotations

from airloop.backtest.policies import (
    POLICY_NAMES,
    DriftTriggeredPolicy,
    FrozenPolicy,
    PolicyError,
    PolicyState,
    RetrainingPolicy,
    ScheduledDriftPolicy,
    ScheduledPolicy,
    TrainDecision,
    make_policy,
)
from airloop.backtest.replay import BacktestResult, prepare_shared, run_backtest
from airloop.backtest.report import build_report, format_summary, report_csv
from airloop.backtest.workspace import Checkpoint, Workspace, WorkspaceError, WorkspaceLake

__all__ = [
    "POLICY_NAMES",
    "BacktestResult",
    "Checkpoint",
    "DriftTriggeredPolicy",
    "FrozenPolicy",
    "PolicyError",
    "PolicyState",
    "RetrainingPolicy",
    "ScheduledDriftPolicy",
    "ScheduledPolicy",
    "TrainDecision",
    "Workspace",
    "WorkspaceError",
    "WorkspaceLake",
    "build_report",
    "format_summary",
    "make_policy",
    "prepare_shared",
    "report_csv",
    "run_backtest",
]

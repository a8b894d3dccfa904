"""The optional human gate after the automatic one: its settings, what a reviewer is shown, and
how the reviewer's answer changes the decision the promote task applies.

Settings (environment, read by :meth:`ApprovalSettings.from_env`; a bad value is refused with
:class:`~airloop.core.config.SettingsError` naming the variable):

- ``AIRLOOP_PROMOTION_APPROVAL``: ``auto`` (default; the gate's decision is applied as it is) or
  ``approve`` (a promotion the gate allows waits for a person: approve promotes, reject keeps the
  champion, no answer in time keeps the champion).
- ``AIRLOOP_APPROVAL_TIMEOUT_HOURS``: how long a decision may wait (default 48; 0.01 .. 720).
- ``AIRLOOP_APPROVERS``: comma-separated user ids who may answer (default: anyone who can see
  the DAG run in the Airflow UI).

Pure functions: the Airflow side (:mod:`airloop_plugins.operators.approval`) shows
:func:`review_markdown` in the UI's required actions and passes the answer, as a
:func:`review_outcome` dict, to :func:`apply_review`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airloop.core.config import SettingsError, env_float, env_str

if TYPE_CHECKING:
    from airloop.registry import ModelVersion

MODES = ("auto", "approve")
APPROVED, REJECTED, TIMED_OUT = "approved", "rejected", "timed_out"
OUTCOMES = (APPROVED, REJECTED, TIMED_OUT)
REVIEW_METRICS = ("roc_auc", "log_loss", "brier", "ece", "precision", "recall", "worst_slice_roc_auc", "rows")


@dataclass(frozen=True)
class ApprovalSettings:
    """How promotions are approved (see the module docstring)."""

    mode: str = "auto"
    timeout_hours: float = 48.0
    approvers: tuple[str, ...] = ()

    def __post_init__(self):
        if self.mode not in MODES:
            raise SettingsError(
                f"AIRLOOP_PROMOTION_APPROVAL must be one of {', '.join(MODES)} (auto: the gate decides alone; "
                f"approve: a person approves each promotion), got {self.mode!r}"
            )

    @classmethod
    def from_env(cls) -> "ApprovalSettings":
        mode = env_str("AIRLOOP_PROMOTION_APPROVAL", "auto").strip().lower()
        hours = env_float("AIRLOOP_APPROVAL_TIMEOUT_HOURS", 48.0, minimum=0.01, maximum=720)
        approvers = tuple(a.strip() for a in env_str("AIRLOOP_APPROVERS", "").split(",") if a.strip())
        return cls(mode=mode, timeout_hours=hours, approvers=approvers)

    @property
    def required(self) -> bool:
        return self.mode == "approve"

    @property
    def timeout(self) -> timedelta:
        return timedelta(hours=self.timeout_hours)


def _num(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def review_markdown(decision: dict, mv: "ModelVersion", *, card_url: str, timeout_hours: float) -> str:
    """What the reviewer reads (Markdown): challenger against the incumbent overall and per
    slice on the gate's holdout, the guardrails, the link to the model card, what each answer does."""
    incumbent = decision.get("incumbent", "incumbent")
    challenger, other = decision.get("challenger_metrics") or {}, decision.get("incumbent_metrics") or {}
    holdout = decision.get("holdout") or {}
    lines = [
        f"**{mv.label}** (trained on {mv.window_start} .. {mv.window_end}, {mv.training_rows} rows, "
        f"feature service `{mv.feature_service}`) against **{incumbent}**.",
        "",
        f"Automatic gate: **{decision.get('reason', '')}**",
        "",
        f"Holdout: {holdout.get('start', '?')} .. {holdout.get('end', '?')} ({holdout.get('rows', '?')} rows, "
        "the same rows for both models).",
        "",
        f"| metric | {mv.label} | {incumbent} |",
        "|---|---|---|",
        *[f"| {m} | {_num(challenger.get(m))} | {_num(other.get(m))} |" for m in REVIEW_METRICS if m in challenger or m in other],
    ]
    slices = sorted(set(challenger.get("slices") or {}) | set(other.get("slices") or {}))
    if slices:
        c_s, o_s = challenger.get("slices") or {}, other.get("slices") or {}
        lines += ["", f"| slice | rows | AUC {mv.label} | AUC {incumbent} | Brier {mv.label} | Brier {incumbent} |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        lines += [
            f"| {k} | {_num((c_s.get(k) or {}).get('rows'))} | {_num((c_s.get(k) or {}).get('roc_auc'))} | "
            f"{_num((o_s.get(k) or {}).get('roc_auc'))} | {_num((c_s.get(k) or {}).get('brier'))} | "
            f"{_num((o_s.get(k) or {}).get('brier'))} |"
            for k in slices
        ]
    if decision.get("guardrails"):
        lines += ["", "| guardrail | challenger | incumbent | regression | tolerance | result |", "|---|---|---|---|---|---|"]
        lines += [
            f"| {g['metric']} | {_num(g.get('challenger'))} | {_num(g.get('incumbent'))} | {_num(g.get('regression'))} | "
            f"{_num(g.get('tolerance'))} | {'passed' if g.get('passed') else 'FAILED'} |"
            for g in decision["guardrails"]
        ]
    lines += [
        "",
        f"[Model card of {mv.label}]({card_url})",
        "",
        f"**Approve** makes {mv.label} the champion. **Reject** keeps {incumbent} (give the reason in the form; "
        f"it is recorded in the registry with your name). Without an answer within {timeout_hours:g} h, "
        f"{incumbent} stays the champion.",
    ]
    return "\n".join(lines)


def review_outcome(outcome: str, *, by: str | None = None, by_id: str | None = None, at: str | None = None,
                   comment: str | None = None, timeout_hours: float | None = None) -> dict:  # fmt: skip
    """The reviewer's answer as a JSON-able dict (what the approval task returns).

    :raises ValueError: ``outcome`` is not one of :data:`OUTCOMES`.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"review outcome must be one of {OUTCOMES}, got {outcome!r}")
    return {"asked": True, "outcome": outcome, "by": by, "by_id": by_id, "at": at,
            "comment": (comment or "").strip(), "timeout_hours": timeout_hours}  # fmt: skip


def apply_review(decision: dict, review: dict | None) -> tuple[dict, str | None]:
    """The decision to apply after a person's review, and who decided (None: nobody did).

    No review, or none asked (the gate kept the incumbent, or approval is ``auto``): the gate's
    decision unchanged. Approved: promoted, the approver named in the reason. Rejected: kept,
    with the reviewer's reason. Timed out: kept. The gate's own reason stays in the record
    (``apply_decision`` appends it) and the review goes into the decision's ``review`` entry.
    """
    if not review or not review.get("asked"):
        return decision, None
    outcome = review.get("outcome")
    if outcome not in OUTCOMES:
        raise ValueError(f"review outcome must be one of {OUTCOMES}, got {outcome!r}")
    if not decision.get("promote"):
        raise ValueError("a review was asked for a decision the gate did not promote")
    who = review.get("by") or review.get("by_id")
    comment = review.get("comment") or ""
    incumbent = decision.get("incumbent", "the incumbent")
    if outcome == APPROVED:
        reason = f"approved by {who}" + (f": {comment}" if comment else "")
        return {**decision, "reason": f"{reason} ({decision['reason']})", "review": review}, who
    if outcome == REJECTED:
        reason = f"kept {incumbent}: rejected by {who}: {comment or 'no reason given'}"
        return {**decision, "promote": False, "reason": f"{reason} (gate: {decision['reason']})", "review": review}, who
    hours = review.get("timeout_hours")
    waited = f"{hours:g} h" if isinstance(hours, (int, float)) else "the configured time"
    reason = f"kept {incumbent}: no approval within {waited}"
    return {**decision, "promote": False, "reason": f"{reason} (gate: {decision['reason']})", "review": review}, None

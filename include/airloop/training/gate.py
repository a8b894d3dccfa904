"""The champion/challenger gate: promote only a model that is better on the same evidence.

Both models' metrics come from the same holdout rows. The challenger is promoted when

1. it beats the incumbent (the champion, or the baseline when there is no champion yet) on the
   use case's primary metric by at least ``promotion_margin``, and
2. no guardrail regresses beyond its tolerance (``spec.guardrails``: e.g. Brier for
   calibration, ``worst_slice_roc_auc`` for the weakest slice).

The decision carries every number it used, so the task log and the registry show why.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airloop.core.usecase import ModelSpec

LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def improvement(metric: str, challenger, incumbent) -> float | None:
    """How much better the challenger is (positive: better), in the metric's own units."""
    c, i = _number(challenger), _number(incumbent)
    if c is None or i is None:
        return None
    return c - i if higher_is_better(metric) else i - c


@dataclass(frozen=True)
class GuardrailCheck:
    metric: str
    challenger: float | None
    incumbent: float | None
    regression: float | None  # positive: the challenger is worse
    tolerance: float
    passed: bool


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    incumbent: str  # "baseline" or "champion v3"
    incumbent_version: int | None
    primary_metric: str
    challenger_value: float | None
    incumbent_value: float | None
    improvement: float | None
    margin: float
    guardrails: list[GuardrailCheck] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def decide(
    challenger: dict,
    incumbent_metrics: dict | None,
    *,
    spec: "ModelSpec",
    incumbent: str = "baseline",
    incumbent_version: int | None = None,
    refusal: str | None = None,
) -> GateDecision:
    """Compare holdout metrics of challenger and incumbent (see the module docstring).

    :param incumbent: who the challenger must beat, for messages (``baseline``, ``champion v3``).
    :param incumbent_version: the champion's version (None for the baseline); a promotion is
        only applied while this is still the champion.
    :param refusal: a reason the comparison cannot be made at all (the challenger is kept out).
    """
    metric = spec.primary_metric
    c_value = _number(challenger.get(metric))
    i_value = _number((incumbent_metrics or {}).get(metric))
    gain = improvement(metric, c_value, i_value)
    base = {
        "incumbent": incumbent,
        "incumbent_version": incumbent_version,
        "primary_metric": metric,
        "challenger_value": c_value,
        "incumbent_value": i_value,
        "improvement": gain,
        "margin": spec.promotion_margin,
    }
    if refusal:
        return GateDecision(promote=False, reason=f"kept {incumbent}: {refusal}", **base)
    checks = []
    for name, tolerance in sorted(spec.guardrails.items()):
        c, i = _number(challenger.get(name)), _number((incumbent_metrics or {}).get(name))
        gained = improvement(name, c, i)
        regression = None if gained is None else -gained
        # A guardrail the challenger cannot be measured on fails; one the incumbent lacks passes.
        passed = c is not None and (regression is None or regression <= tolerance)
        checks.append(GuardrailCheck(name, c, i, regression, tolerance, passed))
    if c_value is None:
        return GateDecision(False, f"kept {incumbent}: the challenger has no {metric}", guardrails=checks, **base)
    if i_value is None:
        reason = f"promoted over {incumbent}: it has no {metric} to compare with"
        failed = [g for g in checks if not g.passed]
        if failed:
            return GateDecision(False, f"kept {incumbent}: guardrail {failed[0].metric} unmeasurable", guardrails=checks, **base)
        return GateDecision(True, reason, guardrails=checks, **base)
    if gain < spec.promotion_margin:
        reason = (
            f"kept {incumbent}: {metric} {c_value:.4f} vs {i_value:.4f} "
            f"({_signed(gain)}), needs {_signed(spec.promotion_margin)}"
        )
        return GateDecision(False, reason, guardrails=checks, **base)
    failed = [g for g in checks if not g.passed]
    if failed:
        detail = "; ".join(
            f"{g.metric} {_fmt(g.challenger)} vs {_fmt(g.incumbent)} regresses {_fmt(g.regression)} > {g.tolerance}"
            for g in failed
        )
        return GateDecision(False, f"kept {incumbent}: {metric} {_signed(gain)} but guardrail failed: {detail}", guardrails=checks, **base)
    reason = f"promoted over {incumbent}: {metric} {c_value:.4f} vs {i_value:.4f} ({_signed(gain)} >= {_signed(spec.promotion_margin)}), guardrails passed"
    return GateDecision(True, reason, guardrails=checks, **base)


def _signed(value) -> str:
    return "n/a" if value is None else f"{value:+.4f}"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def format_decision(decision: dict) -> str:
    """A few lines for the task log: the decision and every number behind it."""
    lines = [
        f"GATE {'PROMOTE' if decision['promote'] else 'KEEP'}: {decision['reason']}",
        f"  {decision['primary_metric']}: challenger {_fmt(decision['challenger_value'])}, "
        f"{decision['incumbent']} {_fmt(decision['incumbent_value'])}, improvement {_signed(decision['improvement'])}, "
        f"margin {decision['margin']}",
    ]
    for g in decision.get("guardrails", []):
        lines.append(
            f"  guardrail {g['metric']}: challenger {_fmt(g['challenger'])}, incumbent {_fmt(g['incumbent'])}, "
            f"regression {_fmt(g['regression'])}, tolerance {g['tolerance']} -> {'ok' if g['passed'] else 'FAILED'}"
        )
    return "\n".join(lines)

"""The human gate on promotion: the standard provider's ``ApprovalOperator`` showing the challenger
against the champion, and the notifier that tells people a decision waits.

:class:`PromotionApprovalOperator` runs between ``register`` and ``promote_or_keep`` when
``AIRLOOP_PROMOTION_APPROVAL=approve`` (:class:`airloop.training.approval.ApprovalSettings`).
When the automatic gate already kept the champion there is nothing to approve and it returns at
once. Otherwise it writes a required action (Approve / Reject, with a reason field) to the
Airflow UI and waits: on Airflow 3.3 the task is parked in ``awaiting_input`` (no worker slot, no
trigger); the scheduler applies the default (Reject) when ``response_timeout`` passes. It never
skips or fails the promote task: it returns the answer
(:func:`airloop.training.approval.review_outcome`) and ``promote_or_keep`` records it in the
registry (promotion, or refusal with the reviewer's name and reason).
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict

from airloop_plugins.notifiers import AirloopNotifier

CARD_ROUTE = "/airloop/models/{model_name}/versions/{version}/card"


class PromotionApprovalNotifier(AirloopNotifier):
    """Tells the configured channel (log, e-mail or webhook: ``AIRLOOP_ALERT_CONN_ID``) that a
    promotion waits for a decision, with the link to the required action and the model card."""

    def __init__(self, *, conn_id: str | None = None, **kwargs):
        super().__init__(event="approval", conn_id=conn_id, **kwargs)

    def payload(self, context) -> dict:
        body = super().payload(context)
        task = context.get("task")
        body["approval"] = {
            "subject": getattr(task, "subject", None),
            "required_action": getattr(task, "review_link", None),
            "model_card": getattr(task, "card_url", None),
            "timeout_hours": getattr(task, "timeout_hours", None),
            "assigned_users": [u.get("id") for u in (getattr(task, "assigned_users", None) or [])],
        }
        return body

    def subject(self, body: dict) -> str:
        return f"[airloop] decision waits: {body['approval'].get('subject')}"


def approval_notifier(conn_id: str | None = None) -> PromotionApprovalNotifier:
    """The notifier :class:`PromotionApprovalOperator` calls when it starts waiting."""
    return PromotionApprovalNotifier(conn_id=conn_id)


class PromotionApprovalOperator(ApprovalOperator):
    """Wait for a person to approve or reject the promotion the automatic gate allowed.

    :param version: the registered challenger's version (templated).
    :param decision: the gate's decision dict (templated, from the evaluate task).
    :param timeout_hours: how long to wait; then the champion is kept (the default answer).
    :param model_name: the registry model (default: the use case's).
    Other arguments (``assigned_users``, ``notifiers``, ...) go to ``ApprovalOperator``.
    """

    # subject and body are written by execute from the decision, not templated.
    template_fields = ("version", "decision")
    ui_color = "#fff0d9"

    def __init__(self, *, version, decision, timeout_hours: float = 48.0, model_name: str | None = None, **kwargs):
        kwargs.setdefault("subject", "A model promotion waits for approval")
        # No answer in time: the scheduler answers Reject, so the champion stays.
        kwargs.setdefault("defaults", [ApprovalOperator.REJECT])
        kwargs.setdefault("response_timeout", timedelta(hours=float(timeout_hours)))
        # The DAG's params arrive merged in here; the form shows only the task's own (source "task").
        params = kwargs.pop("params", None)
        params = params if isinstance(params, ParamsDict) else ParamsDict(params or {})
        if "comment" not in params:
            params["comment"] = Param(None, type=["null", "string"], title="Reason", source="task",
                                      description="Why (recorded in the registry with your name).")  # fmt: skip
        kwargs["params"] = params
        super().__init__(**kwargs)
        self.version = version
        self.decision = decision
        self.timeout_hours = float(timeout_hours)
        self.model_name = model_name
        self.review_link = None
        self.card_url = None

    @cached_property
    def registry(self):
        from airloop_plugins.hooks.registry import ModelRegistryHook

        return ModelRegistryHook().registry

    def resolved_model_name(self) -> str:
        if self.model_name:
            return self.model_name
        from airloop.core.config import get_settings
        from airloop.core.usecase import load_use_case

        return load_use_case(get_settings().use_case).model.name

    def prepare_review(self, context, decision: dict) -> None:
        """Set the subject, the Markdown body and the links the reviewer and the notifier see."""
        from airloop.training.approval import review_markdown

        mv = self.registry.get(self.resolved_model_name(), int(self.version))
        base = _api_base_url()
        self.card_url = base + CARD_ROUTE.format(model_name=mv.model_name, version=mv.version)
        self.subject = f"Promote {mv.label} over {decision.get('incumbent')}?"
        self.body = review_markdown(decision, mv, card_url=self.card_url, timeout_hours=self.timeout_hours)
        ti = context["task_instance"]
        if base:
            self.review_link = self.generate_link_to_ui_from_context(context=context, base_url=base)
        else:  # no [api] base_url: a link relative to the UI
            self.review_link = f"/dags/{ti.dag_id}/runs/{ti.run_id}/tasks/{ti.task_id}/required_actions"

    def execute(self, context):
        from airloop_plugins.operators.training import _blank, _parse

        decision = _blank(self.decision)
        decision = decision if isinstance(decision, dict) else _parse(decision)
        if not decision.get("promote"):
            self.log.info("The gate kept %s (%s): nothing to approve", decision.get("incumbent"), decision.get("reason"))
            return {"asked": False, "reason": decision.get("reason")}
        self.prepare_review(context, decision)
        self.log.info("Asking for approval: %s (waits up to %g h; then keeps the champion)", self.subject, self.timeout_hours)
        return super().execute(context)

    def execute_complete(self, context, event):
        """The answer (or the timeout) as :func:`airloop.training.approval.review_outcome`; never skips."""
        from airloop.training.approval import APPROVED, REJECTED, TIMED_OUT, review_outcome

        if event.get("error_type") == "timeout":
            review = review_outcome(TIMED_OUT, timeout_hours=self.timeout_hours)
        else:
            # The base class validates the answer; ApprovalOperator's own completion would skip
            # promote_or_keep on Reject, and then nobody would record the rejection.
            answer = HITLOperator.execute_complete(self, context=context, event=event)
            user = answer.get("responded_by_user") or {}
            at = answer.get("responded_at")
            comment = (answer.get("params_input") or {}).get("comment")
            if event.get("timedout") or not user:
                outcome = TIMED_OUT
            else:
                outcome = APPROVED if answer["chosen_options"] == [self.APPROVE] else REJECTED
            review = review_outcome(outcome, by=user.get("name"), by_id=user.get("id"),
                                    at=at.isoformat() if hasattr(at, "isoformat") else at, comment=comment,
                                    timeout_hours=self.timeout_hours)  # fmt: skip
        if review["outcome"] == APPROVED:
            self.log.info("Approved by %s: %s", review["by"], review["comment"] or "no comment")
        elif review["outcome"] == REJECTED:
            self.log.info("Rejected by %s: %s", review["by"], review["comment"] or "no reason given")
        else:
            self.log.info("No answer within %g h: the champion stays", self.timeout_hours)
        return review


def _api_base_url() -> str:
    """The UI's base URL (``[api] base_url``) without a trailing slash; '' keeps links relative."""
    from airflow.providers.common.compat.sdk import conf

    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")

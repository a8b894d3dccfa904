"""Alerts: task failures and drift, through Airflow notifiers.

:class:`AirloopNotifier` always writes the alert to the task log. When an Airflow connection is
named (``conn_id=`` or ``AIRLOOP_ALERT_CONN_ID``) it also sends it:

* connection type ``smtp`` (or ``email``): an e-mail through the SMTP provider's
  ``SmtpNotifier``; recipients from the connection's extra ``{"to": "a@x, b@y"}``;
* connection type ``http`` / ``https``: a JSON POST through the HTTP provider's ``HttpNotifier``
  (a webhook: Slack/Teams/Mattermost incoming hooks, Alertmanager, ...); the path from the
  connection's extra ``{"endpoint": "/hooks/abc"}``.

Use it as ``on_failure_callback=failure_notifier()`` and pass ``drift_notifier()`` to the drift
policy operator. Nothing here is imported at parse time except this light module.
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow.sdk import BaseNotifier

ALERT_CONN_ENV = "AIRLOOP_ALERT_CONN_ID"


class AirloopNotifier(BaseNotifier):
    """Log an alert, and send it by e-mail or webhook when a connection is configured.

    :param event: ``failure`` or ``drift`` (the subject and payload say which).
    :param conn_id: Airflow connection to send through; default ``AIRLOOP_ALERT_CONN_ID``; none:
        log only.
    """

    template_fields = ("conn_id",)

    def __init__(self, *, event: str = "failure", conn_id: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.event = event
        self.conn_id = conn_id

    def payload(self, context) -> dict[str, Any]:
        """The alert as a JSON-able dict (what the webhook receives)."""
        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        body: dict[str, Any] = {
            "event": self.event,
            "dag_id": getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", None),
            "task_id": getattr(ti, "task_id", None),
            "run_id": context.get("run_id") or getattr(dag_run, "run_id", None),
            "try_number": getattr(ti, "try_number", None),
            "partition_key": getattr(dag_run, "partition_key", None),
            "ds": (context.get("params") or {}).get("ds") or getattr(dag_run, "partition_key", None),
        }
        if context.get("exception") is not None:
            from airloop.core.redaction import redact_text  # an error may quote a URL or a key

            body["error"] = f"{type(context['exception']).__name__}: {redact_text(context['exception'])}"
        if context.get("drift"):
            body["drift"] = context["drift"]
            body["ds"] = context["drift"].get("ds", body["ds"])
        return body

    def subject(self, body: dict) -> str:
        if self.event == "drift":
            drift = body.get("drift", {})
            return (
                f"[airloop] drift on {body.get('ds')}: retraining on {drift.get('window_start')}..{drift.get('window_end')}"
            )
        return f"[airloop] {body.get('dag_id')}.{body.get('task_id')} failed ({body.get('ds') or body.get('run_id')})"

    def notify(self, context) -> None:
        body = self.payload(context)
        subject = self.subject(body)
        self.log.warning("ALERT %s: %s", subject, json.dumps(body, sort_keys=True, default=str))
        conn_id = self.conn_id or os.environ.get(ALERT_CONN_ENV)
        if not conn_id:
            return
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        kind = (conn.conn_type or "").lower()
        if kind in ("smtp", "email"):
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            to = conn.extra_dejson.get("to")
            if not to:
                raise ValueError(f"connection {conn_id!r} (smtp) needs extra {{'to': 'a@example.com'}}")
            html = "<pre>" + json.dumps(body, indent=2, sort_keys=True, default=str) + "</pre>"
            SmtpNotifier(to=to, smtp_conn_id=conn_id, subject=subject, html_content=html,
                         from_email=conn.extra_dejson.get("from_email")).notify(context)  # fmt: skip
        elif kind in ("http", "https"):
            from airflow.providers.http.notifications.http import HttpNotifier

            HttpNotifier(http_conn_id=conn_id, endpoint=conn.extra_dejson.get("endpoint"),
                         json=json.loads(json.dumps({"text": subject, **body}, default=str)), headers={"Content-Type": "application/json"}).notify(context)  # fmt: skip
        else:
            raise ValueError(f"alert connection {conn_id!r} has type {conn.conn_type!r}; use smtp or http")
        self.log.info("Alert sent through connection %s (%s)", conn_id, kind)


def failure_notifier(conn_id: str | None = None) -> AirloopNotifier:
    """``on_failure_callback`` for Airloop tasks."""
    return AirloopNotifier(event="failure", conn_id=conn_id)


def drift_notifier(conn_id: str | None = None) -> AirloopNotifier:
    """Notifier the drift policy operator calls when it fires."""
    return AirloopNotifier(event="drift", conn_id=conn_id)

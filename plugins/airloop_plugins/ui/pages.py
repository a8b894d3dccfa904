"""HTML of the Airloop pages: plain server-rendered HTML and an inline SVG chart (no JavaScript,
no CDN: the pages work offline and inside the Airflow UI's iframe).

Pure functions from records to strings; :mod:`airloop_plugins.ui.app` feeds them.
"""

from __future__ import annotations

from datetime import date, datetime
from html import escape
from typing import Any, Iterable

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2433;background:#fff}
main{padding:16px 24px;max-width:1200px}
h1{font-size:20px;margin:4px 0 12px} h2{font-size:16px;margin:22px 0 8px}
nav{padding:10px 24px;background:#f4f6fa;border-bottom:1px solid #dde2ea}
nav a{margin-right:18px;color:#2456c8;text-decoration:none;font-weight:600}
table{border-collapse:collapse;width:100%;margin:6px 0 14px}
th,td{border-bottom:1px solid #e4e8ef;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f8f9fb;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;font-weight:600}
.champion{background:#e2f6e9;color:#17683a} .alert{background:#fde7e7;color:#a11d1d}
.muted{color:#6b7385} .warn{color:#a15c00} .empty{padding:14px;background:#f8f9fb;border-radius:6px}
svg text{font:11px system-ui,sans-serif;fill:#4a5262}
"""


def page(title: str, body: str, *, base: str = "") -> str:
    """A whole HTML document with the Airloop navigation bar."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)} · Airloop</title><style>{CSS}</style></head><body>"
        f"<nav><a href='{base}/models'>Model versions</a><a href='{base}/monitoring'>Monitoring</a></nav>"
        f"<main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "<span class='muted'>–</span>"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, datetime):
        return escape(value.strftime("%Y-%m-%d %H:%M UTC"))
    return escape(str(value))


# --- model versions -------------------------------------------------------------------------


def models_page(models: list[dict], *, base: str = "") -> str:
    """``models``: ``[{"name", "champion": int|None, "versions": [ModelVersion], "history": [PromotionRecord]}]``."""
    if not models:
        return page("Model versions", "<p class='empty'>No model is registered yet: run the <b>train_model</b> DAG.</p>", base=base)
    parts = []
    for model in models:
        champion = model["champion"]
        parts.append(f"<h2>{escape(model['name'])} — champion: "
                     f"{'v' + str(champion) if champion is not None else '<span class=muted>none</span>'}</h2>")  # fmt: skip
        rows = []
        for mv in sorted(model["versions"], key=lambda v: v.version, reverse=True):
            metrics = mv.metrics or {}
            badge = " <span class='badge champion'>champion</span>" if mv.version == champion else ""
            rows.append(
                "<tr>"
                f"<td>v{mv.version}{badge}</td><td>{fmt(mv.status)}</td><td>{fmt(mv.window_start)} → {fmt(mv.window_end)}</td>"
                f"<td class='num'>{fmt(mv.training_rows)}</td><td class='num'>{fmt(_metric(metrics, 'roc_auc'))}</td>"
                f"<td class='num'>{fmt(_metric(metrics, 'brier'))}</td><td>{fmt(mv.device)}</td>"
                f"<td>{fmt(mv.created_at)}</td><td class='muted'>{fmt(mv.status_reason)}</td>"
                f"<td><a class='card-link' href='{card_href(base, mv.model_name, mv.version)}'>card</a></td>"
                "</tr>"
            )
        parts.append(
            "<table class='versions'><tr><th>version</th><th>status</th><th>training window</th><th>rows</th>"
            "<th>AUC (validation)</th><th>Brier</th><th>device</th><th>created</th><th>reason</th><th>model card</th></tr>"
            + "".join(rows) + "</table>"
        )  # fmt: skip
        history = sorted(model["history"], key=lambda h: h.at, reverse=True)
        if history:
            parts.append(
                "<h2>Promotion history</h2><table class='history'><tr><th>when</th><th>action</th><th>from</th>"
                "<th>to</th><th>candidate</th><th>reason</th><th>by</th></tr>"
                + "".join(
                    f"<tr><td>{fmt(h.at)}</td><td>{fmt(h.action)}</td><td>{_v(h.from_version)}</td>"
                    f"<td>{_v(h.to_version)}</td><td>{_v(h.candidate_version)}</td><td>{fmt(h.reason)}</td>"
                    f"<td>{fmt(h.actor)}</td></tr>"
                    for h in history
                )
                + "</table>"
            )
        else:
            parts.append("<p class='muted'>No promotion yet.</p>")
    return page("Model versions", "".join(parts), base=base)


def card_href(base: str, model_name: str, version: int) -> str:
    from urllib.parse import quote

    return f"{base}/models/{quote(model_name, safe='')}/versions/{int(version)}/card"


def model_card_page(card, live: dict, *, base: str = "") -> str:
    """A version's model card inside the Airloop pages (the same sections as its HTML and Markdown files)."""
    from airloop.training.card_render import render_html_body

    href = card_href(base, card.model_name, card.version)
    links = (f"<p class='muted'><a href='{base}/models'>All versions</a> · "
             f"<a href='{href}.md'>Markdown</a></p>")  # fmt: skip
    style = ("<style>dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px}dt{color:#6b7385}dd{margin:0}"
             "figure{margin:6px 0} .card-body table{width:auto}</style>")  # fmt: skip
    return page(f"Model card: {card.title}", style + links + f"<div class='card-body'>{render_html_body(card, live)}</div>", base=base)


def _metric(metrics: dict, name: str):
    value = metrics.get(name)
    if value is None and isinstance(metrics.get("validation"), dict):
        value = metrics["validation"].get(name)
    return float(value) if isinstance(value, (int, float)) else None


def _v(version) -> str:
    return "<span class='muted'>–</span>" if version is None else f"v{int(version)}"


# --- monitoring -----------------------------------------------------------------------------


def monitoring_page(days: list[dict], events: list[dict], *, start: str, end: str, threshold: float, base: str = "") -> str:
    """``days``: one dict per date, oldest first, with ``drift`` and ``performance`` rows (or None)
    and ``drift_report`` / ``performance_report``: ``"ok"``, ``"missing"`` or None (no report)."""
    form = (
        f"<form method='get'>from <input name='start' value='{escape(start)}' size='10'> to "
        f"<input name='end' value='{escape(end)}' size='10'> <button>show</button></form>"
    )
    if not days:
        return page("Monitoring", form + f"<p class='empty'>No monitoring results between {escape(start)} and "
                    f"{escape(end)}: the <b>monitor_model</b> DAG has not run for these dates.</p>", base=base)  # fmt: skip
    fired = {str(e["ds"]) for e in events}
    chart = trend_chart(days, fired, threshold=threshold)
    rows = []
    for day in reversed(days):
        drift, perf, ds = day.get("drift"), day.get("performance"), day["ds"]
        alert = " <span class='badge alert'>retraining triggered</span>" if ds in fired else ""
        rows.append(
            f"<tr id='ds-{ds}'><td>{escape(ds)}{alert}</td>"
            f"<td class='num'>{_share_cell(drift)}</td>"
            f"<td>{_drifted(drift)}</td>"
            f"<td class='num'>{fmt(perf and perf.get('auc'))}</td><td class='num'>{fmt(perf and perf.get('auc_drop'))}</td>"
            f"<td>{_status(perf, 'performance')}</td>"
            f"<td>{_report_link(base, ds, 'drift', day.get('drift_report'))} "
            f"{_report_link(base, ds, 'performance', day.get('performance_report'))}</td></tr>"
        )
    legend = ("<p class='muted'>Drift signal: share of the policy's columns whose PSI against the champion's "
              "reference sample is beyond its threshold, each threshold calibrated on the reference's own day-to-day "
              "variation (<code>airloop monitor calibrate</code>); day-to-day context such as the weather is reported "
              "but not counted. Days monitored before the signal existed show Evidently's drift share. The dashed line "
              f"is the policy threshold ({threshold:.2f}). "
              "AUC: ROC AUC of the day's predictions on its realized outcomes (known a day later); window AUC: "
              "the rolling window of labelled days whose bounded drop the policy counts.</p>")  # fmt: skip
    table = (
        "<table class='monitoring'><tr><th>date</th><th>drift signal</th><th>drifted columns / notes</th><th>AUC</th>"
        "<th>AUC drop</th><th>outcomes</th><th>reports</th></tr>" + "".join(rows) + "</table>"
    )
    return page("Monitoring", form + chart + legend + table, base=base)


def policy_share(drift: dict) -> float | None:
    """The drift number the retraining policy counts: the calibrated drift signal; for rows
    written before it, Evidently's share without the context columns, else its overall share."""
    for key in ("drift_signal", "policy_drift_share", "drift_share"):
        if drift.get(key) is not None:
            return drift[key]
    return None


def _share_cell(drift: dict | None) -> str:
    if not drift or policy_share(drift) is None:
        return fmt(None)
    overall = drift.get("drift_share")
    if overall is not None and overall != policy_share(drift):
        return f"{policy_share(drift):.2f} <span class='muted'>(Evidently, all columns: {overall:.2f})</span>"
    return f"{policy_share(drift):.2f}"


def _drifted(drift: dict | None) -> str:
    if drift is None:
        return "<span class='muted'>not monitored</span>"
    if drift.get("status") != "ok":
        return f"<span class='warn'>skipped: {escape(drift.get('message') or '')}</span>"
    # The signal's columns (beyond their calibrated PSI thresholds) where the row has the signal.
    signal = drift.get("drift_signal") is not None
    names = (drift.get("drift_signal_columns") if signal else drift.get("drifted_column_names")) or []
    # The check's own notes: columns entirely null (not tested), a long day tested on a sample.
    message = drift.get("message") or ""
    if not message and drift.get("null_columns"):
        message = f"entirely null: {', '.join(drift['null_columns'])}"
    note = f" <span class='warn'>({escape(message)})</span>" if message else ""
    return (escape(", ".join(names)) if names else "<span class='muted'>none</span>") + note


def _status(perf: dict | None, kind: str) -> str:
    if perf is None:
        return "<span class='muted'>awaiting outcomes</span>"
    if perf.get("status") == "awaiting_outcomes":
        return "<span class='muted'>awaiting outcomes</span>"
    if perf.get("status") != "ok":
        return f"<span class='warn'>{escape(perf.get('message') or perf.get('status'))}</span>"
    return f"{fmt(perf.get('rows_current'))} labelled flights"


def _report_link(base: str, ds: str, kind: str, state: str | None) -> str:
    if state == "ok":
        return f"<a href='{base}/reports/{ds}/{kind}' target='_blank' rel='noopener'>{kind} report</a>"
    if state == "missing":
        return f"<span class='warn'>{kind} report missing</span>"
    return ""


def trend_chart(days: list[dict], fired: Iterable[str] = (), *, threshold: float = 0.5, width: int = 1000,
                height: int = 260) -> str:  # fmt: skip
    """Inline SVG: the drift signal, the day's and the window's AUC per day on a 0..1 axis, the
    threshold, drift events."""
    left, right, top, bottom = 44, 16, 14, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    dates = [date.fromisoformat(d["ds"]) for d in days]
    first, last = min(dates), max(dates)
    span = max(1, (last - first).days)

    def x(ds: str) -> float:
        return left + plot_w * ((date.fromisoformat(ds) - first).days / span if len(days) > 1 else 0.5)

    def y(value: float) -> float:
        return top + plot_h * (1 - max(0.0, min(1.0, value)))

    out = [f"<svg class='trend' role='img' aria-label='drift signal and AUC over time' width='100%' "
           f"viewBox='0 0 {width} {height}' xmlns='http://www.w3.org/2000/svg'>"]  # fmt: skip
    for tick in (0, 0.25, 0.5, 0.75, 1):
        out.append(f"<line x1='{left}' x2='{width - right}' y1='{y(tick):.1f}' y2='{y(tick):.1f}' stroke='#eceff4'/>"
                   f"<text x='{left - 6}' y='{y(tick) + 4:.1f}' text-anchor='end'>{tick:g}</text>")  # fmt: skip
    out.append(f"<line class='threshold' x1='{left}' x2='{width - right}' y1='{y(threshold):.1f}' y2='{y(threshold):.1f}' "
               "stroke='#7c4dff' stroke-dasharray='5 4' stroke-width='1'/>")  # fmt: skip
    for ds in sorted(set(fired)):
        if first.isoformat() <= ds <= last.isoformat():
            out.append(f"<line class='event' x1='{x(ds):.1f}' x2='{x(ds):.1f}' y1='{top}' y2='{top + plot_h}' "
                       f"stroke='#d93025' stroke-width='2'><title>drift policy fired on {ds}</title></line>")  # fmt: skip
    ticks = sorted({days[0]["ds"], days[-1]["ds"], *[d["ds"] for d in days[:: max(1, len(days) // 6)]]})
    for ds in ticks:
        anchor = "start" if ds == ticks[0] and len(ticks) > 1 else "end" if ds == ticks[-1] and len(ticks) > 1 else "middle"
        out.append(f"<text x='{x(ds):.1f}' y='{height - bottom + 16}' text-anchor='{anchor}'>{ds}</text>")
    series = (("drift", "drift", policy_share, "#7c4dff", "drift signal", ""),
              ("performance", "performance", lambda row: row.get("auc"), "#0f9d58", "AUC", ""),
              ("window", "performance", lambda row: row.get("window_auc"), "#0f9d58", "window AUC", " stroke-dasharray='6 3'"))
    for name, kind, value, color, label, dash in series:
        points = [(d["ds"], value(d[kind])) for d in days if d.get(kind) and value(d[kind]) is not None]
        if len(points) > 1:
            path = " ".join(f"{'M' if i == 0 else 'L'}{x(ds):.1f},{y(v):.1f}" for i, (ds, v) in enumerate(points))
            out.append(f"<path class='series-{name}' d='{path}' fill='none' stroke='{color}' stroke-width='2'{dash}/>")
        for ds, v in points:
            out.append(f"<circle class='point-{name}' cx='{x(ds):.1f}' cy='{y(v):.1f}' r='{2 if dash else 3}' fill='{color}'>"
                       f"<title>{ds}: {label} {v:.3f}</title></circle>")  # fmt: skip
    legend_y = height - 8
    out.append(f"<rect x='{left}' y='{legend_y - 9}' width='12' height='4' fill='#7c4dff'/>"
               f"<text x='{left + 16}' y='{legend_y - 5}'>drift signal</text>"
               f"<rect x='{left + 110}' y='{legend_y - 9}' width='12' height='4' fill='#0f9d58'/>"
               f"<text x='{left + 126}' y='{legend_y - 5}'>AUC (realized)</text>"
               f"<line x1='{left + 240}' x2='{left + 252}' y1='{legend_y - 7}' y2='{legend_y - 7}' stroke='#0f9d58' "
               f"stroke-width='2' stroke-dasharray='4 2'/><text x='{left + 256}' y='{legend_y - 5}'>window AUC</text>"
               f"<rect x='{left + 350}' y='{legend_y - 11}' width='3' height='10' fill='#d93025'/>"
               f"<text x='{left + 358}' y='{legend_y - 5}'>drift event (retraining)</text>")  # fmt: skip
    out.append("</svg>")
    return "".join(out)


def missing_report_page(ds: str, kind: str, reason: str, *, base: str = "") -> str:
    return page(f"No {kind} report for {ds}", f"<p class='empty'>{escape(reason)}</p>"
                f"<p><a href='{base}/monitoring'>Back to monitoring</a></p>", base=base)  # fmt: skip

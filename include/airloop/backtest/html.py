"""``backtest.html``: the report as one self-contained page (inline SVG, no script, nothing fetched).

Plots: realized AUC per week per policy with trainings (promoted: filled dot; refused: ring)
and drift firings (triangle) as markers; each drift-using policy's daily drift signal against
its threshold. Tables: the per-policy summary, monthly AUC, every firing with its evidence, every
training with the gate's verdict.
"""

from __future__ import annotations

from datetime import date
from html import escape

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}
svg{background:#fff;border:1px solid #ddd}.legend span{margin-right:1.2em;font-size:13px}code{font-size:12px}"""


def _x_scale(first: date, last: date, left: float, width: float):
    span = max((last - first).days, 1)
    return lambda d: left + width * (d - first).days / span


def _day(value: str) -> date:
    return date.fromisoformat(value)  # the report's own keys, read back


def _axis(first: date, last: date, x, top: float, bottom: float, ticks: list[float], y, fmt) -> list[str]:
    out = [f'<line x1="{x(first):.1f}" y1="{bottom}" x2="{x(last):.1f}" y2="{bottom}" stroke="#888"/>']
    for t in ticks:
        out.append(f'<line x1="{x(first):.1f}" y1="{y(t):.1f}" x2="{x(last):.1f}" y2="{y(t):.1f}" stroke="#eee"/>'
                   f'<text x="{x(first) - 6:.1f}" y="{y(t) + 4:.1f}" font-size="11" text-anchor="end">{fmt(t)}</text>')  # fmt: skip
    month = date(first.year, first.month, 1)
    while month <= last:
        if month >= first:
            out.append(f'<line x1="{x(month):.1f}" y1="{top}" x2="{x(month):.1f}" y2="{bottom}" stroke="#f2f2f2"/>'
                       f'<text x="{x(month):.1f}" y="{bottom + 14}" font-size="11" text-anchor="middle">{month:%Y-%m}</text>')  # fmt: skip
        month = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    return out


def _week_x(monday: str, first: date, last: date, x) -> float:
    """The middle of the week's days inside the range (a partial week is not drawn off the axis)."""
    from datetime import timedelta

    lo = max(_day(monday), first)
    hi = min(_day(monday) + timedelta(days=6), last)
    return (x(lo) + x(hi)) / 2


def auc_chart(report: dict, width: int = 1000, height: int = 320) -> str:
    """Realized AUC per week per policy; under it one lane of events per policy (trainings:
    filled when promoted, a ring when the gate refused; drift firings: a triangle)."""
    points = [(p["policy"], w) for p in report["policies"] for w in p["weekly"] if w["auc"] is not None]
    if not points:
        return "<p>No week has realized outcomes yet.</p>"
    first, last = _day(report["start"]), _day(report["end"])
    aucs = [w["auc"] for _, w in points]
    low, high = min(aucs) - 0.01, max(aucs) + 0.01
    lanes = len(report["policies"])
    left, top, bottom = 130.0, 10.0, height - 30.0
    total = int(height + 18 * lanes + 10)
    x = _x_scale(first, last, left, width - left - 10)
    y = lambda v: bottom - (bottom - top) * (v - low) / ((high - low) or 1)  # noqa: E731
    ticks = [round(low + (high - low) * i / 4, 3) for i in range(5)]
    out = _axis(first, last, x, top, bottom, ticks, y, lambda t: f"{t:.3f}")
    for i, figures in enumerate(report["policies"]):
        color = COLORS[i % len(COLORS)]
        weekly = sorted((w["week"], w) for w in figures["weekly"] if w["auc"] is not None)
        path = " ".join(f"{_week_x(k, first, last, x):.1f},{y(w['auc']):.1f}" for k, w in weekly)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"><title>{escape(figures["policy"])}</title></polyline>')
        for k, w in weekly:
            tip = f"{figures['policy']} week of {k}: AUC {w['auc']:.3f} on {w['flights']} flights"
            out.append(f'<circle cx="{_week_x(k, first, last, x):.1f}" cy="{y(w["auc"]):.1f}" r="2.5" fill="{color}"><title>{escape(tip)}</title></circle>')
        lane = height + 18 * i + 4
        out.append(f'<text x="{left - 6}" y="{lane + 4}" font-size="11" text-anchor="end" fill="{color}">{escape(figures["policy"])}</text>'
                   f'<line x1="{left}" y1="{lane}" x2="{width - 10}" y2="{lane}" stroke="#eee"/>')  # fmt: skip
        for training in figures["trainings"]:
            fill = color if training.get("status") == "promoted" else "#fff"
            tip = f"{figures['policy']} {training['ds']}: v{training.get('version', '-')} {training.get('status')} ({training.get('reason', '')})"
            out.append(f'<circle cx="{x(_day(training["ds"])):.1f}" cy="{lane}" r="4.5" fill="{fill}" stroke="{color}" stroke-width="1.5">'
                       f"<title>{escape(tip)}</title></circle>")  # fmt: skip
        for firing in figures["firings"]:
            cx = x(_day(firing["ds"]))
            tip = f"{figures['policy']} drift fired {firing['ds']}: {(firing.get('evidence') or {}).get('reason', '')}"
            out.append(f'<path d="M{cx:.1f},{lane + 3:.1f} l-5,-9 h10 z" fill="#d62728" opacity="0.8"><title>{escape(tip)}</title></path>')
    return _svg(out, width, total) + _legend(report)


def signal_chart(figures: dict, index: int, thresholds: dict, width: int = 1000, height: int = 160) -> str:
    """One policy's daily drift signals (drift share, AUC drop) against their thresholds."""
    first = _day(figures["signal"][0]["ds"]) if figures["signal"] else None
    if first is None:
        return ""
    last = _day(figures["signal"][-1]["ds"])
    values = [s[k] for s in figures["signal"] for k in ("drift_share", "auc_drop_bound") if s.get(k) is not None]
    values += [v for v in thresholds.values() if v is not None]
    high = max(values + [0.1]) * 1.1
    low = min(values + [0.0])
    left, top, bottom = 50.0, 10.0, height - 30.0
    x = _x_scale(first, last, left, width - left - 10)
    y = lambda v: bottom - (bottom - top) * (v - low) / ((high - low) or 1)  # noqa: E731
    out = _axis(first, last, x, top, bottom, [round(low + (high - low) * i / 4, 2) for i in range(5)], y, lambda t: f"{t:.2f}")
    for key, color, label in (("drift_share", "#1f77b4", "drift share"), ("auc_drop_bound", "#ff7f0e", "bounded AUC drop")):
        pts = [(x(_day(s["ds"])), y(s[key])) for s in figures["signal"] if s.get(key) is not None]
        if pts:
            path = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}"><title>{label}</title></polyline>')
        if thresholds.get(key) is not None:
            ty = y(thresholds[key])
            out.append(f'<line x1="{x(first):.1f}" y1="{ty:.1f}" x2="{x(last):.1f}" y2="{ty:.1f}" stroke="{color}" '
                       f'stroke-dasharray="5,4"><title>{label} threshold {thresholds[key]}</title></line>')  # fmt: skip
    for firing in figures["firings"]:
        fx = x(_day(firing["ds"]))
        out.append(f'<line x1="{fx:.1f}" y1="{top}" x2="{fx:.1f}" y2="{bottom}" stroke="#d62728"><title>fired {firing["ds"]}</title></line>')
    title = (f"<h3>Drift signal: {escape(figures['policy'])}</h3><p class='legend'><span style='color:#1f77b4'>&#9644; drift share"
             f"</span><span style='color:#ff7f0e'>&#9644; bounded AUC drop (window)</span><span>dashed: thresholds</span>"
             f"<span style='color:#d62728'>| firing</span></p>")  # fmt: skip
    return title + _svg(out, width, height)


def _week_of(ds: str) -> str:
    from datetime import timedelta

    day = _day(ds)
    return (day - timedelta(days=day.weekday())).isoformat()


def _svg(parts: list[str], width: int, height: int) -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">' + "".join(parts) + "</svg>"


def _legend(report: dict) -> str:
    items = [f"<span style='color:{COLORS[i % len(COLORS)]}'>&#9644; {escape(p['policy'])}</span>" for i, p in enumerate(report["policies"])]
    items.append("<span>lanes under the plot: &#9679; trained and promoted, &#9675; trained, kept out by the gate, "
                 "<span style='color:#d62728'>&#9660;</span> drift fired</span>")
    return "<p class='legend'>" + "".join(items) + "</p>"


def _n(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else escape(str(value))


def summary_table(report: dict) -> str:
    rows = ["<tr><th class='l'>policy</th><th>monthly AUC mean</th><th>min</th><th>max</th><th>pooled</th>"
            "<th>trainings</th><th>promoted</th><th>drift firings</th><th>training CPU s</th></tr>"]  # fmt: skip
    for p in report["policies"]:
        s = p["summary"]
        rows.append(f"<tr><td class='l'>{escape(p['policy'])}</td><td>{_n(s['monthly_auc_mean'])}</td><td>{_n(s['monthly_auc_min'])}</td>"
                    f"<td>{_n(s['monthly_auc_max'])}</td><td>{_n(s['pooled_auc'])}</td><td>{s['trainings']}</td>"
                    f"<td>{s['promotions']}</td><td>{s['drift_firings']}</td><td>{s['training_cpu_s'] + s['initial_training_cpu_s']:.1f}</td></tr>")  # fmt: skip
    return "<table>" + "".join(rows) + "</table>"


def period_table(report: dict, key: str, label: str) -> str:
    periods = sorted({m[label] for p in report["policies"] for m in p[key]})
    head = "<tr><th class='l'>policy</th>" + "".join(f"<th>{escape(m)}</th>" for m in periods) + "</tr>"
    rows = [head]
    for p in report["policies"]:
        by = {m[label]: m["auc"] for m in p[key]}
        rows.append(f"<tr><td class='l'>{escape(p['policy'])}</td>" + "".join(f"<td>{_n(by.get(m))}</td>" for m in periods) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def events_tables(report: dict) -> str:
    out = []
    for p in report["policies"]:
        if p["firings"]:
            rows = ["<tr><th class='l'>day</th><th class='l'>reason</th><th class='l'>evidence</th><th>window</th><th>trained</th></tr>"]
            for f in p["firings"]:
                ev = f.get("evidence") or {}
                detail = "; ".join(f"{e.get('ds')}: share {_n(e.get('drift_share'))}, AUC drop bound {_n(e.get('auc_drop_bound', e.get('auc_drop')))}"
                                   for e in ev.get("evidence", []))  # fmt: skip
                rows.append(f"<tr><td class='l'>{f['ds']}</td><td class='l'>{escape(str(ev.get('reason', '')))}</td>"
                            f"<td class='l'>{escape(detail)}</td><td>{ev.get('window_start')} .. {ev.get('window_end')}</td>"
                            f"<td>v{f.get('training_version', '-')}</td></tr>")  # fmt: skip
            out.append(f"<h3>Drift firings: {escape(p['policy'])}</h3><table>{''.join(rows)}</table>")
        if p["trainings"]:
            rows = ["<tr><th class='l'>day</th><th>version</th><th>window</th><th class='l'>outcome</th><th>holdout AUC</th>"
                    "<th>CPU s</th><th class='l'>reason; gate</th></tr>"]  # fmt: skip
            for t in p["trainings"]:
                rows.append(f"<tr><td class='l'>{t['ds']}</td><td>v{t.get('version', '-')}</td><td>{t['window_start']} .. {t['window_end']}</td>"
                            f"<td class='l'>{escape(str(t.get('status')))}</td><td>{_n(t.get('holdout_auc'))}</td><td>{_n(t.get('cpu_s'), 1)}</td>"
                            f"<td class='l'>{escape(str(t.get('reason', '')))}; {escape(str(t.get('gate') or t.get('message', '')))}</td></tr>")  # fmt: skip
            out.append(f"<h3>Trainings: {escape(p['policy'])}</h3><table>{''.join(rows)}</table>")
    return "".join(out)


def render_html(report: dict) -> str:
    """The whole page (deterministic: no time of writing, so a rerun writes the same bytes)."""
    thresholds = report.get("thresholds") or {}
    signals = "".join(signal_chart(p, i, thresholds) for i, p in enumerate(report["policies"]) if p["signal"])
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Airloop backtest</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Backtest {report['start']} .. {report['end']}</h1>"
        f"<p>Initial model trained on {report['initial_start']} .. the day before {report['start']}; every later "
        f"challenger behind the champion/challenger gate. Months and quarters are those of the source calendar "
        f"(replayed days minus {report['replay_offset_days']}).</p>"
        f"<h2>Summary</h2>{summary_table(report)}"
        f"<h2>Realized ROC AUC per week</h2>{auc_chart(report)}"
        f"<h2>Monthly realized AUC</h2>{period_table(report, 'monthly', 'month')}"
        f"<h2>Quarterly realized AUC</h2>{period_table(report, 'quarterly', 'quarter')}"
        f"<h2>Drift signal against its threshold</h2>{signals or '<p>No drift signal recorded.</p>'}"
        f"<h2>Events</h2>{events_tables(report) or '<p>No training after the initial model.</p>'}"
        "</body></html>\n"
    )

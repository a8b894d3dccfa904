"""HTML and Markdown of a :class:`~airloop.training.model_card.ModelCard`, from one list of sections.

:func:`sections` turns a card (and, when viewed live, the version's current status, its history
and how it fared since) into titled blocks: key/value lists, tables, text and inline SVG plots.
:func:`render_html` and :func:`render_markdown` only lay those blocks out, so both formats always
say the same thing. The SVG is generated here (no script, font or image is loaded from outside);
the Markdown embeds it as a ``data:`` image and repeats its numbers in a table.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from airloop.training.model_card import CARD_FILES

if TYPE_CHECKING:
    from airloop.training.model_card import ModelCard

OVERALL_METRICS = ("roc_auc", "log_loss", "brier", "ece", "precision", "recall", "flagged_rate", "positive_rate",
                   "worst_slice_roc_auc", "rows")  # fmt: skip
NOT_VIEWED = "Computed when the card is viewed on the Model versions page of the Airloop UI."

CSS = (
    "body{font:14px/1.45 system-ui,sans-serif;color:#1d2433;margin:16px 24px;max-width:1100px}"
    "h1{font-size:20px}h2{font-size:16px;margin:22px 0 6px}table{border-collapse:collapse;margin:6px 0 12px}"
    "th,td{border-bottom:1px solid #e4e8ef;padding:4px 8px;text-align:left}th{background:#f8f9fb}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px}dt{color:#6b7385}dd{margin:0}"
    "svg text{font:11px system-ui,sans-serif;fill:#4a5262}.muted{color:#6b7385}"
)


@dataclass(frozen=True)
class Block:
    kind: str  # "kv", "table", "text", "svg"
    rows: Any = None  # kv: [(key, value)]; table: [[cell]]; text: str; svg: svg markup
    headers: tuple = ()
    alt: str = ""


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]
    anchor: str = ""


def num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def sections(card: "ModelCard", live: dict | None = None) -> list[Section]:
    """The card as titled blocks.

    :param live: what is known only when the card is viewed: ``status``, ``status_reason``,
        ``history`` (``PromotionRecord.as_dict()`` of entries about this version) and ``weeks``
        (:func:`~airloop.training.model_card.weekly_auc`); None for the snapshot stored at
        registration.
    """
    live = live or {}
    out = [Section("Model", (Block("kv", [
        ("model", card.model_name), ("version", num(card.version)),
        *([("status now", f"{live['status']}" + (f" ({live['status_reason']})" if live.get("status_reason") else ""))]
          if live.get("status") else []),
        ("registered", card.registered_at or "–"), ("code version", card.code_version or "–"),
        ("trained on", card.device or "–"), ("model sha256", card.sha256 or "–"),
        ("parameters", ", ".join(f"{k}={v}" for k, v in sorted(card.params.items())) or "–"),
    ]),) + tuple(Block("text", note) for note in card.notes), "model")]  # fmt: skip
    out.append(Section("Training data", (Block("kv", [
        ("training window", f"{card.window_start} .. {card.window_end}"),
        ("training rows", num(card.training_rows)),
        ("holdout", f"{card.holdout.get('start')} .. {card.holdout.get('end')} ({num(card.holdout.get('rows'))} rows)"),
        ("feature service", card.feature_service),
        ("data fingerprint", card.fingerprint or "–"),
        ("training set", card.training_set or "–"),
    ]),), "data"))  # fmt: skip
    share = {i["feature"]: i["share"] for i in card.importance}
    out.append(Section(f"Features ({len(card.features)}, from feature service {card.feature_service})", (Block(
        "table", [[f["name"], f["kind"] + (f" ({f['categories']} values)" if f.get("categories") else ""),
                   num(share.get(f["name"]), 3)] for f in card.features],
        ("feature", "kind", "importance share")),), "features"))  # fmt: skip
    out.append(_metrics_section(card))
    slices = (card.metrics or {}).get("slices") or {}
    if slices:
        out.append(Section(f"Holdout metrics per {card.slice_column or 'slice'}", (Block("table", [
            [key, num(s.get("rows")), num(s.get("positive_rate"), 3), num(s.get("roc_auc")), num(s.get("brier"))]
            for key, s in sorted(slices.items())], ("slice", "rows", "positive rate", "ROC AUC", "Brier")),), "slices"))  # fmt: skip
    if card.calibration:
        out.append(Section("Calibration (holdout)", (
            Block("svg", calibration_svg(card.calibration), alt="calibration plot: observed delay rate against mean score per bin"),
            Block("table", [[f"{b['low']:.1f}–{b['high']:.1f}", num(b["rows"]), num(b["mean_score"], 3),
                             num(b["observed_rate"], 3)] for b in card.calibration],
                  ("score bin", "rows", "mean score", "observed rate")),
        ), "calibration"))  # fmt: skip
    if card.importance:
        out.append(Section("Feature importance (total gain)", (
            Block("svg", importance_svg(card.importance), alt="feature importance: share of total gain per feature"),
            Block("table", [[i["feature"], num(i["gain"], 1), num(i["share"], 3)] for i in card.importance],
                  ("feature", "total gain", "share")),
        ), "importance"))  # fmt: skip
    out.append(_gate_section(card.gate))
    if live.get("history"):
        out.append(Section("Decisions recorded in the registry", (Block("table", [
            [str(h.get("at", ""))[:19], h.get("action", ""), h.get("actor", ""), h.get("reason", "")]
            for h in live["history"]], ("when (UTC)", "action", "by", "reason")),), "history"))  # fmt: skip
    out.append(_fared_section(live.get("weeks")))
    return out


def _metrics_section(card: "ModelCard") -> Section:
    rows = [[m, num((card.metrics or {}).get(m)), num((card.baseline_metrics or {}).get(m))]
            for m in OVERALL_METRICS if m in (card.metrics or {}) or m in (card.baseline_metrics or {})]  # fmt: skip
    worst = (card.metrics or {}).get("worst_slice")
    blocks = [Block("table", rows, ("metric", "model", "baseline (same rows)"))]
    if worst:
        blocks.append(Block("text", f"Weakest {card.slice_column or 'slice'}: {worst}."))
    return Section("Holdout metrics", tuple(blocks), "metrics")


def _gate_section(gate: dict | None) -> Section:
    if not gate:
        return Section("Gate decision", (Block("text", "No gate decision was recorded with this card."),), "gate")
    blocks = [Block("kv", [
        ("decision", "promote" if gate.get("promote") else "keep the incumbent"),
        ("reason", gate.get("reason", "")),
        ("compared with", gate.get("incumbent", "")),
        (f"{gate.get('primary_metric')}", f"challenger {num(gate.get('challenger_value'))}, incumbent "
         f"{num(gate.get('incumbent_value'))}, improvement {num(gate.get('improvement'))}, margin {num(gate.get('margin'))}"),
        *([("gate holdout", f"{gate['holdout'].get('start')} .. {gate['holdout'].get('end')} "
            f"({num(gate['holdout'].get('rows'))} rows)")] if gate.get("holdout") else []),
    ])]  # fmt: skip
    if gate.get("guardrails"):
        blocks.append(Block("table", [
            [g["metric"], num(g.get("challenger")), num(g.get("incumbent")), num(g.get("regression")), num(g.get("tolerance")),
             "passed" if g.get("passed") else "FAILED"] for g in gate["guardrails"]],
            ("guardrail", "challenger", "incumbent", "regression", "tolerance", "result")))  # fmt: skip
    challenger, incumbent = gate.get("challenger_metrics") or {}, gate.get("incumbent_metrics") or {}
    keys = sorted(set(challenger.get("slices") or {}) | set(incumbent.get("slices") or {}))
    if keys:
        c_slices, i_slices = challenger.get("slices") or {}, incumbent.get("slices") or {}
        blocks.append(Block("table", [
            [k, num((c_slices.get(k) or {}).get("rows")), num((c_slices.get(k) or {}).get("roc_auc")),
             num((i_slices.get(k) or {}).get("roc_auc")), num((c_slices.get(k) or {}).get("brier")),
             num((i_slices.get(k) or {}).get("brier"))] for k in keys],
            ("slice", "rows", "AUC challenger", "AUC incumbent", "Brier challenger", "Brier incumbent")))  # fmt: skip
    return Section("Gate decision", tuple(blocks), "gate")


def _fared_section(weeks: list[dict] | None) -> Section:
    if weeks is None:
        return Section("How it fared since", (Block("text", NOT_VIEWED),), "fared")
    if not weeks:
        return Section("How it fared since", (Block("text", "Not yet served: no monitored day was scored by this version."),), "fared")
    return Section("How it fared since", (
        Block("svg", weekly_svg(weeks), alt="realized AUC per week while this version served"),
        Block("table", [[f"{w['week_start']} .. {w['week_end']}", num(w["days"]), num(w["rows"]), num(w["auc"]),
                         f"{num(w['auc_min'], 3)} .. {num(w['auc_max'], 3)}"] for w in weeks],
              ("week", "days", "labelled flights", "AUC (row-weighted)", "daily range")),
    ), "fared")  # fmt: skip


def card_files(card: "ModelCard") -> dict[str, bytes]:
    """The card's files, by logical name: the JSON source, the HTML and the Markdown renderings.

    Deterministic: the same card gives the same bytes (a rerun rewrites the same files).
    """
    return {
        CARD_FILES["source"]: json.dumps(card.as_dict(), indent=2, sort_keys=True).encode(),
        CARD_FILES["html"]: render_html(card).encode(),
        CARD_FILES["markdown"]: render_markdown(card).encode(),
    }


# --- layouts -----------------------------------------------------------------------------------


def render_html_body(card: "ModelCard", live: dict | None = None) -> str:
    """The card's sections as an HTML fragment (to embed in a page)."""
    parts = []
    for section in sections(card, live):
        parts.append(f"<section id='{section.anchor}'><h2>{escape(section.title)}</h2>")
        for block in section.blocks:
            if block.kind == "kv":
                parts.append("<dl>" + "".join(f"<dt>{escape(str(k))}</dt><dd>{escape(str(v))}</dd>" for k, v in block.rows) + "</dl>")
            elif block.kind == "table":
                head = "".join(f"<th>{escape(h)}</th>" for h in block.headers)
                body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in block.rows)
                parts.append(f"<table><tr>{head}</tr>{body}</table>")
            elif block.kind == "svg":
                parts.append(f"<figure aria-label='{escape(block.alt)}'>{block.rows}</figure>")
            else:
                parts.append(f"<p class='muted'>{escape(block.rows)}</p>")
        parts.append("</section>")
    return "".join(parts)


def render_html(card: "ModelCard", live: dict | None = None) -> str:
    """A self-contained HTML document (inline CSS and SVG, nothing loaded from outside)."""
    title = f"Model card: {card.title}"
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>{render_html_body(card, live)}</body></html>")  # fmt: skip


def _md(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(card: "ModelCard", live: dict | None = None) -> str:
    """The same sections as Markdown (plots as ``data:`` SVG images, their numbers in tables)."""
    lines = [f"# Model card: {card.title}", ""]
    for section in sections(card, live):
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if block.kind == "kv":
                lines += [f"- **{_md(k)}**: {_md(v)}" for k, v in block.rows]
            elif block.kind == "table":
                lines += ["| " + " | ".join(_md(h) for h in block.headers) + " |", "|" + "---|" * len(block.headers)]
                lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in block.rows]
            elif block.kind == "svg":
                data = base64.b64encode(block.rows.encode()).decode()
                lines.append(f"![{_md(block.alt)}](data:image/svg+xml;base64,{data})")
            else:
                lines.append(_md(block.rows))
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --- plots -------------------------------------------------------------------------------------


def _svg_open(width: int, height: int, label: str, css_class: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' class='{css_class}' role='img' aria-label='{escape(label)}' "
            f"width='{width}' height='{height}' viewBox='0 0 {width} {height}'>")  # fmt: skip


def calibration_svg(calibration: list[dict], size: int = 300) -> str:
    """Observed rate against mean score per bin, the diagonal for perfect calibration; dot size
    grows with the bin's rows."""
    pad = 40
    plot = size - 2 * pad

    def x(v):
        return pad + plot * max(0.0, min(1.0, v))

    def y(v):
        return size - pad - plot * max(0.0, min(1.0, v))

    out = [_svg_open(size, size, "calibration plot", "calibration"),
           f"<rect x='{pad}' y='{pad}' width='{plot}' height='{plot}' fill='none' stroke='#dde2ea'/>",
           f"<line class='diagonal' x1='{x(0)}' y1='{y(0)}' x2='{x(1)}' y2='{y(1)}' stroke='#9aa3b5' stroke-dasharray='4 4'/>"]  # fmt: skip
    for tick in (0, 0.5, 1):
        out.append(f"<text x='{x(tick):.1f}' y='{size - pad + 14}' text-anchor='middle'>{tick:g}</text>"
                   f"<text x='{pad - 6}' y='{y(tick) + 4:.1f}' text-anchor='end'>{tick:g}</text>")  # fmt: skip
    out.append(f"<text x='{size / 2}' y='{size - 8}' text-anchor='middle'>mean score</text>"
               f"<text x='12' y='{size / 2}' transform='rotate(-90 12 {size / 2})' text-anchor='middle'>observed rate</text>")  # fmt: skip
    most = max((b["rows"] for b in calibration), default=1)
    points = [(x(b["mean_score"]), y(b["observed_rate"]), b) for b in calibration]
    if len(points) > 1:
        out.append("<polyline fill='none' stroke='#2456c8' stroke-width='1.5' points='"
                   + " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points) + "'/>")  # fmt: skip
    for px, py, b in points:
        r = 2.5 + 4.5 * (b["rows"] / most) ** 0.5
        out.append(f"<circle class='bin' cx='{px:.1f}' cy='{py:.1f}' r='{r:.1f}' fill='#2456c8' fill-opacity='0.75'>"
                   f"<title>scores {b['low']:.1f}–{b['high']:.1f}: {b['rows']} rows, mean score {b['mean_score']:.3f}, "
                   f"observed {b['observed_rate']:.3f}</title></circle>")  # fmt: skip
    out.append("</svg>")
    return "".join(out)


def importance_svg(importance: list[dict], width: int = 520) -> str:
    """Horizontal bars: each feature's share of the total gain, largest first."""
    left, bar_h, gap, top = 170, 14, 6, 8
    height = top * 2 + len(importance) * (bar_h + gap)
    plot = width - left - 60
    top_share = max((i["share"] for i in importance), default=0) or 1.0
    out = [_svg_open(width, height, "feature importance", "importance")]
    for n, item in enumerate(importance):
        yy = top + n * (bar_h + gap)
        w = plot * item["share"] / top_share
        out.append(f"<text x='{left - 6}' y='{yy + bar_h - 3}' text-anchor='end'>{escape(item['feature'])}</text>"
                   f"<rect class='bar' x='{left}' y='{yy}' width='{w:.1f}' height='{bar_h}' fill='#0f9d58'>"
                   f"<title>{escape(item['feature'])}: {item['share']:.1%} of total gain</title></rect>"
                   f"<text x='{left + w + 4:.1f}' y='{yy + bar_h - 3}'>{item['share']:.1%}</text>")  # fmt: skip
    out.append("</svg>")
    return "".join(out)


def weekly_svg(weeks: list[dict], width: int = 520, height: int = 180) -> str:
    """Realized AUC per week (0.5 .. 1 axis) while the version served."""
    left, right, top, bottom = 40, 12, 10, 28
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i):
        return left + (plot_w * i / (len(weeks) - 1) if len(weeks) > 1 else plot_w / 2)

    def y(v):
        return top + plot_h * (1 - max(0.0, min(1.0, (v - 0.5) / 0.5)))

    out = [_svg_open(width, height, "realized AUC per week", "weekly-auc")]
    for tick in (0.5, 0.75, 1.0):
        out.append(f"<line x1='{left}' x2='{width - right}' y1='{y(tick):.1f}' y2='{y(tick):.1f}' stroke='#eceff4'/>"
                   f"<text x='{left - 6}' y='{y(tick) + 4:.1f}' text-anchor='end'>{tick:g}</text>")  # fmt: skip
    if len(weeks) > 1:
        out.append("<polyline fill='none' stroke='#0f9d58' stroke-width='2' points='"
                   + " ".join(f"{x(i):.1f},{y(w['auc']):.1f}" for i, w in enumerate(weeks)) + "'/>")  # fmt: skip
    for i, w in enumerate(weeks):
        out.append(f"<circle class='week' cx='{x(i):.1f}' cy='{y(w['auc']):.1f}' r='3.5' fill='#0f9d58'>"
                   f"<title>week of {w['week_start']}: AUC {w['auc']:.3f} ({w['rows']} flights)</title></circle>")
    for i in sorted({0, len(weeks) - 1}):
        anchor = "middle" if len(weeks) == 1 else "start" if i == 0 else "end"
        out.append(f"<text x='{x(i):.1f}' y='{height - 8}' text-anchor='{anchor}'>{weeks[i]['week_start']}</text>")
    out.append("</svg>")
    return "".join(out)

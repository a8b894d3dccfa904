"""The *Airloop > Backtest* page: the backtests on this deployment and their reports.

A backtest (``airloop backtest`` / ``make backtest``) writes ``backtest.json`` and a
self-contained ``backtest.html`` (inline SVG, no script, nothing fetched) in its workspace. This
router lists the workspaces under the backtest folder (``AIRLOOP_BACKTEST_DIR``, default
``<data_dir>/backtest``) with each policy's headline figures, and serves each report. It is
included in the Airloop app, whose dependency authenticates every route (see
:mod:`airloop_plugins.ui.app`); a workspace is addressed by its folder name only (checked against
the folders that exist), never by a path.
"""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,120}$")

router = APIRouter()


def backtest_root() -> Path:
    """The folder whose sub-folders are backtest workspaces."""
    from airloop.core.config import env_str, get_settings

    return Path(env_str("AIRLOOP_BACKTEST_DIR", str(get_settings().data_dir / "backtest")))


def workspaces(root: Path) -> list[dict]:
    """Every workspace under ``root`` with a ``backtest.json``, newest range first."""
    out = []
    if not root.is_dir():
        return out
    for folder in sorted(root.iterdir()):
        report = folder / "backtest.json"
        if not (folder.is_dir() and NAME_RE.match(folder.name) and report.is_file()):
            continue
        try:
            data = json.loads(report.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            out.append({"name": folder.name, "error": f"unreadable backtest.json: {exc}"})
            continue
        out.append({"name": folder.name, "report": data})
    return sorted(out, key=lambda w: (w.get("report") or {}).get("end", ""), reverse=True)


def _n(value) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else escape(str(value))


def backtest_page_body(items: list[dict], root: Path, base: str) -> str:
    if not items:
        return (f"<p class='empty'>No backtest in {escape(str(root))} yet. Run one, e.g. "
                "<code>airloop backtest 2026-03-30 2026-12-29 --policy frozen --policy scheduled+drift "
                f"--workspace {escape(str(root / 'year'))}</code> or <code>make backtest</code>.</p>")  # fmt: skip
    parts = []
    for item in items:
        name = escape(item["name"])
        if "error" in item:
            parts.append(f"<h2>{name}</h2><p class='warn'>{escape(item['error'])}</p>")
            continue
        report = item["report"]
        rows = ["<tr><th>policy</th><th>monthly AUC mean</th><th>min</th><th>max</th><th>pooled</th><th>trainings</th>"
                "<th>promoted</th><th>drift firings</th><th>training CPU s</th></tr>"]  # fmt: skip
        for policy in report.get("policies", []):
            s = policy.get("summary", {})
            cpu = (s.get("training_cpu_s") or 0.0) + (s.get("initial_training_cpu_s") or 0.0)
            rows.append(f"<tr><td>{escape(str(policy.get('policy')))}</td><td class='num'>{_n(s.get('monthly_auc_mean'))}</td>"
                        f"<td class='num'>{_n(s.get('monthly_auc_min'))}</td><td class='num'>{_n(s.get('monthly_auc_max'))}</td>"
                        f"<td class='num'>{_n(s.get('pooled_auc'))}</td><td class='num'>{_n(s.get('trainings'))}</td>"
                        f"<td class='num'>{_n(s.get('promotions'))}</td><td class='num'>{_n(s.get('drift_firings'))}</td>"
                        f"<td class='num'>{cpu:.1f}</td></tr>")  # fmt: skip
        parts.append(f"<h2>{name}: {escape(str(report.get('start')))} .. {escape(str(report.get('end')))}</h2>"
                     f"<p><a href='{base}/backtest/{name}/report'>Full report</a> (plots, monthly AUC, every firing "
                     f"and training)</p><table>{''.join(rows)}</table>")  # fmt: skip
    return "".join(parts)


@router.get("/backtest", response_class=HTMLResponse)
def backtest_index():
    from airloop_plugins.ui import pages
    from airloop_plugins.ui.app import URL_PREFIX

    root = backtest_root()
    return HTMLResponse(pages.page("Backtests", backtest_page_body(workspaces(root), root, URL_PREFIX), base=URL_PREFIX))


@router.get("/backtest/{name}/report", response_class=HTMLResponse)
def backtest_report(name: str):
    root = backtest_root()
    known = {w["name"] for w in workspaces(root)}
    if not NAME_RE.match(name) or name not in known:
        raise HTTPException(status_code=404, detail=f"no backtest named {name!r} in the backtest folder")
    report = root / name / "backtest.html"
    if not report.is_file():
        raise HTTPException(status_code=404, detail=f"backtest {name!r} has no backtest.html yet (it is still running)")
    return HTMLResponse(report.read_text())

"""Evidently's HTML of a report, with an optional banner saying how it was rendered."""

from __future__ import annotations

import tempfile
from pathlib import Path


def snapshot_html(snapshot, banner: str | None) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.html"
        snapshot.save_html(str(path))  # Evidently silently ignores a Path: pass a str
        html = path.read_bytes()
    if banner:
        note = (
            '<div style="font:14px sans-serif;padding:8px 12px;background:#fff7e0;border-bottom:1px solid #e0c97a">'
            f"{banner}</div>"
        ).encode()
        html = html.replace(b"<body>", b"<body>" + note, 1)
    return html

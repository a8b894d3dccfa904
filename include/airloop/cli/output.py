"""How commands print: JSON for machines and people alike."""

from __future__ import annotations

import json


def print_json(value) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))

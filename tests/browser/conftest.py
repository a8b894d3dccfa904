"""Browser tests drive Debian's chromium (``/usr/bin/chromium``) through pytest-playwright.

Playwright's own browser download does not work offline, so the launch points at the system
binary; tests skip with a reason when it is missing (``scripts/ensure-chromium.sh`` installs it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"],
    }  # fmt: skip

"""``airloop backtest``: bad input is refused with one clear line, before any work is done."""

from __future__ import annotations

import pytest

from airloop.cli import main


@pytest.mark.parametrize("argv, message", [
    (["2026-06-01", "2026-06-07", "--policy", "weekly"], "unknown policy 'weekly'"),
    (["2026-06-01", "2026-06-07", "--policy", "scheduled:x"], "must be an integer"),
    (["2026-06-01", "2026-06-07", "--rounds", "0"], "--rounds must be at least 1"),
    (["2026-06-07", "2026-06-01"], "before it starts"),
    (["2026-06-01", "2026-06-31"], "2026-06-31"),
    (["2026-06-01", "2026-06-07", "--policy", "frozen", "--policy", "frozen"], "each once"),
])  # fmt: skip
def test_bad_input_is_refused_with_a_clear_message(settings, tmp_path, capsys, argv, message):
    workspace = tmp_path / "ws"
    assert main(["backtest", *argv, "--workspace", str(workspace)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("airloop backtest:") and message in err and "Traceback" not in err
    assert not workspace.exists()  # nothing was started


def test_the_live_data_folder_is_refused_as_a_workspace(settings, capsys):
    assert main(["backtest", "2026-06-01", "2026-06-07", "--workspace", str(settings.data_dir)]) == 1
    assert "live data folder" in capsys.readouterr().err

"""The demo's replayed calendar (``airloop replay-offset``): yesterday always has data and the
seed's history before it, on any date, with weekdays kept."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta

import pytest

from airloop.loop import WarmupError, replay_offset_for

FIRST, LAST = date(2025, 12, 30), date(2026, 12, 29)  # the flights' year under the default offset
DEFAULT, HISTORY = 4746, 55


def fits(yesterday: date, offset: int) -> bool:
    delta = timedelta(days=offset - DEFAULT)
    return FIRST + delta + timedelta(days=HISTORY) <= yesterday <= LAST + delta


@pytest.mark.parametrize("yesterday", [date(2026, 2, 23), date(2026, 7, 1), date(2026, 12, 2), date(2026, 12, 29)])
def test_the_default_calendar_is_kept_while_it_fits(yesterday):
    assert replay_offset_for(yesterday, offset=DEFAULT, data_first=FIRST, data_last=LAST, history_days=HISTORY) == DEFAULT


@pytest.mark.parametrize("yesterday, expected", [
    (date(2027, 4, 1), DEFAULT + 364),       # next year, the same season
    (date(2031, 8, 15), DEFAULT + 5 * 364),  # years later, the same season
    (date(2027, 1, 4), None),                # too early in the year for the history: the most runway
    (date(2026, 1, 9), None),                # before the default calendar's history is there
    (date(2019, 3, 3), None),                # a clock in the past
])
def test_any_date_gets_data_with_its_history_and_the_same_weekdays(yesterday, expected):
    offset = replay_offset_for(yesterday, offset=DEFAULT, data_first=FIRST, data_last=LAST, history_days=HISTORY)
    assert fits(yesterday, offset) and (offset - DEFAULT) % 7 == 0
    if expected is not None:
        assert offset == expected
    else:  # no 52-week shift fits: the largest shift, so the data lasts longest after yesterday
        assert not fits(yesterday, offset + 7)


def test_data_shorter_than_the_history_is_refused_with_the_figures():
    with pytest.raises(WarmupError, match=r"holds 30 days; 56 are needed up to 2026-12-02"):
        replay_offset_for(date(2026, 12, 2), offset=DEFAULT, data_first=FIRST, data_last=FIRST + timedelta(days=29),
                          history_days=HISTORY)  # fmt: skip


def test_the_command_writes_the_offset_for_the_demo(settings, tmp_path):

    out = tmp_path / "replay.env"
    run = subprocess.run([sys.executable, "-m", "airloop", "replay-offset", "--today", "2027-04-02", "--write", str(out)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"AIRLOOP_REPLAY_OFFSET_DAYS={DEFAULT + 364}"
    assert "yesterday 2027-04-01 replays the source's day 2013-04-04" in run.stderr
    assert out.read_text().splitlines()[-1] == f"AIRLOOP_REPLAY_OFFSET_DAYS={DEFAULT + 364}"

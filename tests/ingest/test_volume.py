"""Volume check: synthetic histories at the band's edges, emptied and truncated real days, and the
calibration of the default band on the real 2013 year."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from airloop.core.config import Settings, SettingsError
from airloop.core.storage import frame_to_parquet, list_partitions, publish_partition
from airloop.ingest import VolumeError, VolumePolicy, calibrate, ingest_day, ingest_tables, suggest_band
from airloop.ingest.source import SourceDatabase
from airloop.ingest.volume import check_volume, raw_history, require_volume, trailing_weekdays
from airloop.usecases.flights import USE_CASE

OFFSET = timedelta(days=4746)
POLICY = VolumePolicy(low=0.55, high=1.35, weeks=4, min_history=3)
DAY = date(2026, 6, 10)  # a Wednesday (source 2013-06-12)


def history(*counts: int, day: date = DAY) -> dict[date, int]:
    return dict(zip(trailing_weekdays(day, len(counts)), counts))


@pytest.mark.parametrize(
    "rows, passed",
    [(1000, True), (550, True), (549, False), (1350, True), (1351, False), (0, False), (2000, False)],
)
def test_the_band_around_the_trailing_same_weekday_median(rows, passed):
    check = check_volume("flights", DAY, rows, history(990, 1000, 1010, 5), POLICY)
    assert check.applied and check.median == 995.0  # median of 990, 1000, 1010, 5
    check = check_volume("flights", DAY, rows, history(990, 1000, 1010, 1000), POLICY)
    assert check.median == 1000.0 and check.ratio == rows / 1000
    assert check.passed is passed


def test_a_failing_day_names_rows_median_band_and_days():
    check = check_volume("flights", DAY, 412, history(990, 1000, 1010, 980), POLICY)
    with pytest.raises(VolumeError) as err:
        require_volume(check)
    message = str(err.value)
    assert "flights 2026-06-10: 412 source rows is 0.414 x the median 995" in message
    assert "2026-06-03 (990), 2026-05-27 (1000), 2026-05-20 (1010), 2026-05-13 (980)" in message
    assert "the band is [0.55, 1.35] (AIRLOOP_VOLUME_BAND_LOW/HIGH)" in message
    assert "nothing of it is published" in message


def test_too_little_history_does_not_apply_and_says_so():
    check = check_volume("weather", DAY, 0, {DAY - timedelta(days=7): 72, DAY - timedelta(days=1): 72}, POLICY)
    assert not check.applied and check.passed
    assert "volume check not applied: 1 of the 3 same-weekday days it needs are in the raw zone (found: 2026-06-03 (72))" in check.describe()
    require_volume(check)  # no error


def test_only_the_same_weekday_within_the_weeks_counts():
    counts = {DAY - timedelta(days=d): 100 for d in range(1, 60)}
    check = check_volume("flights", DAY, 100, counts, POLICY)
    assert [d for d, _ in check.history] == [date(2026, 6, 3), date(2026, 5, 27), date(2026, 5, 20), date(2026, 5, 13)]
    assert all(d.weekday() == DAY.weekday() for d, _ in check.history)


def test_a_median_of_zero():
    assert check_volume("t", DAY, 0, history(0, 0, 0), POLICY).passed
    assert not check_volume("t", DAY, 5, history(0, 0, 0), POLICY).passed


def test_history_comes_from_the_raw_manifests(lake):
    for past, n in history(900, 910, 920).items():
        publish_partition(lake, f"raw/flights/ds={past}", {"part.parquet": frame_to_parquet(pd.DataFrame({"x": [1]}))},
                          {"rows": n - 3, "source_rows": n})  # fmt: skip
    assert raw_history(lake, "flights", DAY, 4) == history(900, 910, 920)


def test_suggest_band_holds_every_ratio_rounded_outward():
    assert suggest_band([0.6407, 1.0, 1.1994]) == (0.55, 1.35)
    assert suggest_band([0.98, 1.02], headroom=0.0) == (0.95, 1.05)
    assert suggest_band([1.0]) == (0.9, 1.1)
    low, high = suggest_band([0.7, 0.93, 1.12], headroom=0.05, step=0.01)
    assert low <= 0.7 / 1.05 and high >= 1.12 * 1.05 and (low, high) == (0.66, 1.18)
    with pytest.raises(ValueError, match="no ratios"):
        suggest_band([])


def test_calibrate_counts_days_missing_inside_the_range_as_zero():
    daily = {date(2026, 1, 1) + timedelta(days=i): 100 for i in range(35)}
    del daily[date(2026, 1, 29)]
    cal = calibrate("t", daily, POLICY)
    assert len(cal.checks) == 35 and [c.day for c in cal.failures(POLICY)] == [date(2026, 1, 29)]
    assert cal.failures(POLICY)[0].rows == 0 and min(cal.ratios) == 0.0


@pytest.mark.parametrize(
    "variable, value, message",
    [("AIRLOOP_VOLUME_BAND_LOW", "1.2", "AIRLOOP_VOLUME_BAND_LOW must be between 0 and 1, got 1.2"),
     ("AIRLOOP_VOLUME_BAND_HIGH", "0.9", "AIRLOOP_VOLUME_BAND_HIGH must be 1 or more, got 0.9"),
     ("AIRLOOP_VOLUME_BAND_LOW", "half", "AIRLOOP_VOLUME_BAND_LOW must be a number, got 'half'"),
     ("AIRLOOP_VOLUME_MIN_HISTORY", "5", "AIRLOOP_VOLUME_MIN_HISTORY must be between 1 and 4, got 5"),
     ("AIRLOOP_VOLUME_HISTORY_WEEKS", "0", "AIRLOOP_VOLUME_HISTORY_WEEKS must be between 1 and 52, got 0"),
     ("AIRLOOP_INGEST_LATE_AFTER_H", "-1", "AIRLOOP_INGEST_LATE_AFTER_H must be 0 or more, got -1"),
     ("AIRLOOP_INGEST_POKE_S", "0", "AIRLOOP_INGEST_POKE_S must be 1 or more, got 0")],
)  # fmt: skip
def test_settings_refuse_a_band_or_history_that_cannot_be_right(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env()


def source_without(settings, path, day: date, keep: float) -> str:
    """A source of four Wednesdays and the day after ``day``, with only ``keep`` of ``day``'s rows."""
    url = f"sqlite:///{path}"
    full, target = create_engine(settings.source_url), create_engine(url)
    days = [day - timedelta(days=7 * k) for k in range(4)] + [day + timedelta(days=1)]
    for table in ("flights", "weather"):
        parts = []
        for d in days:
            src = d - OFFSET
            rows = pd.read_sql(text(f"SELECT * FROM {table} WHERE year = :y AND month = :m AND day = :d"), full,
                               params={"y": src.year, "m": src.month, "d": src.day})  # fmt: skip
            parts.append(rows.iloc[: int(len(rows) * keep)] if d == day else rows)
        frame = pd.concat(parts)
        frame["time_hour"] = pd.to_datetime(frame["time_hour"])
        frame.to_sql(table, target, index=False)
    full.dispose()
    target.dispose()
    return url


@pytest.mark.parametrize("keep, shown", [(0.0, "flights 2026-06-10: 0 source rows is 0.000 x"), (0.4, "source rows is 0.4")])
def test_an_emptied_or_truncated_day_inside_the_source_fails_the_contract(settings, tmp_path, keep, shown):
    gappy = settings.with_overrides(source_url=source_without(settings, tmp_path / "gappy.db", DAY, keep))
    for k in (3, 2, 1):
        ingest_tables(DAY - timedelta(days=7 * k), gappy)
    from airloop.core.storage import open_lake

    lake = open_lake(gappy)
    before = {k: lake.read_bytes(k) for k in lake.list_keys("") if not k.startswith("_ingest/")}
    with pytest.raises(VolumeError, match=shown) as err:
        ingest_tables(DAY, gappy)
    assert "2026-06-03 (" in str(err.value) and "2026-05-20 (" in str(err.value)
    assert {k: lake.read_bytes(k) for k in lake.list_keys("") if not k.startswith("_ingest/")} == before
    assert f"raw/flights/ds={DAY}" not in list_partitions(lake, "raw/flights")
    # With the check widened by configuration, the same day goes through.
    if keep:
        assert ingest_day("flights", DAY, gappy.with_overrides(volume_band_low=0.3)).rows > 0


@pytest.fixture(scope="module")
def real_calibration(loaded_source):
    source = SourceDatabase(loaded_source, replay_offset_days=4746)
    return {t: calibrate(t, source.daily_rows(USE_CASE.table(t), USE_CASE.timezone), VolumePolicy.from_settings(Settings()))
            for t in ("flights", "weather")}  # fmt: skip


def test_the_default_band_is_what_the_calibration_on_the_real_year_gives(real_calibration):
    defaults = Settings()
    ratios = [r for cal in real_calibration.values() for r in cal.ratios]
    assert suggest_band(ratios) == (defaults.volume_band_low, defaults.volume_band_high)


def test_no_real_day_fails_the_default_band_holidays_included(real_calibration):
    policy = VolumePolicy.from_settings(Settings())
    flights, weather = real_calibration["flights"], real_calibration["weather"]
    assert flights.failures(policy) == [] and weather.failures(policy) == []
    assert len(flights.checks) == 365 and len(flights.ratios) == 344  # the first 3 weeks lack history
    by_day = {c.day: c for c in flights.checks}
    holidays = {"Thanksgiving": date(2013, 11, 28), "Christmas": date(2013, 12, 25), "July 4th": date(2013, 7, 4),
                "blizzard": date(2013, 2, 8), "blizzard, day 2": date(2013, 2, 9)}  # fmt: skip
    for name, source_day in holidays.items():
        check = by_day[source_day + OFFSET]
        assert check.applied and policy.low <= check.ratio <= policy.high, name
    lowest, highest = flights.extremes(1)
    assert lowest[0].day == date(2013, 11, 28) + OFFSET and 0.6 < lowest[0].ratio < 0.7  # Thanksgiving
    assert highest[0].day == date(2013, 11, 30) + OFFSET and 1.15 < highest[0].ratio < 1.25
    # Volumes a truncated or doubled delivery would give do fail.
    assert not policy.low <= 0.5 <= policy.high and not policy.low <= 2.0 <= policy.high


def test_cli_calibrate_volume_prints_the_ratios_and_the_band(settings, capsys, monkeypatch):
    import json

    from airloop.cli import main

    assert main(["calibrate-volume", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["suggested_band"] == report["configured_band"] == [0.55, 1.35]
    assert report["tables"]["flights"]["lowest"][0]["source_day"] == "2013-11-28"
    assert report["tables"]["weather"]["fail_under_configured_band"] == []
    assert main(["calibrate-volume"]) == 0
    assert "suggested band (headroom 10%, rounded outward to 0.05): [0.55, 1.35]" in capsys.readouterr().out
    # A band tighter than the real year: the command counts the days it would refuse, and exits 1.
    from airloop.core.config import get_settings

    monkeypatch.setenv("AIRLOOP_VOLUME_BAND_LOW", "0.7")
    get_settings.cache_clear()
    assert main(["calibrate-volume", "--table", "flights"]) == 1
    assert "failing under the configured band [0.7, 1.35]: 2" in capsys.readouterr().out

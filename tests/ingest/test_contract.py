"""The data contract on real source rows: each kind of bad input is quarantined with its reason."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pandas as pd
import pytest

from airloop.ingest.contract import REASON_COLUMN, ContractError, check_columns, validate
from airloop.core.dates import day_window
from airloop.ingest.source import SourceDatabase
from airloop.usecases.flights import FLIGHTS, USE_CASE, WEATHER

OFFSET = 4746


def replayed(source_day: date) -> date:
    return source_day + timedelta(days=OFFSET)


@pytest.fixture(scope="module")
def source(loaded_source):
    return SourceDatabase(loaded_source, replay_offset_days=OFFSET)


def extract(source, table, source_day: date) -> pd.DataFrame:
    """The rows of one 2013 local day exactly as the source returns them to the extract task."""
    start, end = day_window(replayed(source_day), USE_CASE.timezone)
    return source.extract(table, start, end).frame


@pytest.fixture(scope="module")
def flights_day(source) -> pd.DataFrame:
    frame = extract(source, FLIGHTS, date(2013, 6, 12))
    assert len(frame) > 900
    return frame


def reasons_of(result, **match) -> list[str]:
    q = result.quarantined
    mask = pd.Series(True, index=q.index)
    for col, value in match.items():
        mask &= q[col] == str(value)
    return q.loc[mask, REASON_COLUMN].tolist()


def test_a_clean_real_day_passes_whole_with_its_real_gaps(flights_day):
    result = validate(flights_day, FLIGHTS)
    assert len(result.quarantined) == 0 and len(result.valid) == len(flights_day)
    # Cancelled and diverted flights have no arrival delay: valid rows, kept with nulls.
    cancelled = flights_day["dep_time"].isna().sum()
    assert cancelled > 0
    assert result.valid["dep_time"].isna().sum() == cancelled
    assert result.valid["arr_delay"].isna().sum() == flights_day["arr_delay"].isna().sum()
    assert str(result.valid["time_hour"].dt.tz) == "UTC"
    assert str(result.valid["flight"].dtype) == "Int64"


@pytest.mark.parametrize("missing", [["distance"], ["carrier", "time_hour"]])
def test_missing_columns_raise_naming_them(flights_day, missing):
    with pytest.raises(ContractError) as err:
        validate(flights_day.drop(columns=missing), FLIGHTS)
    assert f"missing required columns {missing}" in str(err.value)
    assert "flights" in str(err.value)


def test_a_renamed_column_is_named_with_its_new_name(flights_day):
    renamed = flights_day.rename(columns={"dep_delay": "departure_delay"})
    with pytest.raises(ContractError, match=r"missing required columns \['dep_delay'\].*'departure_delay'.*renamed"):
        validate(renamed, FLIGHTS)


def test_check_columns_accepts_extra_columns_when_all_required_are_present(flights_day):
    check_columns(flights_day.assign(new_upstream_column=1), [c.name for c in FLIGHTS.columns], "flights")


def bad_rows(flights_day: pd.DataFrame) -> pd.DataFrame:
    """Six real rows, each broken in one documented way, as object columns (like a loose upstream)."""
    rows = flights_day.head(8).astype(object).copy().reset_index(drop=True)
    rows.loc[0, "distance"] = "abc"  # wrong type
    rows.loc[1, "flight"] = 12.5  # wrong type: not an integer
    rows.loc[2, "distance"] = -5.0  # out of range
    rows.loc[3, "month"] = 13  # out of range
    rows.loc[4, "origin"] = "XXX"  # not an allowed code
    rows.loc[5, "carrier"] = None  # null key
    rows.loc[6, "tailnum"] = "D942DN"  # does not match the registration pattern
    rows.loc[7, "distance"] = None  # null in a required (non-key) column
    return rows


@pytest.mark.parametrize(
    "row, expected",
    [
        (0, "distance: not a valid float: 'abc'"),
        (1, "flight: not a valid int: 12.5"),
        (2, "distance: -5.0 below the minimum 1"),
        (3, "month: 13 above the maximum 12"),
        (4, "origin: 'XXX' not one of ['EWR', 'JFK', 'LGA']"),
        (5, "carrier: null in non-nullable key column"),
        (6, "tailnum: 'D942DN' does not match /N[A-Z0-9]{1,6}/"),
        (7, "distance: null in non-nullable column"),
    ],
    ids=["wrong-type", "fractional-int", "negative-distance", "month-13", "bad-code", "null-key", "pattern", "null"],
)
def test_each_bad_row_is_quarantined_with_its_reason(flights_day, row, expected):
    rows = pd.concat([bad_rows(flights_day), flights_day.iloc[100:110].astype(object)], ignore_index=True)
    result = validate(rows, FLIGHTS)
    assert len(result.quarantined) == 8 and len(result.valid) == 10
    original = bad_rows(flights_day).iloc[row]
    q = result.quarantined
    hit = q[(q["flight"] == str(original["flight"])) & (q["sched_dep_time"] == str(original["sched_dep_time"]))]
    assert len(hit) == 1
    assert hit.iloc[0][REASON_COLUMN] == expected


def test_quarantine_keeps_the_values_as_they_came(flights_day):
    result = validate(bad_rows(flights_day), FLIGHTS)
    q = result.quarantined
    assert set(q.columns) == set(flights_day.columns) | {REASON_COLUMN}
    assert "abc" in q["distance"].tolist() and "-5.0" in q["distance"].tolist()
    assert result.total == 8


def test_a_row_with_several_problems_lists_them_all(flights_day):
    rows = flights_day.head(1).astype(object).copy()
    rows.iloc[0, rows.columns.get_loc("distance")] = -1.0
    rows.iloc[0, rows.columns.get_loc("month")] = 13
    result = validate(rows, FLIGHTS)
    reasons = result.quarantined[REASON_COLUMN].iloc[0].split("; ")
    assert sorted(reasons) == ["distance: -1.0 below the minimum 1", "month: 13 above the maximum 12"]
    assert result.reason_counts() == {"distance: below": 1, "month: above": 1}


def test_exact_duplicate_rows_keep_one_copy(flights_day):
    day = flights_day.head(20)
    result = validate(pd.concat([day, day.iloc[[3, 3]]], ignore_index=True), FLIGHTS)
    assert len(result.valid) == 20 and len(result.quarantined) == 2
    assert set(result.quarantined[REASON_COLUMN]) == {
        "carrier+flight+origin+time_hour+minute: exact duplicate of an earlier row (that copy is kept)"
    }
    assert result.reason_counts() == {"carrier+flight+origin+time_hour+minute: exact duplicate": 2}


def test_conflicting_duplicate_keys_are_all_quarantined(flights_day):
    day = flights_day.head(20)
    conflicting = day.iloc[[5]].copy()
    conflicting["dep_delay"] = 999.0
    result = validate(pd.concat([day, conflicting], ignore_index=True), FLIGHTS)
    assert len(result.valid) == 19 and len(result.quarantined) == 2
    assert set(result.quarantined[REASON_COLUMN]) == {
        "carrier+flight+origin+time_hour+minute: conflicting duplicate: 2 rows share this key and differ in "
        "dep_delay (none is kept)"
    }
    assert set(result.quarantined["dep_delay"]) == {str(day.iloc[5]["dep_delay"]), "999.0"}
    assert result.reason_counts() == {"carrier+flight+origin+time_hour+minute: conflicting duplicate": 2}


def test_exact_and_conflicting_duplicates_are_counted_apart(flights_day):
    day = flights_day.head(30)
    copies = day.iloc[[1, 1, 2]]  # row 1 twice more, row 2 once more: 3 harmless copies
    conflicting = day.iloc[[7, 8]].copy()
    conflicting["dep_delay"] = conflicting["dep_delay"].fillna(0) + 60  # 2 keys, 2 versions each
    conflicting.loc[conflicting.index[1], "tailnum"] = "N999ZZ"
    result = validate(pd.concat([day, copies, conflicting], ignore_index=True), FLIGHTS)
    key = "carrier+flight+origin+time_hour+minute"
    assert result.reason_counts() == {f"{key}: conflicting duplicate": 4, f"{key}: exact duplicate": 3}
    assert len(result.valid) == 30 - 2 and len(result.quarantined) == 3 + 4
    reasons = result.quarantined[REASON_COLUMN].tolist()
    assert sum("differ in tailnum, dep_delay (none is kept)" in r for r in reasons) == 2  # contract order
    assert sum(r.endswith("differ in dep_delay (none is kept)") for r in reasons) == 2


def test_a_value_that_reads_like_a_check_is_counted_by_its_own_check(flights_day):
    rows = flights_day.head(3).astype(object).copy()
    rows.loc[rows.index[0], "tailnum"] = "null below"  # a value, not the check's words
    result = validate(rows, FLIGHTS)
    assert result.reason_counts() == {"tailnum: does not match": 1}


def test_real_data_bad_tailnums_are_quarantined(source):
    """The real data has 4 flights with tailnum 'D942DN'; one departs on 2013-02-11 (LGA, DL 2247)."""
    result = validate(extract(source, FLIGHTS, date(2013, 2, 11)), FLIGHTS)
    q = result.quarantined
    assert q[["carrier", "flight", "origin", "tailnum"]].values.tolist() == [["DL", "2247", "LGA", "D942DN"]]
    assert q[REASON_COLUMN].tolist() == ["tailnum: 'D942DN' does not match /N[A-Z0-9]{1,6}/"]


def test_real_data_impossible_wind_speed_is_quarantined(source):
    """One real weather row (EWR, 2013-02-12 03:00 local) reports a 1048 mph wind."""
    frame = extract(source, WEATHER, date(2013, 2, 12))
    result = validate(frame, WEATHER)
    q = result.quarantined
    assert len(q) == 1 and len(result.valid) == len(frame) - 1
    assert q.iloc[0]["origin"] == "EWR" and q.iloc[0]["hour"] == "3"
    assert q.iloc[0][REASON_COLUMN].startswith("wind_speed: 1048.36") and "above the maximum 200" in q.iloc[0][REASON_COLUMN]


def test_an_empty_batch_is_valid_and_empty(flights_day):
    result = validate(flights_day.head(0), FLIGHTS)
    assert len(result.valid) == 0 and len(result.quarantined) == 0
    assert result.quarantined_share == 0.0
    assert list(result.valid.columns) == [c.name for c in FLIGHTS.columns]


def test_reason_summary_counts_each_reason_and_names_a_few_keys_in_sorted_order(flights_day):
    """Seven negative distances (five keys shown), two bad codes, one null key: per reason, bounded."""
    rows = flights_day.head(40).astype(object).copy().reset_index(drop=True)
    rows.loc[0:6, "distance"] = -5.0
    rows.loc[10:11, "origin"] = "XXX"
    rows.loc[20, "carrier"] = None
    result = validate(rows, FLIGHTS)
    summary = result.reason_summary(FLIGHTS.key)
    assert {label: s["rows"] for label, s in summary.items()} == result.reason_counts() == {
        "carrier: null": 1, "distance: below": 7, "origin: not one of": 2}  # fmt: skip
    key = list(FLIGHTS.key)
    q = result.quarantined
    negative = q[q["distance"] == "-5.0"][key].astype(object).values.tolist()
    assert summary["distance: below"]["sample_keys"] == [dict(zip(key, k)) for k in sorted(negative)[:5]]
    assert [k["origin"] for k in summary["origin: not one of"]["sample_keys"]] == ["XXX", "XXX"]
    assert summary["carrier: null"]["sample_keys"] == [{**dict(zip(key, q[q["carrier"].isna()][key].iloc[0])), "carrier": None}]
    # The same bad rows in another order (a source returning them differently): the same summary.
    shuffled = validate(rows.sample(frac=1, random_state=7), FLIGHTS).reason_summary(FLIGHTS.key)
    assert json.dumps(shuffled) == json.dumps(summary)


def test_reason_summary_of_a_clean_batch_is_empty(flights_day):
    assert validate(flights_day.head(5), FLIGHTS).reason_summary(FLIGHTS.key) == {}


def test_conflicting_duplicates_name_their_shared_key_once(flights_day):
    day = flights_day.head(20)
    conflicting = day.iloc[[5]].copy()
    conflicting["dep_delay"] = 999.0
    summary = validate(pd.concat([day, conflicting], ignore_index=True), FLIGHTS).reason_summary(FLIGHTS.key)
    (label, entry), = summary.items()
    assert label == "carrier+flight+origin+time_hour+minute: conflicting duplicate"
    assert entry["rows"] == 2 and len(entry["sample_keys"]) == 1
    assert entry["sample_keys"][0]["flight"] == str(day.iloc[5]["flight"])

"""The source query keeps working when another library registers a sqlite3 datetime adapter.

Feast's SQLite online store registers a process-wide ``sqlite3`` adapter that sends datetimes
as integers; an untyped bind parameter then silently selects zero rows.
"""

from __future__ import annotations

import datetime
import sqlite3

from airloop.core.dates import day_window
from airloop.ingest.source import SourceDatabase
from airloop.core.usecase import load_use_case


def test_extract_is_immune_to_a_process_wide_sqlite_datetime_adapter(loaded_source):
    table = load_use_case("airloop.usecases.flights:USE_CASE").table("flights")
    start, end = day_window("2026-03-02", "America/New_York")
    before = len(SourceDatabase(loaded_source, replay_offset_days=4746).extract(table, start, end).frame)
    sqlite3.register_adapter(datetime.datetime, lambda value: int(value.timestamp()))
    try:
        after = len(SourceDatabase(loaded_source, replay_offset_days=4746).extract(table, start, end).frame)
    finally:
        sqlite3.adapters.pop((datetime.datetime, sqlite3.PrepareProtocol), None)
    assert before > 500
    assert after == before

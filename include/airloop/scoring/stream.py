"""The scoring stream: chunks of rows -> features -> ``Booster.inplace_predict`` -> Parquet row groups.

:func:`score_stream` keeps memory flat however many rows a day has: one chunk is scored while
the previous one is written by :class:`_ParquetSink`'s background thread, at a lower CPU
priority. Chunks hold ``AIRLOOP_SCORING_CHUNK_ROWS`` rows (:func:`chunk_rows_setting`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from airloop.core.config import env_int
from airloop.scoring.errors import FeatureMismatchError, ScoringError
from airloop.scoring.partition import SCORE_COLUMN, VERSION_COLUMN

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 200_000


def chunk_rows_setting() -> int:
    """``AIRLOOP_SCORING_CHUNK_ROWS``: rows per chunk (and Parquet row group) of the scoring stream."""
    rows = env_int("AIRLOOP_SCORING_CHUNK_ROWS", DEFAULT_CHUNK_ROWS)
    if rows < 1:
        raise ScoringError(f"AIRLOOP_SCORING_CHUNK_ROWS must be a positive integer, got {rows}")
    return rows


@dataclass
class StreamStats:
    """What :func:`score_stream` saw: counts and score summary (deterministic, for the manifest)."""

    rows: int = 0
    chunks: int = 0
    rows_missing_features: int = 0
    missing_by_feature: dict[str, int] = field(default_factory=dict)
    score_sum: float = 0.0
    score_min: float | None = None
    score_max: float | None = None

    def summary(self) -> dict:
        return {
            "mean": round(self.score_sum / self.rows, 6) if self.rows else None,
            "min": None if self.score_min is None else round(self.score_min, 6),
            "max": None if self.score_max is None else round(self.score_max, 6),
        }


def score_stream(
    chunks: Iterable["pd.DataFrame"],
    *,
    booster,
    feature_columns: list[str],
    key: list[str],
    lookup: Callable[["pd.DataFrame"], "pd.DataFrame"],
    model_version: int,
    part_path: Path,
    features_path: Path,
) -> StreamStats:
    """Score a stream of row chunks and write them as Parquet row groups (one per chunk).

    Memory holds two chunks at a time: the one being scored and the one being written (by a
    background thread, see :class:`_ParquetSink`). The output order is the input order. The model
    inputs are taken as one float64 matrix (in ``feature_columns`` order; NaN where unknown,
    XGBoost's missing value), which is also what ``features.parquet`` logs (NaN stored as null).

    :param lookup: ``f(chunk) -> features`` with one row per chunk row, in order, holding at
        least ``feature_columns``.
    :param part_path: where ``part.parquet`` goes (key, score, model_version).
    :param features_path: where ``features.parquet`` goes (key and the model inputs used).
    """
    import numpy as np
    import pyarrow as pa

    stats = StreamStats(missing_by_feature={c: 0 for c in feature_columns})
    missing_by_feature = np.zeros(len(feature_columns), dtype="int64")
    # The model inputs are floats repeated across rows (one value per entity). Parquet's
    # byte-stream-split + zstd encodes them with less CPU than its default dictionary encoding
    # (measured 0.12 s vs 0.15-0.20 s per 200k rows), for files about 1.5x the size.
    writer = _ParquetSink(
        {"part": part_path, "features": features_path},
        options={"features": {"use_dictionary": list(key), "column_encoding": dict.fromkeys(feature_columns, "BYTE_STREAM_SPLIT")}},
    )
    key_schema = None
    model_input = np.empty((0, len(feature_columns)), dtype="float32")  # reused: XGBoost reads it, never keeps it
    try:
        for chunk in chunks:
            if len(chunk) == 0:
                continue
            feats = lookup(chunk)
            if len(feats) != len(chunk):
                raise ScoringError(f"the feature lookup returned {len(feats)} rows for {len(chunk)} rows to score")
            absent = [c for c in feature_columns if c not in feats.columns]
            if absent:
                raise FeatureMismatchError(f"the feature lookup did not return the model inputs {absent}")
            # The lookup's frame usually holds exactly the model inputs, in order: no selection copy.
            inputs = feats if list(feats.columns) == feature_columns else feats[feature_columns]
            matrix = inputs.to_numpy(dtype="float64", na_value=np.nan)
            unknown = np.isnan(matrix)
            stats.rows_missing_features += int(unknown.any(axis=1).sum())
            missing_by_feature += unknown.sum(axis=0)
            # XGBoost computes in float32 and reads a row-major matrix fastest: give it that
            # (the same values it would cast to), in one buffer kept across chunks (a fresh 35 MB
            # one per chunk is paid again in page faults); features.parquet logs float64.
            if len(model_input) < len(matrix):
                model_input = np.empty(matrix.shape, dtype="float32")
            model_input[: len(matrix)] = matrix
            scores = np.asarray(booster.inplace_predict(model_input[: len(matrix)]), dtype="float32")

            keys = _arrow_keys(chunk, key)
            key_schema = key_schema or keys.schema
            keys = keys.cast(key_schema)
            part = keys.append_column(SCORE_COLUMN, pa.array(scores)).append_column(
                VERSION_COLUMN, pa.array(np.full(len(scores), model_version, dtype="int64"))
            )
            used = keys
            for i, name in enumerate(feature_columns):
                used = used.append_column(name, pa.array(matrix[:, i], from_pandas=True))
            writer.put({"part": part, "features": used})

            stats.rows += len(scores)
            stats.chunks += 1
            stats.score_sum += float(scores.sum(dtype="float64"))
            low, high = float(scores.min()), float(scores.max())
            stats.score_min = low if stats.score_min is None else min(stats.score_min, low)
            stats.score_max = high if stats.score_max is None else max(stats.score_max, high)
        writer.close()
    finally:
        writer.abort()
    stats.missing_by_feature = {c: int(n) for c, n in zip(feature_columns, missing_by_feature)}
    return stats


def _arrow_keys(chunk: "pd.DataFrame", key: list[str]) -> "pa.Table":
    """The key columns of ``chunk`` as an Arrow table (no pandas metadata).

    A string column is converted once per distinct value (factorized, then expanded by Arrow):
    a day's carriers and airports repeat on every row, and turning each row's Python string into
    UTF-8 was the larger part of the output work.
    """
    import pandas as pd
    import pyarrow as pa

    columns = {}
    for name in key:
        series = chunk[name]
        if isinstance(series.dtype, pd.StringDtype) or series.dtype == object:
            # A missing value gets its own code and becomes a null entry of the dictionary (faster
            # in pandas than a sentinel code, and the same nulls once expanded).
            codes, uniques = pd.factorize(series, use_na_sentinel=False)
            values = pa.array(uniques.to_numpy(dtype=object), type=pa.string() if series.dtype != object else None, from_pandas=True)
            columns[name] = pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int32()), values).cast(values.type)
        else:
            columns[name] = pa.Array.from_pandas(series)
    return pa.table(columns)


SINK_NICE = 10


def _lower_thread_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority (Linux: a thread has its own nice value).

    The writer then takes the CPU that the scoring thread leaves idle (while it looks features
    up, one core of XGBoost's two has nothing to do) instead of taking it from XGBoost's
    prediction threads, which wait for their slowest member. Elsewhere this does nothing.
    """
    import sys
    import threading

    if sys.platform != "linux":
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as exc:  # never worth failing a scoring run for
        log.debug("could not lower the Parquet writer's priority: %s", exc)


class _ParquetSink:
    """Append row groups to Parquet files from a background thread, one chunk behind the caller.

    Encoding and compressing a chunk (at 1M rows about 0.5 s of CPU in a 3.5 s run) then overlaps
    the feature lookup of the next one; Arrow releases the GIL while it writes. At most one chunk waits, so
    memory stays at two chunks. An error in the thread is raised in the caller at its next
    :meth:`put` or at :meth:`close`. The thread runs at a lower CPU priority
    (:func:`_lower_thread_priority`).
    """

    def __init__(self, paths: dict[str, Path], options: dict[str, dict] | None = None):
        import queue
        import threading

        self.paths = paths
        self.options = options or {}
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="parquet-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import pyarrow.parquet as pq

        _lower_thread_priority(SINK_NICE)
        writers: dict[str, pq.ParquetWriter] = {}
        try:
            while (tables := self._queue.get()) is not None:
                for name, table in tables.items():
                    if name not in writers:
                        writers[name] = pq.ParquetWriter(self.paths[name], table.schema, compression="zstd", **self.options.get(name, {}))
                    writers[name].write_table(table, row_group_size=table.num_rows)
        except BaseException as exc:  # handed to the caller
            self._error = exc
            while self._queue.get() is not None:  # drain until the caller stops
                pass
        finally:
            for writer in writers.values():
                writer.close()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, tables: dict) -> None:
        self._raise()
        self._queue.put(tables)

    def close(self) -> None:
        """Write what is queued, close the files, and raise the thread's error if it had one."""
        self.abort()
        self._raise()

    def abort(self) -> None:
        """Stop the thread (after an error in the caller); the files are closed, never published."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

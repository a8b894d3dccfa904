"""Nightly batch scoring: day D's schedule + features as of D's prediction time -> ``predictions/ds=D/``.

Timeline (replayed time). Day D is scored at its *prediction time* (``PredictionSpec.local_time``,
02:00 New York for flights), before its first departure. At that instant only two things are
known: D's **schedule** (the use case's ``PredictionSpec.known_columns``, selected explicitly from
the source so outcome columns are never read) and the features built from everything ingested up
to D-1, looked up **as of the prediction time**.

:func:`score_day` does one day, in this order, refusing before it scores anything when:

* no model can be chosen (:class:`NoChampionError`: says to run ``train_model`` or pin a version);
* the model expects feature columns its feature service no longer provides
  (:class:`FeatureMismatchError`, naming the columns);
* an upstream partition the features read is missing (:class:`UpstreamNotReadyError`) or does
  not match its manifest (:class:`UpstreamCorruptError`), naming the partition.

Then it streams the schedule in chunks of ``AIRLOOP_SCORING_CHUNK_ROWS`` rows (default 200,000):
features for the chunk, ``Booster.inplace_predict``, one Parquet row group per chunk written to a
scratch file, so memory stays flat however many rows a day has (:func:`score_stream`). Rows with
missing features are scored with NaN (XGBoost's missing value), counted in the manifest, never
dropped. Finally :func:`publish_files` publishes ``part.parquet`` (prediction key, ``score`` =
P(label), ``model_version``) and ``features.parquet`` (the key and the model inputs actually used)
under content-hashed names, the manifest last: a run killed half-way leaves the previous partition
intact and readable. The manifest holds no wall-clock time, so a rerun writes identical bytes;
each run's duration and ids go to the ``scoring_runs`` table of the registry database.

Model choice (:func:`choose_model`): a pinned version when given; otherwise the champion that was
serving at the day's prediction time (``ModelRegistry.champion_at``), or at *now* when that
instant is still ahead. For the nightly run the two coincide with "the champion at run time"; for
a backfill of past days it reproduces history instead of rewriting it with today's model, and a
rerun of any day picks the same model again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from airloop.core.config import env_int
from airloop.core.dates import day_window, parse_ds
from airloop.core.storage import (
    MANIFEST_NAME,
    Lake,
    LocalLake,
    S3Lake,
    StorageError,
    partition_prefix,
    read_manifest,
    sha256_bytes,
)
from airloop.core.version import code_version

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from airloop.core.config import Settings
    from airloop.ingest.source import SourceDatabase
    from airloop.core.usecase import PredictionSpec, UseCase

log = logging.getLogger(__name__)

ZONE = "predictions"
SCORE_COLUMN = "score"
VERSION_COLUMN = "model_version"
PART_FILE, FEATURES_FILE = "part.parquet", "features.parquet"
DEFAULT_CHUNK_ROWS = 200_000


class ScoringError(RuntimeError):
    """Scoring refused or failed; the message says what is wrong and what to do."""


class NoChampionError(ScoringError):
    """No model version can be chosen for the day (nothing registered, or nothing serving then)."""


class FeatureMismatchError(ScoringError):
    """The model expects feature columns that its feature service does not provide."""


class UpstreamNotReadyError(ScoringError):
    """An upstream partition the scoring needs is not published yet."""


class UpstreamCorruptError(ScoringError):
    """An upstream partition does not match its manifest (partial or corrupt files)."""


class NoScheduleError(ScoringError):
    """The source holds no scheduled rows for the day (outside the replayed range)."""


def chunk_rows_setting() -> int:
    """``AIRLOOP_SCORING_CHUNK_ROWS``: rows per chunk (and Parquet row group) of the scoring stream."""
    rows = env_int("AIRLOOP_SCORING_CHUNK_ROWS", DEFAULT_CHUNK_ROWS)
    if rows < 1:
        raise ScoringError(f"AIRLOOP_SCORING_CHUNK_ROWS must be a positive integer, got {rows}")
    return rows


def prediction_spec(use_case: "UseCase") -> "PredictionSpec":
    if use_case.prediction is None:
        raise ScoringError(f"use case {use_case.name!r} defines no PredictionSpec (use_case.prediction)")
    return use_case.prediction


def prediction_prefix(ds: date | str) -> str:
    """``predictions/ds=YYYY-MM-DD``: where day ``ds``'s predictions are published."""
    return partition_prefix(ZONE, "", parse_ds(ds).isoformat())


def prediction_time(ds: date | str, use_case: "UseCase") -> datetime:
    """The UTC instant at which day ``ds`` is scored (``local_time`` on that local day).

    On a spring-forward day a nonexistent local time resolves like the scheduler's cron does
    (02:00 New York on the switch day is 07:00 UTC).
    """
    from zoneinfo import ZoneInfo

    spec = prediction_spec(use_case)
    hour, _, minute = spec.local_time.partition(":")
    local = datetime.combine(parse_ds(ds), datetime.min.time(), tzinfo=ZoneInfo(use_case.timezone))
    local = local.replace(hour=int(hour), minute=int(minute or 0))
    return local.astimezone(timezone.utc)


# --- model choice ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelChoice:
    """The model version that scores a day, and why it was chosen.

    :param policy: ``pinned`` or ``serving_at`` (the champion serving at ``instant``).
    """

    version: Any
    policy: str
    instant: datetime | None = None

    @property
    def description(self) -> str:
        if self.policy == "pinned":
            return f"v{self.version.version} (pinned)"
        return f"v{self.version.version} (champion serving at {self.instant.isoformat()})"


def choose_model(
    registry,
    model_name: str,
    as_of: datetime,
    *,
    pinned: int | str | None = None,
    now: datetime | None = None,
) -> ModelChoice:
    """Choose the model version that scores the day whose prediction time is ``as_of``.

    :param pinned: a version number; wins over the policy.
    :param now: the current instant (tests); defaults to the wall clock.
    :raises NoChampionError: nothing pinned and no champion serving at that instant.
    """
    if pinned not in (None, ""):
        try:
            number = int(pinned)
        except (TypeError, ValueError):
            raise ScoringError(f"model_version must be a version number, got {pinned!r}") from None
        try:
            mv = registry.get(model_name, number)
        except LookupError as exc:  # the registry's VersionNotFound names the versions it has
            raise NoChampionError(f"cannot pin model_version={number}: {exc}") from None
        return ModelChoice(mv, "pinned")
    now = now or datetime.now(timezone.utc)
    instant = min(as_of, now)
    mv = registry.champion_at(model_name, instant)
    if mv is not None:
        return ModelChoice(mv, "serving_at", instant)
    current = registry.champion(model_name)
    if current is None:
        raise NoChampionError(
            f"no champion of model {model_name!r} is registered: run the train_model DAG "
            f"(or `airloop train`) to train and promote one, or pin a version with model_version=N"
        )
    raise NoChampionError(
        f"no champion of model {model_name!r} was serving at {instant.isoformat()} (the prediction "
        f"time of the day); the current champion v{current.version} was promoted later. A backfill "
        f"scores a past day with the model that served it; to score it with another, pin it: "
        f"model_version={current.version}"
    )


def check_feature_columns(model_columns: Iterable[str], provided: Iterable[str], *, model: str, service: str) -> None:
    """Refuse (before scoring) when the model expects columns the feature service lacks."""
    provided = list(provided)
    missing = [c for c in model_columns if c not in provided]
    if missing:
        raise FeatureMismatchError(
            f"model {model} expects features {missing} that feature service {service!r} no longer "
            f"provides (it has {provided}); retrain the model on the current service, or restore "
            f"those features"
        )


# --- features ------------------------------------------------------------------------------------


def upstream_partitions(ds: date | str, use_case: "UseCase") -> list[str]:
    """The partitions scoring day ``ds`` waits for: every feature view's partition of ``ds - 1``.

    They are the newest data the features as of ``ds``'s prediction time can hold (``ds - 1`` is
    the last day ingested by then); older partitions were checked when they were the newest.
    """
    from datetime import timedelta

    if use_case.features is None:
        raise ScoringError(f"use case {use_case.name!r} defines no features (use_case.features)")
    previous = (parse_ds(ds) - timedelta(days=1)).isoformat()
    return [partition_prefix("features", view.name, previous) for view in use_case.features.views]


class FeatureLookup:
    """Features of the rows to score, as of one instant: the features stage behind one interface.

    Pass another object with the same methods (``service_name``, ``columns``,
    ``input_partitions``, ``lookup``) to score with other features (tests, benchmarks).

    :param feature_service: the Feast feature service (default: the use case's).
    :param lake: the lake to read feature partitions from (default: the settings').
    """

    def __init__(self, settings: "Settings", feature_service: str | None = None, *, lake: Lake | None = None, use_case=None):
        self.settings = settings
        self.feature_service = feature_service
        self.lake = lake
        self.use_case = use_case

    @property
    def service_name(self) -> str:
        from airloop import features

        return self.feature_service or features.default_feature_service(self.settings)

    def columns(self) -> list[str]:
        """The model inputs this service provides as registered (request-time columns, then features)."""
        return [*self._use_case.features.request_columns, *self.layout.feature_names]

    @cached_property
    def _use_case(self) -> "UseCase":
        from airloop.core.usecase import load_use_case

        return self.use_case or load_use_case(self.settings.use_case)

    def input_partitions(self, ds: date) -> list[str]:
        """Lake prefixes checked (and recorded as lineage) before day ``ds`` is scored."""
        return upstream_partitions(ds, self._use_case)

    @cached_property
    def layout(self):
        """The service's registered layout, without importing Feast when the lake's record is current."""
        from airloop.features.registered_layout import registered_layout

        return registered_layout(self.settings, self.service_name, lake=self.lake)

    def lookup(self, rows: "pd.DataFrame", as_of: datetime) -> "pd.DataFrame":
        """One row per row of ``rows`` (same order): the model inputs (:meth:`columns`), float64.

        At one instant, each view's features depend only on that view's join keys: the latest
        row per entity. So the lookup asks :func:`airloop.features.features_as_of` once per
        *entity* (per view), never per row, keeps the answers for the next chunks of the same
        instant, and maps them onto the rows by the keys' codes. The cost then grows with the
        entities of the day (carriers, routes, aircraft), not with its rows; the values are
        those of ``features_as_of`` on the rows themselves.
        """
        import numpy as np
        import pandas as pd

        from airloop import features

        entities = features.entity_rows(rows, settings=self.settings)
        if getattr(self, "_as_of", None) != as_of:
            self._as_of, self._latest = as_of, {}
        columns = self.input_columns
        # Column-major: one contiguous row of `by_column` per input, the frame's single block.
        by_column = np.empty((len(columns), len(entities)), dtype="float64")
        position = {c: i for i, c in enumerate(columns)}
        for name in columns:
            if name in entities.columns:  # request-time columns come from the row itself
                by_column[position[name]] = entities[name].to_numpy(dtype="float64", na_value=np.nan)
        codes = {}
        for view in self.layout.views:
            keys = tuple(view.join_keys)
            if keys not in codes:
                codes[keys] = _key_index(entities, list(keys)).factorize(use_na_sentinel=False)
        self._fetch_new_entities({view.name: codes[tuple(view.join_keys)][1] for view in self.layout.views}, entities, as_of)
        for view in self.layout.views:
            row_codes, uniques = codes[tuple(view.join_keys)]
            index, values = self._latest[view.name]
            where = index.get_indexer(uniques)[row_codes]
            if len(where) and where.min() < 0:  # every key is known by now
                raise ScoringError(f"feature lookup lost track of entities of view {view.name!r}")
            for j, name in enumerate(view.features):
                # mode="clip" (indices checked above) lets numpy write straight into `out`.
                np.take(values[:, j], where, out=by_column[position[name]], mode="clip")
        return pd.DataFrame(by_column.T, columns=columns, index=entities.index, copy=False)

    @cached_property
    def input_columns(self) -> list[str]:
        return self.columns()

    def _fetch_new_entities(self, uniques: dict, entities: "pd.DataFrame", as_of: datetime) -> None:
        """Look up, once, the entities (per view: ``uniques[view]``) not seen yet at this instant."""
        import numpy as np
        import pandas as pd

        from airloop import features

        segments, wanted = [], []
        for view in self.layout.views:
            keys = list(view.join_keys)
            new = uniques[view.name]
            if view.name in self._latest:
                new = new[self._latest[view.name][0].get_indexer(new) < 0]
            frame = new.to_frame(index=False, name=keys) if len(keys) > 1 else pd.DataFrame({keys[0]: new})
            wanted.append((view, new))
            segments.append(frame)
        if not any(len(new) for _, new in wanted):
            return
        # One probe frame: each view's new keys in its own segment; the other views' keys are
        # filled with a valid placeholder (their answers in that segment are not used).
        join_keys = self.layout.join_keys
        filler = entities[join_keys].iloc[0]
        dtypes = {k: entities[k].dtype for k in join_keys}  # each segment typed first: an all-null one stays typed
        probe = pd.concat(
            [
                seg.assign(**{k: filler[k] for k in join_keys if k not in seg.columns})[join_keys].astype(dtypes)
                for seg in segments
                if len(seg)
            ],
            ignore_index=True,
        )
        try:
            found = features.features_as_of(
                probe, as_of, settings=self.settings, feature_service=self.service_name, lake=self.lake, layout=self.layout
            )
        except features.MissingFeaturePartition as exc:
            raise UpstreamNotReadyError(str(exc)) from None
        if len(found) != len(probe):
            raise ScoringError(f"features_as_of returned {len(found)} rows for {len(probe)} entities")
        offset = 0
        for view, new in wanted:
            part = found.iloc[offset : offset + len(new)]
            offset += len(new)
            # Keyed by the probe's own keys (same dtype and nulls as the rows to score), not by
            # the keys echoed back, whose nulls and dtype come back changed through Arrow.
            values = np.asfortranarray(part[list(view.features)].to_numpy(dtype="float64", na_value=np.nan))
            if view.name in self._latest:
                index, known = self._latest[view.name]
                self._latest[view.name] = (index.append(new), np.concatenate([known, values]))
            else:
                self._latest[view.name] = (new, values)


def _key_index(frame: "pd.DataFrame", keys: list[str]):
    import pandas as pd

    if len(keys) == 1:
        return pd.Index(frame[keys[0]])
    return pd.MultiIndex.from_frame(frame[keys])


def verify_inputs(lake: Lake, prefixes: Iterable[str]) -> list[dict]:
    """Check each upstream partition against its manifest; return their checksums for lineage.

    :raises UpstreamNotReadyError: a partition has no manifest (names them all).
    :raises UpstreamCorruptError: a listed file is missing or its sha256 differs (names it).
    """
    prefixes = sorted(set(prefixes))
    manifests = {p: read_manifest(lake, p) for p in prefixes}
    missing = [lake.uri(p) for p, m in manifests.items() if m is None]
    if missing:
        raise UpstreamNotReadyError(f"upstream partitions not published yet: {', '.join(missing)}")
    inputs = []
    for prefix, manifest in manifests.items():
        files = []
        for entry in manifest.get("files", []):
            key = f"{prefix}/{entry['name']}"
            try:
                data = lake.read_bytes(key)
            except StorageError as exc:
                raise UpstreamCorruptError(f"upstream partition {lake.uri(prefix)} is partial: {exc}") from None
            if sha256_bytes(data) != entry["sha256"]:
                raise UpstreamCorruptError(
                    f"upstream partition {lake.uri(prefix)} is corrupt: {entry['name']} does not match "
                    f"its manifest's sha256; republish it (rerun its DAG for that day)"
                )
            files.append({"name": entry["name"], "sha256": entry["sha256"]})
        inputs.append({"partition": prefix, "files": files})
    return inputs


def missing_inputs(lake: Lake, prefixes: Iterable[str]) -> list[str]:
    """The upstream partitions (of ``prefixes``) not published yet: a cheap manifest check."""
    return [p for p in sorted(set(prefixes)) if read_manifest(lake, p) is None]


# --- the schedule ------------------------------------------------------------------------------


@dataclass
class ScheduleRead:
    """What the schedule reader did, for the manifest (filled as the chunks stream)."""

    table: str
    query: str
    source_window: tuple[str, str]
    rows_read: int = 0
    rows_rejected: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "table": self.table,
            "query": self.query,
            "source_window": list(self.source_window),
            "rows_read": self.rows_read,
            "rows_rejected": self.rows_rejected,
            "rejected_reasons": dict(sorted(self.rejected_reasons.items())),
        }


def schedule_query(source: "SourceDatabase", use_case: "UseCase") -> str:
    """The parametrized query selecting the known-at-prediction-time columns of one window."""
    spec = prediction_spec(use_case)
    table = use_case.table(spec.table)
    quote = source.engine.dialect.identifier_preparer.quote
    unknown = [c for c in spec.known_columns if c not in {col.name for col in table.columns}]
    if unknown:
        raise ScoringError(f"PredictionSpec.known_columns {unknown} are not columns of table {table.name!r}")
    order = [k for k in table.key if k in spec.known_columns]
    time_col = quote(table.time_column)
    return (
        f"SELECT {', '.join(quote(c) for c in spec.known_columns)} FROM {quote(table.name)} "
        f"WHERE {time_col} >= :window_start AND {time_col} < :window_end "
        f"ORDER BY {', '.join(quote(c) for c in order)}"
    )


def read_schedule(
    source: "SourceDatabase", use_case: "UseCase", ds: date | str, *, chunk_rows: int
) -> tuple[ScheduleRead, Iterator["pd.DataFrame"]]:
    """Stream day ``ds``'s schedule from the source in chunks, typed, checked and replayed.

    Only ``PredictionSpec.known_columns`` are selected. Each chunk is held to the table's data
    contract (on those columns); rows that fail it cannot be scored and are counted in
    :class:`ScheduleRead` with their reasons, like ingestion quarantines them.
    """
    import pandas as pd
    from sqlalchemy import DateTime, bindparam, text
    from sqlalchemy.exc import InterfaceError, OperationalError

    from airloop.ingest.contract import validate
    from airloop.ingest.source import SourceUnavailable

    spec = prediction_spec(use_case)
    table = use_case.table(spec.table)
    known = replace(table, columns=tuple(table.column(c) for c in spec.known_columns))
    start, end = day_window(ds, use_case.timezone)
    shift = source.shift
    window_start = (start - shift).astimezone(timezone.utc).replace(tzinfo=None)
    window_end = (end - shift).astimezone(timezone.utc).replace(tzinfo=None)
    query = schedule_query(source, use_case)
    info = ScheduleRead(table.name, query, (window_start.isoformat(), window_end.isoformat()))

    def chunks() -> Iterator["pd.DataFrame"]:
        try:
            conn = source.engine.connect()
        except (OperationalError, InterfaceError) as exc:
            raise SourceUnavailable(f"cannot reach the source database {source.safe_url}: {exc.orig}") from None
        with conn:
            # Typed parameters: SQLAlchemy renders them in the dialect's own datetime format. Plain
            # datetimes go through sqlite3's global adapters, which Feast's SQLite online store
            # replaces (datetime -> epoch int): the window would then silently match no row.
            statement = text(query).bindparams(bindparam("window_start", type_=DateTime()), bindparam("window_end", type_=DateTime()))
            params = {"window_start": window_start, "window_end": window_end}
            for raw in pd.read_sql(statement, conn, params=params, chunksize=chunk_rows):
                info.rows_read += len(raw)
                checked = validate(raw, known)
                if len(checked.quarantined):
                    info.rows_rejected += len(checked.quarantined)
                    for reason, n in checked.reason_counts().items():
                        info.rejected_reasons[reason] = info.rejected_reasons.get(reason, 0) + n
                    log.warning("%d schedule rows of %s fail the contract and are not scored", len(checked.quarantined), ds)
                valid = checked.valid
                yield table.transform(valid, source.replay_offset_days) if table.transform else valid

    return info, chunks()


# --- the scoring stream -------------------------------------------------------------------------


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


# --- publishing from files ----------------------------------------------------------------------


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(8 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _put_file(lake: Lake, key: str, path: Path, digest: str) -> None:
    """Copy a local file to ``key`` atomically, without loading it in memory where possible."""
    if isinstance(lake, LocalLake):
        target = lake.local_path(key)
        if target.is_file() and sha256_file(target)[0] == digest:
            return  # a rerun with identical content: the published file is already right
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{uuid.uuid4().hex[:12]}{target.suffix}"
        try:
            shutil.copyfile(path, tmp)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    elif isinstance(lake, S3Lake):
        full = f"{lake.prefix}/{key}" if lake.prefix else key
        try:
            lake.client.upload_file(str(path), lake.bucket, full)  # multipart for large files
        except Exception as exc:
            raise StorageError(f"could not write {lake.uri(key)}: {exc}") from exc
    else:
        lake.write_bytes(key, path.read_bytes())


def publish_files(lake: Lake, prefix: str, files: dict[str, Path], manifest: dict) -> dict:
    """Publish local files as a partition, like :func:`airloop.core.storage.publish_partition`.

    Same layout and manifest (content-hashed names, ``files`` with sha256, manifest last), but
    streamed from files so large outputs never sit in memory. After the switch it removes the
    files the *previous* manifest listed and the new one does not: never a file it does not
    know, which may be a concurrent run's for the same day, still waiting for its manifest.
    """
    previous = read_manifest(lake, prefix) or {}
    listed = []
    for logical, path in sorted(files.items()):
        digest, size = sha256_file(path)
        stem, dot, ext = logical.rpartition(".")
        name = f"{stem}-{digest[:12]}{dot}{ext}"
        _put_file(lake, f"{prefix}/{name}", path, digest)
        listed.append({"name": name, "logical_name": logical, "sha256": digest, "bytes": size})
    body = dict(manifest)
    body["files"] = listed
    body["partition"] = prefix
    lake.write_json(f"{prefix}/{MANIFEST_NAME}", body)
    keep = {f["name"] for f in listed}
    lake.delete([f"{prefix}/{f['name']}" for f in previous.get("files", []) if f["name"] not in keep])
    return body


# --- scoring runs (registry database) -----------------------------------------------------------


def _runs_table(metadata):
    from sqlalchemy import Column, DateTime, Float, Integer, String, Table, Text

    return Table(
        "scoring_runs",
        metadata,
        Column("run_id", String(64), primary_key=True),
        Column("ds", String(10), nullable=False, index=True),
        Column("status", String(16), nullable=False),
        Column("model_name", String(128)),
        Column("model_version", Integer),
        Column("model_sha256", String(64)),
        Column("model_policy", String(32)),
        Column("rows", Integer),
        Column("rows_missing_features", Integer),
        Column("partition", String(512)),
        Column("manifest_sha256", String(64)),
        Column("started_at", DateTime(timezone=True), nullable=False),
        Column("finished_at", DateTime(timezone=True)),
        Column("duration_s", Float),
        Column("airflow_run_id", String(250)),
        Column("error", Text),
    )


class ScoringRuns:
    """The ``scoring_runs`` table: one row per scoring attempt (what the manifest leaves out)."""

    def __init__(self, url: str):
        from sqlalchemy import MetaData

        self.url = url
        self.metadata = MetaData()
        self.table = _runs_table(self.metadata)

    @cached_property
    def engine(self):
        from sqlalchemy import create_engine

        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        args = {"connect_args": {"timeout": 30}} if self.url.startswith("sqlite") else {"pool_pre_ping": True}
        return create_engine(self.url, **args)

    def ensure(self) -> bool:
        """Create the table when missing; return True when it was created."""
        from sqlalchemy import inspect

        existed = inspect(self.engine).has_table("scoring_runs")
        self.metadata.create_all(self.engine, checkfirst=True)
        return not existed

    def start(self, run_id: str, ds: str, started_at: datetime, airflow_run_id: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                self.table.insert().values(
                    run_id=run_id, ds=ds, status="running", started_at=started_at, airflow_run_id=airflow_run_id
                )
            )

    def finish(self, run_id: str, **values) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.update().where(self.table.c.run_id == run_id).values(**values))

    def list(self, ds: str | None = None, limit: int = 50) -> list[dict]:
        from sqlalchemy import select

        query = select(self.table).order_by(self.table.c.started_at.desc()).limit(limit)
        if ds:
            query = query.where(self.table.c.ds == ds)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]


def ensure_scoring_runs(settings: "Settings") -> str:
    """Set-up step: the ``scoring_runs`` table in the registry database."""
    from airloop.core.config import redact_url

    runs = ScoringRuns(settings.registry_url)  # beside the registry
    return f"scoring_runs table {'created' if runs.ensure() else 'exists'} in {redact_url(settings.registry_url)}"


# --- one day ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoringResult:
    ds: str
    run_id: str
    prefix: str
    rows: int
    rows_missing_features: int
    model_version: int
    model_policy: str
    duration_s: float
    manifest: dict

    def as_dict(self) -> dict:
        return {
            "ds": self.ds,
            "run_id": self.run_id,
            "partition": self.prefix,
            "rows": self.rows,
            "rows_missing_features": self.rows_missing_features,
            "model_version": self.model_version,
            "model_policy": self.model_policy,
            "duration_s": round(self.duration_s, 3),
        }


def _model_fields(mv) -> dict:
    return {
        "name": mv.model_name,
        "version": int(mv.version),
        "sha256": mv.sha256,
        "artifact_uri": mv.artifact_uri,
        "feature_service": mv.feature_service,
        "feature_columns": list(mv.feature_columns),
        "training_window": {"start": str(mv.window_start), "end": str(mv.window_end)},
        "training_fingerprint": getattr(mv, "fingerprint", None),
    }


def score_day(
    ds: date | str,
    *,
    settings: "Settings",
    model_version: int | str | None = None,
    lake: Lake | None = None,
    source: "SourceDatabase | None" = None,
    registry=None,
    features: FeatureLookup | None = None,
    use_case: "UseCase | None" = None,
    chunk_rows: int | None = None,
    run_id: str | None = None,
    airflow_run_id: str | None = None,
    now: datetime | None = None,
) -> ScoringResult:
    """Score every row scheduled on day ``ds`` and publish ``predictions/ds=<ds>/``.

    :param model_version: pin a version (otherwise the champion serving at the prediction time).
    :param features: the feature lookup (default: the lake's features, through the model's own
        feature service).
    :param registry: a ``ModelRegistry`` (default: ``settings.registry_url``).
    :raises NoChampionError, FeatureMismatchError, UpstreamNotReadyError, UpstreamCorruptError,
        NoScheduleError: refused; nothing was written and the previous partition is untouched.
    """
    from airloop.core.storage import open_lake
    from airloop.core.usecase import load_use_case

    day = parse_ds(ds)
    use_case = use_case or load_use_case(settings.use_case)
    lake = lake or open_lake(settings)
    if source is None:
        from airloop.ingest.source import SourceDatabase

        source = SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days)
    if registry is None:
        from airloop.registry import ModelRegistry

        registry = ModelRegistry(settings.registry_url)
    if use_case.model is None:
        raise ScoringError(f"use case {use_case.name!r} defines no model (use_case.model)")
    chunk_rows = chunk_rows or chunk_rows_setting()
    spec = prediction_spec(use_case)
    as_of = prediction_time(day, use_case)
    run_id = run_id or uuid.uuid4().hex
    runs = ScoringRuns(getattr(registry, "url", None) or settings.registry_url)  # beside the registry
    runs.ensure()
    started_at, clock = datetime.now(timezone.utc), time.monotonic()
    runs.start(run_id, day.isoformat(), started_at, airflow_run_id)
    try:
        result = _score_day(
            day, as_of, spec, use_case=use_case, settings=settings, lake=lake, source=source,
            registry=registry, features=features, pinned=model_version, chunk_rows=chunk_rows,
            now=now, run_id=run_id, clock=clock,
        )  # fmt: skip
    except BaseException as exc:
        runs.finish(
            run_id, status="failed", finished_at=datetime.now(timezone.utc),
            duration_s=time.monotonic() - clock, error=f"{type(exc).__name__}: {exc}"[:4000],
        )  # fmt: skip
        raise
    runs.finish(
        run_id,
        status="success",
        finished_at=datetime.now(timezone.utc),
        duration_s=result.duration_s,
        model_name=result.manifest["model"]["name"],
        model_version=result.model_version,
        model_sha256=result.manifest["model"]["sha256"],
        model_policy=result.model_policy,
        rows=result.rows,
        rows_missing_features=result.rows_missing_features,
        partition=result.prefix,
        manifest_sha256=sha256_bytes(lake.read_bytes(f"{result.prefix}/{MANIFEST_NAME}")),
    )
    return result


def _score_day(day, as_of, spec, *, use_case, settings, lake, source, registry, features, pinned, chunk_rows, now, run_id, clock):
    coverage = source.coverage(use_case.table(spec.table))
    start, end = day_window(day, use_case.timezone)
    if coverage is None or end <= coverage[0] or start > coverage[1]:
        span = f"{coverage[0]:%Y-%m-%d} .. {coverage[1]:%Y-%m-%d}" if coverage else "nothing"
        raise NoScheduleError(f"{day} is outside the replayed source, which covers {span}; nothing to score")

    model_name = use_case.model.name
    choice = choose_model(registry, model_name, as_of, pinned=pinned, now=now)
    mv = choice.version
    features = features or FeatureLookup(settings, mv.feature_service, lake=lake, use_case=use_case)
    service = getattr(features, "service_name", None) or mv.feature_service
    model_columns = list(mv.feature_columns)
    check_feature_columns(model_columns, features.columns(), model=f"{model_name} v{mv.version}", service=service)
    inputs = verify_inputs(lake, features.input_partitions(day))
    booster = registry.load_booster(mv, lake)
    booster_names = getattr(booster, "feature_names", None)
    if booster_names and list(booster_names) != model_columns:
        raise ScoringError(
            f"model {model_name} v{mv.version}: the booster's features {list(booster_names)} differ from "
            f"the registry's feature_columns {model_columns}; the registry entry is inconsistent"
        )
    log.info("scoring %s as of %s with %s %s", day, as_of.isoformat(), model_name, choice.description)
    schedule, chunks = read_schedule(source, use_case, day, chunk_rows=chunk_rows)

    scratch_root = settings.data_dir / "tmp"
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"scoring-{day.isoformat()}-", dir=scratch_root))
    try:
        paths = {PART_FILE: scratch / PART_FILE, FEATURES_FILE: scratch / FEATURES_FILE}
        stats = score_stream(
            chunks,
            booster=booster,
            feature_columns=model_columns,
            key=list(spec.key),
            lookup=lambda chunk: features.lookup(chunk, as_of),
            model_version=int(mv.version),
            part_path=paths[PART_FILE],
            features_path=paths[FEATURES_FILE],
        )
        if stats.rows == 0:
            raise NoScheduleError(
                f"the source returned no schedule rows for {day} that pass the contract "
                f"({schedule.rows_read} read, {schedule.rows_rejected} rejected); nothing to score"
            )
        manifest = {
            "ds": day.isoformat(),
            "rows": stats.rows,
            "prediction_time": as_of.isoformat(),
            "key": list(spec.key),
            "score": {"column": SCORE_COLUMN, "label": use_case.model.label, **stats.summary()},
            "model": _model_fields(mv),
            "feature_service": service,
            "rows_missing_features": stats.rows_missing_features,
            "missing_by_feature": stats.missing_by_feature,
            "inputs": {"schedule": schedule.as_dict(), "partitions": inputs},
            "chunk_rows": chunk_rows,
            "code_version": code_version(),
        }
        prefix = prediction_prefix(day)
        body = publish_files(lake, prefix, paths, manifest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    duration = time.monotonic() - clock
    log.info(
        "published %d predictions (%d with missing features) at %s in %.2fs",
        stats.rows, stats.rows_missing_features, lake.uri(prefix), duration,
    )  # fmt: skip
    return ScoringResult(
        ds=day.isoformat(), run_id=run_id, prefix=prefix, rows=stats.rows,
        rows_missing_features=stats.rows_missing_features, model_version=int(mv.version),
        model_policy=choice.policy, duration_s=duration, manifest=body,
    )  # fmt: skip


# --- reading back -------------------------------------------------------------------------------


def read_predictions(lake: Lake, ds: date | str, *, logical_name: str = PART_FILE) -> "pd.DataFrame":
    """Day ``ds``'s predictions (or ``features.parquet``), checked against the manifest."""
    from airloop.core.storage import read_partition_frame

    return read_partition_frame(lake, prediction_prefix(ds), logical_name=logical_name)


def trace_prediction(lake: Lake, ds: date | str, **match) -> dict:
    """Everything behind the predictions of day ``ds`` whose key columns equal ``match``.

    Returns the matching rows (key, score, model version, the inputs used) and the lineage: the
    model version (sha256, training window, feature service) and the input partitions.
    """
    from airloop.core.storage import require_manifest

    prefix = prediction_prefix(ds)
    manifest = require_manifest(lake, prefix)
    part = read_predictions(lake, ds)
    used = read_predictions(lake, ds, logical_name=FEATURES_FILE)
    unknown = [c for c in match if c not in part.columns]
    if unknown:
        raise KeyError(f"{unknown} are not columns of {prefix}; the key is {manifest['key']}")
    mask = None
    for col, value in match.items():
        hit = part[col].astype(str) == str(value)
        mask = hit if mask is None else mask & hit
    rows = part[mask] if mask is not None else part.head(0)
    feature_rows = used.loc[rows.index]
    found = [
        {**{k: v for k, v in r.items()}, "features": f}
        for r, f in zip(rows.to_dict("records"), feature_rows.drop(columns=manifest["key"]).to_dict("records"))
    ]
    return {
        "partition": prefix,
        "matches": found,
        "model": manifest["model"],
        "feature_service": manifest["feature_service"],
        "prediction_time": manifest["prediction_time"],
        "inputs": manifest["inputs"],
    }

"""One day: day D's schedule + features as of D's prediction time -> ``predictions/ds=D/``.

Timeline (replayed time). Day D is scored at its *prediction time* (the day's cutoff,
``PredictionSpec.local_time``, 02:00 New York for flights), before its first departure. At that
instant only two things are known: D's **schedule** (the use case's
``PredictionSpec.known_columns``, selected explicitly from the source so outcome columns are
never read) and the features built from everything ingested up to D-1, looked up **as of the
prediction time**.

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
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from airloop.core.clock import clock_or_system
from airloop.core.dates import LogicalDay
from airloop.core.storage import MANIFEST_NAME, Lake, sha256_bytes
from airloop.core.version import code_version
from airloop.scoring.errors import NoScheduleError, ScoringError
from airloop.scoring.lookup import FeatureLookup
from airloop.scoring.model_choice import check_feature_columns, choose_model
from airloop.scoring.partition import FEATURES_FILE, PART_FILE, SCORE_COLUMN, prediction_prefix
from airloop.scoring.publish import publish_files
from airloop.scoring.runs import ScoringRuns
from airloop.scoring.schedule import prediction_spec, read_schedule
from airloop.scoring.stream import chunk_rows_setting, score_stream
from airloop.scoring.upstream import verify_inputs

if TYPE_CHECKING:
    from airloop.core.clock import Clock
    from airloop.core.config import Settings
    from airloop.core.usecase import UseCase
    from airloop.ingest import SourceDatabase

log = logging.getLogger(__name__)


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
    day: LogicalDay,
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
    clock: "Clock | None" = None,
) -> ScoringResult:
    """Score every row scheduled on ``day`` and publish ``predictions/ds=<day>/``.

    :param day: the day to score, as the boundary made it (``use_case.day(value)``, an
        operator's ``logical_day``): its window selects the schedule, its cutoff is the
        prediction time (features as of then, the champion serving then).
    :param model_version: pin a version (otherwise the champion serving at the prediction time).
    :param features: the feature lookup (default: the lake's features, through the model's own
        feature service).
    :param registry: a ``ModelRegistry`` (default: ``settings.registry_url``, with ``clock``).
    :param now: the instant the choice of model sees as "now" (default: ``clock.now()``).
    :param clock: where the run's instants come from (``now``, the ``scoring_runs`` start and
        finish). Default: the real time; a backtest passes its replayed clock.
    :raises NoChampionError, FeatureMismatchError, UpstreamNotReadyError, UpstreamCorruptError,
        NoScheduleError: refused; nothing was written and the previous partition is untouched.
    """
    from airloop.core.storage import open_lake
    from airloop.core.usecase import load_use_case

    if not isinstance(day, LogicalDay):
        raise TypeError(f"score_day takes a LogicalDay (use_case.day(value)), not {type(day).__name__} {day!r}")
    use_case = use_case or load_use_case(settings.use_case)
    lake = lake or open_lake(settings)
    if source is None:
        from airloop.ingest import SourceDatabase

        source = SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days)
    if registry is None:
        from airloop.registry import ModelRegistry

        registry = ModelRegistry(settings.registry_url, clock=clock)
    if use_case.model is None:
        raise ScoringError(f"use case {use_case.name!r} defines no model (use_case.model)")
    chunk_rows = chunk_rows or chunk_rows_setting()
    spec = prediction_spec(use_case)
    run_id = run_id or uuid.uuid4().hex
    runs = ScoringRuns(getattr(registry, "url", None) or settings.registry_url)  # beside the registry
    runs.ensure()
    clock = clock_or_system(clock)
    now = now or clock.now()
    started_at, started = clock.now(), time.monotonic()
    runs.start(run_id, day, started_at, airflow_run_id)
    try:
        result = _score_day(
            day, spec, use_case=use_case, settings=settings, lake=lake, source=source,
            registry=registry, features=features, pinned=model_version, chunk_rows=chunk_rows,
            now=now, run_id=run_id, started=started,
        )  # fmt: skip
    except BaseException as exc:
        runs.finish(
            run_id, status="failed", finished_at=clock.now(),
            duration_s=time.monotonic() - started, error=f"{type(exc).__name__}: {exc}"[:4000],
        )  # fmt: skip
        raise
    runs.finish(
        run_id,
        status="success",
        finished_at=clock.now(),
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


def _score_day(day, spec, *, use_case, settings, lake, source, registry, features, pinned, chunk_rows, now, run_id, started):
    as_of = day.cutoff
    coverage = source.coverage(use_case.table(spec.table))
    start, end = day.window
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
    scratch = Path(tempfile.mkdtemp(prefix=f"scoring-{day.key}-", dir=scratch_root))
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
            "ds": day.key,
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
    duration = time.monotonic() - started
    log.info(
        "published %d predictions (%d with missing features) at %s in %.2fs",
        stats.rows, stats.rows_missing_features, lake.uri(prefix), duration,
    )  # fmt: skip
    return ScoringResult(
        ds=day.key, run_id=run_id, prefix=prefix, rows=stats.rows,
        rows_missing_features=stats.rows_missing_features, model_version=int(mv.version),
        model_policy=choice.policy, duration_s=duration, manifest=body,
    )  # fmt: skip

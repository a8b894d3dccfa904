"""Batch scoring (airloop.scoring) against the real replayed source, a real registry and lake.

The features stage is injected (:class:`ScheduleFeatures`: features computed from the schedule
rows plus an upstream partition it "reads"), so these tests pin down the scoring engine itself:
row counts, the key, idempotency, model choice, bad inputs and a kill mid-write.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import date, datetime, timedelta, timezone
from datetime import time as time_of_day
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from airloop.scoring import (
    FeatureMismatchError,
    NoChampionError,
    ScoringRuns,
    UpstreamCorruptError,
    UpstreamNotReadyError,
    choose_model,
    prediction_prefix,
    read_predictions,
    score_day,
    trace_prediction,
)
from airloop.scoring.schedule import schedule_query
from airloop.scoring.stream import SINK_NICE, _arrow_keys, _ParquetSink
from airloop.registry import ModelRegistry
from airloop.core.storage import (
    MANIFEST_NAME,
    LocalLake,
    frame_to_parquet,
    publish_partition,
    read_manifest,
    read_partition_files,
)
from airloop.core.dates import LogicalDay
from airloop.core.usecase import load_use_case

USE_CASE = load_use_case("airloop.usecases.flights:USE_CASE")
MODEL = USE_CASE.model.name
COLUMNS = ["sched_hour", "distance", "day_of_week", "origin_code"]
SERVICE = "test_schedule_v1"
DAY = USE_CASE.day("2026-03-02")  # source day 2013-03-04 (a Monday)
OUTCOMES = ("dep_time", "arr_time", "dep_delay", "arr_delay", "air_time")


class ScheduleFeatures:
    """A features stage computed from the schedule rows, reading one upstream partition per day.

    :param nan_every: every n-th row gets NaN in ``distance`` (features missing for some flights).
    :param columns: the columns this "service" provides.
    """

    service_name = SERVICE

    def __init__(self, columns=tuple(COLUMNS), nan_every: int | None = None, delay_s: float = 0.0):
        self._columns = list(columns)
        self.nan_every = nan_every
        self.delay_s = delay_s

    def columns(self):
        return list(self._columns)

    def input_partitions(self, day):
        return [upstream_prefix(day)]

    def lookup(self, chunk, as_of):
        if self.delay_s:
            time.sleep(self.delay_s)
        return schedule_features(chunk, self.nan_every)[self._columns]


def upstream_prefix(day: LogicalDay) -> str:
    return f"features/test_view/ds={day.shift(-1).key}"


def schedule_features(chunk: pd.DataFrame, nan_every: int | None = None) -> pd.DataFrame:
    out = pd.DataFrame(index=chunk.index)
    out["sched_hour"] = chunk["hour"].astype("float64")
    out["distance"] = chunk["distance"].astype("float64")
    out["day_of_week"] = chunk["sched_dep_ts"].dt.tz_convert(USE_CASE.timezone).dt.dayofweek.astype("float64")
    out["origin_code"] = chunk["origin"].map({"EWR": 0.0, "JFK": 1.0, "LGA": 2.0}).astype("float64")
    if nan_every:
        out.iloc[::nan_every, out.columns.get_loc("distance")] = np.nan
    return out


def source_count(source_url: str, day: date) -> int:
    """Flights scheduled on replayed local day ``day``, counted straight from the source."""
    src = day - timedelta(days=4746)
    with create_engine(source_url).connect() as conn:
        return conn.execute(
            text("SELECT COUNT(*) FROM flights WHERE year = :y AND month = :m AND day = :d"),
            {"y": src.year, "m": src.month, "d": src.day},
        ).scalar_one()


@pytest.fixture(scope="module")
def booster_bytes(tmp_path_factory, loaded_source):
    """A small XGBoost model trained on two real source weeks of schedule features and labels."""
    import xgboost as xgb

    from airloop.ingest.source import SourceDatabase

    source = SourceDatabase(loaded_source, replay_offset_days=4746)
    table = USE_CASE.table("flights")
    extract = source.extract(table, datetime(2026, 1, 5, tzinfo=timezone.utc), datetime(2026, 1, 19, tzinfo=timezone.utc))
    raw = extract.frame.dropna(subset=["arr_delay"]).copy()
    raw["time_hour"] = pd.to_datetime(raw["time_hour"], utc=True)
    raw = table.transform(raw, 4746)
    features = schedule_features(raw)
    label = (raw["arr_delay"] > 15).astype(int)
    dtrain = xgb.DMatrix(features[COLUMNS], label=label, feature_names=COLUMNS)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "seed": 1}, dtrain, 20)
    return bytes(booster.save_raw("ubj"))


def register(settings, lake, data: bytes, *, columns=COLUMNS, service=SERVICE, promote=True) -> int:
    """Register (and promote) a model version with the real registry; return its version."""
    from airloop.core.storage import sha256_bytes

    registry = ModelRegistry(settings.registry_url)
    mv = registry.reserve_version(
        MODEL, feature_service=service, feature_columns=list(columns), window_start=date(2026, 1, 5),
        window_end=date(2026, 1, 18), fingerprint="test", params={}, metrics={}, code_version="test", device="cpu",
    )  # fmt: skip
    key = f"models/{MODEL}/v{mv.version}/model.ubj"
    lake.write_bytes(key, data)
    registry.finalize_version(MODEL, mv.version, artifact_uri=lake.uri(key), sha256=sha256_bytes(data), reference_uri=None)
    if promote:
        registry.promote(MODEL, mv.version, reason="test", actor="test")
    return mv.version


def publish_upstream(lake, day) -> str:
    prefix = upstream_prefix(day)
    frame = pd.DataFrame({"entity": ["a", "b"], "value": [1.0, 2.0]})
    publish_partition(lake, prefix, {"part.parquet": frame_to_parquet(frame)}, {"rows": 2})
    return prefix


@pytest.fixture
def ready(settings, lake, booster_bytes):
    """A champion registered and D-1's upstream partition published: scoring DAY can run."""
    version = register(settings, lake, booster_bytes)
    publish_upstream(lake, DAY)
    return version


def current_champion(settings) -> int | None:
    mv = ModelRegistry(settings.registry_url).champion(MODEL)
    return None if mv is None else mv.version


def run(settings, lake, day=DAY, **kwargs):
    """Score ``day`` with the current champion pinned, as a user backfilling a past day does.

    (Unpinned, a past day gets the champion serving at its prediction time, and these tests
    promote their models now, after it: see the model-choice tests.)
    """
    kwargs.setdefault("features", ScheduleFeatures())
    kwargs.setdefault("model_version", current_champion(settings))
    return score_day(day, settings=settings, lake=lake, **kwargs)


def partition_bytes(lake, day=DAY) -> dict[str, bytes]:
    prefix = prediction_prefix(day)
    return {k: lake.read_bytes(k) for k in lake.list_keys(prefix + "/")}


# --- times ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ds, expected",
    [
        ("2026-03-02", "2026-03-02T07:00:00+00:00"),  # EST
        ("2026-03-08", "2026-03-08T07:00:00+00:00"),  # spring forward: 02:00 does not exist
        ("2026-07-01", "2026-07-01T06:00:00+00:00"),  # EDT
    ],
)
def test_prediction_time_is_two_am_new_york(ds, expected):
    assert USE_CASE.day(ds).cutoff.isoformat() == expected


def test_schedule_query_selects_only_known_columns(settings):
    from airloop.ingest.source import SourceDatabase

    query = schedule_query(SourceDatabase(settings.source_url), USE_CASE)
    selected = {c.strip().strip('"') for c in query.split(" FROM ")[0].removeprefix("SELECT ").split(",")}
    assert selected == set(USE_CASE.prediction.known_columns)
    assert not selected & set(OUTCOMES)
    assert ":window_start" in query and ":window_end" in query


# --- scoring ------------------------------------------------------------------------------------


def test_scores_every_scheduled_flight_with_key_score_and_version(settings, lake, ready):
    result = run(settings, lake)
    expected_rows = source_count(settings.source_url, DAY.date)
    part = read_predictions(lake, DAY)
    used = read_predictions(lake, DAY, logical_name="features.parquet")

    assert result.rows == len(part) == len(used) == expected_rows > 500
    assert list(part.columns) == ["carrier", "flight", "origin", "dest", "sched_dep_ts", "score", "model_version"]
    assert part["score"].between(0, 1).all() and part["score"].nunique() > 10
    assert (part["model_version"] == ready).all()
    assert not part.duplicated(["carrier", "flight", "origin", "dest", "sched_dep_ts"]).any()
    # Every flight departs on local day DAY and after its prediction time.
    local = part["sched_dep_ts"].dt.tz_convert(USE_CASE.timezone)
    assert (local.dt.date == DAY.date).all()
    assert (part["sched_dep_ts"] > pd.Timestamp(DAY.cutoff)).all()
    # features.parquet holds the same rows, in order, with the model inputs.
    pd.testing.assert_frame_equal(used[part.columns[:5]], part[part.columns[:5]])
    assert list(used.columns[5:]) == COLUMNS
    for column in OUTCOMES:
        assert column not in used.columns


def test_scores_equal_a_direct_prediction_on_the_logged_inputs(settings, lake, ready, booster_bytes):
    import xgboost as xgb

    run(settings, lake)
    part = read_predictions(lake, DAY)
    used = read_predictions(lake, DAY, logical_name="features.parquet")
    booster = xgb.Booster()
    booster.load_model(bytearray(booster_bytes))
    direct = booster.inplace_predict(used[COLUMNS])
    np.testing.assert_allclose(part["score"].to_numpy(), direct, rtol=1e-6)


def test_manifest_records_model_inputs_and_counts_without_wall_clock(settings, lake, ready):
    run(settings, lake)
    manifest = read_manifest(lake, prediction_prefix(DAY))
    assert manifest["rows"] == source_count(settings.source_url, DAY.date)
    assert manifest["model"]["version"] == ready
    assert len(manifest["model"]["sha256"]) == 64
    assert manifest["model"]["training_window"] == {"start": "2026-01-05", "end": "2026-01-18"}
    assert manifest["feature_service"] == SERVICE
    assert manifest["prediction_time"] == "2026-03-02T07:00:00+00:00"
    [upstream] = manifest["inputs"]["partitions"]
    assert upstream["partition"] == "features/test_view/ds=2026-03-01"
    assert len(upstream["files"][0]["sha256"]) == 64
    assert manifest["inputs"]["schedule"]["rows_read"] == manifest["rows"]
    assert "arr_delay" not in manifest["inputs"]["schedule"]["query"]
    assert manifest["rows_missing_features"] == 0
    assert {f["logical_name"] for f in manifest["files"]} == {"part.parquet", "features.parquet"}
    # No run-specific facts: those live in scoring_runs.
    assert "duration" not in json.dumps(manifest) and "run_id" not in json.dumps(manifest)


def test_the_day_is_taken_as_given_its_cutoff_is_the_prediction_time(settings, lake, ready):
    """Scoring never re-derives the day: a day made with another cutoff is scored as of that cutoff."""
    later = LogicalDay(DAY.date, USE_CASE.timezone, time_of_day(3, 30))
    result = run(settings, lake, day=later)
    manifest = read_manifest(lake, prediction_prefix(DAY))
    assert manifest["prediction_time"] == later.cutoff.isoformat() == "2026-03-02T08:30:00+00:00"
    assert manifest["ds"] == result.ds == DAY.key
    assert result.rows == source_count(settings.source_url, DAY.date)  # the same day's schedule


@pytest.mark.parametrize("value", ["2026-03-02", date(2026, 3, 2)])
def test_score_day_takes_a_logical_day_not_a_date_string(settings, lake, value):
    with pytest.raises(TypeError, match=r"LogicalDay \(use_case\.day\(value\)\)"):
        score_day(value, settings=settings, lake=lake)
    assert read_manifest(lake, prediction_prefix(DAY)) is None


def test_rerun_writes_identical_bytes_and_logs_both_runs(settings, lake, ready):
    first = run(settings, lake)
    before = partition_bytes(lake)
    second = run(settings, lake)
    assert partition_bytes(lake) == before
    assert len(before) == 3  # part, features, manifest: nothing stale left behind

    runs = ScoringRuns(settings.registry_url).list(DAY)
    assert {r["run_id"] for r in runs} == {first.run_id, second.run_id}
    assert all(r["status"] == "success" and r["rows"] == first.rows and r["duration_s"] > 0 for r in runs)
    assert len({r["manifest_sha256"] for r in runs}) == 1


def test_chunk_size_changes_row_groups_not_predictions(settings, lake, ready):
    run(settings, lake, chunk_rows=97)
    small = read_predictions(lake, DAY)
    import pyarrow.parquet as pq
    import io

    _, files = read_partition_files(lake, prediction_prefix(DAY))
    assert pq.ParquetFile(io.BytesIO(files["part.parquet"])).num_row_groups == -(-len(small) // 97)
    run(settings, lake, chunk_rows=100_000)
    pd.testing.assert_frame_equal(read_predictions(lake, DAY), small)


def test_features_missing_for_some_flights_are_scored_and_counted(settings, lake, ready):
    result = run(settings, lake, features=ScheduleFeatures(nan_every=10))
    part = read_predictions(lake, DAY)
    used = read_predictions(lake, DAY, logical_name="features.parquet")
    expected_missing = -(-len(part) // 10)
    assert len(part) == source_count(settings.source_url, DAY.date)  # never dropped
    assert result.rows_missing_features == expected_missing == int(used["distance"].isna().sum())
    manifest = read_manifest(lake, prediction_prefix(DAY))
    assert manifest["rows_missing_features"] == expected_missing
    assert manifest["missing_by_feature"] == {"sched_hour": 0, "distance": expected_missing, "day_of_week": 0, "origin_code": 0}
    assert part["score"].between(0, 1).all()


# --- model choice -------------------------------------------------------------------------------


def test_no_champion_refuses_with_what_to_do(settings, lake, booster_bytes):
    register(settings, lake, booster_bytes, promote=False)
    publish_upstream(lake, DAY)
    with pytest.raises(NoChampionError, match="run the train_model DAG"):
        run(settings, lake)
    assert read_manifest(lake, prediction_prefix(DAY)) is None
    [failed] = ScoringRuns(settings.registry_url).list(DAY)
    assert failed["status"] == "failed" and "NoChampionError" in failed["error"]


def test_pinned_version_wins_over_the_champion(settings, lake, ready, booster_bytes):
    other = register(settings, lake, booster_bytes, promote=False)
    result = run(settings, lake, model_version=other)
    assert result.model_version == other != ready
    assert (read_predictions(lake, DAY)["model_version"] == other).all()
    with pytest.raises(NoChampionError, match="no version 99"):
        run(settings, lake, model_version=99)


def test_backfill_uses_the_champion_serving_at_the_prediction_time(settings, lake, booster_bytes):
    registry = ModelRegistry(settings.registry_url)
    first = register(settings, lake, booster_bytes)
    time.sleep(0.05)
    between = datetime.now(timezone.utc)
    time.sleep(0.05)
    second = register(settings, lake, booster_bytes)
    later = datetime.now(timezone.utc) + timedelta(days=1)

    # A day whose prediction time fell while v1 served gets v1, however late it is rerun.
    assert choose_model(registry, MODEL, between, now=later).version.version == first
    # A day still ahead (or tonight's) gets the current champion.
    assert choose_model(registry, MODEL, later + timedelta(days=5), now=later).version.version == second
    # Before any promotion: refuse and say how to score it anyway.
    with pytest.raises(NoChampionError, match=f"model_version={second}"):
        choose_model(registry, MODEL, between - timedelta(days=30), now=later)


# --- bad inputs ---------------------------------------------------------------------------------


def test_model_expecting_features_the_service_lacks_is_refused_before_scoring(settings, lake, ready):
    run(settings, lake)
    before = partition_bytes(lake)
    with pytest.raises(FeatureMismatchError, match=r"\['origin_code'\].*test_schedule_v1"):
        run(settings, lake, features=ScheduleFeatures(columns=COLUMNS[:3]))
    assert partition_bytes(lake) == before
    assert not list((settings.data_dir / "tmp").glob("scoring-*"))


def test_missing_upstream_partition_is_named(settings, lake, booster_bytes):
    register(settings, lake, booster_bytes)
    with pytest.raises(UpstreamNotReadyError, match="features/test_view/ds=2026-03-01"):
        run(settings, lake)
    assert read_manifest(lake, prediction_prefix(DAY)) is None


@pytest.mark.parametrize("damage", ["corrupt", "partial"])
def test_corrupt_or_partial_upstream_partition_is_refused_and_named(settings, lake, ready, damage):
    prefix = upstream_prefix(DAY)
    [entry] = read_manifest(lake, prefix)["files"]
    path = lake.local_path(f"{prefix}/{entry['name']}")
    if damage == "corrupt":
        path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    else:
        path.unlink()
    with pytest.raises(UpstreamCorruptError, match=f"{prefix}.*(corrupt|partial)"):
        run(settings, lake)
    assert read_manifest(lake, prediction_prefix(DAY)) is None


class FailingManifestLake(LocalLake):
    """A lake that fails when the manifest is written (a crash between data and manifest)."""

    def write_bytes(self, key, data):
        if key.endswith(MANIFEST_NAME) and key.startswith("predictions/"):
            raise OSError("disk full")
        super().write_bytes(key, data)


def test_failure_before_the_manifest_leaves_the_previous_partition_readable(settings, lake, ready, booster_bytes):
    run(settings, lake)
    before = read_predictions(lake, DAY)
    manifest = read_manifest(lake, prediction_prefix(DAY))
    # A new champion would produce new files; the write fails at the manifest.
    register(settings, lake, booster_bytes)
    with pytest.raises(OSError, match="disk full"):
        run(settings, lake=FailingManifestLake(lake.root))
    assert read_manifest(lake, prediction_prefix(DAY)) == manifest
    pd.testing.assert_frame_equal(read_predictions(lake, DAY), before)


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_score import ScheduleFeatures, current_champion
    from airloop.core.config import Settings
    from airloop.core.usecase import load_use_case
    from airloop.scoring import score_day

    settings = Settings.from_env()
    day = load_use_case(settings.use_case).day("{day}")
    score_day(day, settings=settings, features=ScheduleFeatures(delay_s=0.5), chunk_rows=50,
              model_version=current_champion(settings))
    """
)


def test_run_killed_mid_write_leaves_the_previous_partition_intact(settings, lake, ready, booster_bytes):
    run(settings, lake)
    before = partition_bytes(lake)
    register(settings, lake, booster_bytes)  # the killed run would have written new bytes
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), day=DAY.key)
    env = {**os.environ, "AIRLOOP_DATA_DIR": str(settings.data_dir), "AIRLOOP_SOURCE_URL": settings.source_url}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        scratch = settings.data_dir / "tmp"
        # Kill once a few row groups are on disk (chunks of 50 rows, 0.5 s each).
        while time.monotonic() < deadline:
            parts = list(scratch.glob("scoring-*/part.parquet"))
            if parts and parts[0].stat().st_size > 4096:
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        else:
            pytest.fail("the scoring subprocess never started writing")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert partition_bytes(lake) == before
    read_partition_files(lake, prediction_prefix(DAY))  # every file matches its sha256
    # The next run completes and replaces it cleanly.
    result = run(settings, lake)
    assert (read_predictions(lake, DAY)["model_version"] == result.model_version).all()
    assert len(partition_bytes(lake)) == 3


def test_trace_names_the_model_window_and_inputs(settings, lake, ready):
    run(settings, lake)
    part = read_predictions(lake, DAY)
    row = part.iloc[42]
    traced = trace_prediction(lake, DAY, carrier=row["carrier"], flight=int(row["flight"]), origin=row["origin"])
    [match] = [m for m in traced["matches"] if m["sched_dep_ts"] == row["sched_dep_ts"]]
    assert match["score"] == pytest.approx(row["score"])
    assert set(match["features"]) == set(COLUMNS)
    assert traced["model"]["version"] == ready
    assert traced["model"]["training_window"]["start"] == "2026-01-05"
    assert traced["inputs"]["partitions"][0]["partition"] == upstream_prefix(DAY)


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_shows_traces_and_lists_runs(settings, lake, ready, capsys):
    from airloop.cli import main

    result = run(settings, lake)
    part = read_predictions(lake, DAY)
    row = part.iloc[7]

    assert main(["predictions", "show", DAY.key, "--limit", "3", "--sort"]) == 0
    shown = capsys.readouterr().out
    assert f"rows                  {result.rows}" in shown
    assert f"{MODEL} v{ready}" in shown and "2026-01-05 .. 2026-01-18" in shown
    assert "features/test_view/ds=2026-03-01" in shown
    assert f"{part['score'].max():.6f}"[:6] in shown  # the top score is listed first

    argv = ["predictions", "trace", DAY.key, "--carrier", row["carrier"], "--flight", str(row["flight"])]
    assert main(argv) == 0
    traced = json.loads(capsys.readouterr().out)
    assert any(m["origin"] == row["origin"] and m["dest"] == row["dest"] for m in traced["matches"])
    assert traced["model"]["version"] == ready

    assert main(["predictions", "trace", DAY.key, "--carrier", "ZZ", "--flight", "1"]) == 1
    capsys.readouterr()
    assert main(["scoring-runs", "--ds", DAY.key]) == 0
    assert result.run_id in capsys.readouterr().out

    assert main(["predictions", "show", "2026-05-05"]) == 1
    assert "never published" in capsys.readouterr().err


def test_publish_removes_the_previous_files_but_never_unknown_ones(settings, lake, ready, booster_bytes):
    run(settings, lake)
    old = {f["name"] for f in read_manifest(lake, prediction_prefix(DAY))["files"]}
    # A concurrent run of the same day has written its data file, not yet its manifest.
    pending = f"{prediction_prefix(DAY)}/part-0123456789ab.parquet"
    lake.write_bytes(pending, b"another run's file")
    register(settings, lake, booster_bytes)
    run(settings, lake)  # a new champion: new files replace the old ones
    new = {f["name"] for f in read_manifest(lake, prediction_prefix(DAY))["files"]}
    names = {k.rsplit("/", 1)[1] for k in lake.list_keys(prediction_prefix(DAY) + "/")}
    assert new != old and new <= names and not (old - new) & names
    assert pending.rsplit("/", 1)[1] in names


def test_a_failing_background_write_fails_the_stream_and_does_not_hang(tmp_path):
    """The Parquet writer thread's error reaches the caller (here: the output folder is missing)."""
    import pyarrow as pa

    sink = _ParquetSink({"part": tmp_path / "missing" / "part.parquet"})
    table = pa.table({"score": pa.array([0.5], pa.float32())})
    with pytest.raises(Exception, match="missing"):
        for _ in range(5):  # the error surfaces at a later put or at close, never a hang
            sink.put({"part": table})
        sink.close()
    sink.abort()
    assert not (tmp_path / "missing").exists()


def test_background_writes_keep_chunk_order(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = _ParquetSink({"part": tmp_path / "part.parquet"})
    for start in range(0, 50, 10):
        sink.put({"part": pa.table({"row": pa.array(range(start, start + 10), pa.int64())})})
    sink.close()
    written = pq.ParquetFile(tmp_path / "part.parquet")
    assert written.metadata.num_row_groups == 5
    assert written.read().column("row").to_pylist() == list(range(50))


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value is a Linux feature")
def test_the_background_writer_runs_at_a_lower_priority_than_scoring(tmp_path):
    import pyarrow as pa

    caller = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    expected = min(19, caller + SINK_NICE)
    sink = _ParquetSink({"part": tmp_path / "part.parquet"})
    try:
        sink.put({"part": pa.table({"row": pa.array([1], pa.int64())})})
        deadline = time.monotonic() + 10
        while os.getpriority(os.PRIO_PROCESS, sink._thread.native_id) != expected and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.getpriority(os.PRIO_PROCESS, sink._thread.native_id) == expected
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == caller  # scoring keeps its own
    finally:
        sink.close()


@pytest.mark.parametrize("dtype", ["string", object])
def test_key_columns_reach_arrow_with_their_values_and_nulls(dtype):
    """Keys are converted once per distinct string: the same table as Arrow's own conversion."""
    import pyarrow as pa

    strings = pd.Series(["JFK", None, "LGA", "JFK", "EWR", None, "é-ü"] * 3, dtype=dtype)
    frame = pd.DataFrame({
        "origin": strings,
        "flight": pd.array([1, 2, None, 4, 5, 6, 7] * 3, dtype="Int64"),
        "sched_dep_ts": pd.date_range("2026-01-01", periods=21, freq="h", tz="UTC"),
    })  # fmt: skip
    got = _arrow_keys(frame, ["origin", "flight", "sched_dep_ts"])
    expected = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    assert got.schema.field("origin").type == pa.string()
    assert got.equals(expected.cast(got.schema)) and got.column("origin").null_count == 6
    assert _arrow_keys(frame.iloc[:0], ["origin"]).num_rows == 0


def test_logged_inputs_are_stored_byte_stream_split_and_read_back_as_float64(settings, lake, ready):
    import io

    import pyarrow.parquet as pq

    run(settings, lake)
    _, files = read_partition_files(lake, prediction_prefix(DAY))
    metadata = pq.ParquetFile(io.BytesIO(files["features.parquet"])).metadata.row_group(0)
    encodings = {metadata.column(i).path_in_schema: metadata.column(i).encodings for i in range(metadata.num_columns)}
    assert all("BYTE_STREAM_SPLIT" in encodings[c] for c in COLUMNS)
    used = read_predictions(lake, DAY, logical_name="features.parquet")
    assert all(used[c].dtype == "float64" for c in COLUMNS)

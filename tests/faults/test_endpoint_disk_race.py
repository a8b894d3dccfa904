"""The storage or the database misbehaving under a stage: an S3 endpoint that stops answering in
the middle of an upload, a disk that fills up, two promotions racing on one registry.

Each ends with every partition whole (the last good one or the new one), one champion, and a
rerun that converges to the bytes of a clean run.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
import uuid

import pytest

from faultkit import NEWEST, manifest_rows, publish_last_good, published_view, registry_state, snapshot
from testkit import ROOT, port_open

pytestmark = pytest.mark.slow


# --- the S3 endpoint failing mid-upload -------------------------------------------------------


def s3_copy(local, endpoint: str):
    """An S3 lake on the real (moto) server holding a copy of ``local``, with a client that does
    not retry (each fault is seen once) and counts its PutObject calls."""
    import boto3
    from botocore.config import Config

    from airloop.core.storage import S3Lake

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          config=Config(retries={"max_attempts": 1, "mode": "standard"}))  # fmt: skip
    lake = S3Lake(f"s3://airloop-faults-{uuid.uuid4().hex[:8]}/lake", endpoint_url=endpoint, client=client)
    lake.ensure_bucket()
    for key in local.list_keys(""):
        if not key.startswith(("reports/", "_ingest/")):
            lake.write_bytes(key, local.read_bytes(key))
    return lake


class EndpointDown:
    """From the ``fail_at``-th PutObject on, the endpoint is unreachable (0: count only)."""

    def __init__(self, lake, fail_at: int = 0):
        self.puts, self.fail_at, self.endpoint = [], fail_at, lake.endpoint_url
        lake.client.meta.events.register("before-send.s3.PutObject", self)

    def __call__(self, request, **_):
        from botocore.exceptions import EndpointConnectionError

        self.puts.append(request.url)
        if self.fail_at and len(self.puts) >= self.fail_at:
            raise EndpointConnectionError(endpoint_url=self.endpoint)

    def off(self, lake):
        lake.client.meta.events.unregister("before-send.s3.PutObject", self)


def endpoint_failures(lake, prefixes, stage, points):
    """Fail the endpoint at each of ``points`` (indexes of the stage's PutObject calls)."""
    from airloop.core.storage import StorageError, read_partition_files

    rows = {p: manifest_rows(lake, p) for p in prefixes}
    counter = EndpointDown(lake)
    stage()  # the clean run on the copied inputs, and the puts to fail at
    counter.off(lake)
    reference = {p: snapshot(lake, p) for p in prefixes}
    assert counter.puts and {p: manifest_rows(lake, p) for p in prefixes} == rows
    outcomes = []
    for point in points:
        at = point % len(counter.puts) + 1
        for p in prefixes:
            publish_last_good(lake, p)
        last_good = {p: published_view(lake, p) for p in prefixes}
        fault = EndpointDown(lake, at)
        with pytest.raises(StorageError, match=r"could not write s3://.*Could not connect to the endpoint URL"):
            stage()
        fault.off(lake)
        new = 0
        for prefix in prefixes:
            read_partition_files(lake, prefix)
            now = published_view(lake, prefix)  # a data file put before the failure stays unlisted
            assert now in (last_good[prefix], reference[prefix]), prefix
            new += now == reference[prefix]
        stage()
        assert {p: snapshot(lake, p) for p in prefixes} == reference
        assert {p: manifest_rows(lake, p) for p in prefixes} == rows
        outcomes.append((at, new))
    return len(counter.puts), outcomes


def test_s3_endpoint_failing_mid_upload_of_features_and_predictions(world, s3_env):
    from airloop.core.storage import open_lake
    from airloop.core.usecase import load_use_case
    from airloop.features import compute_features
    from airloop.scoring import prediction_prefix, score_day

    settings, facts = world
    local = open_lake(settings)
    lake = s3_copy(local, s3_env)
    s3_settings = settings.with_overrides(lake_url=lake.url, s3_endpoint_url=s3_env)
    import sqlite3

    with sqlite3.connect(settings.data_dir / "registry.db") as db:  # the artifacts now live in the bucket
        for column in ("artifact_uri", "reference_uri"):
            db.execute(f"UPDATE model_versions SET {column} = replace({column}, ?, ?)", (local.url, lake.url))
    db.close()
    day = load_use_case(settings.use_case).day(NEWEST)
    features = sorted(k.rsplit("/", 1)[0] for k in lake.list_keys("features/") if f"/ds={NEWEST}/_manifest" in k)
    puts, outcomes = endpoint_failures(lake, features, lambda: compute_features(day, settings=s3_settings, lake=lake), [0, 1, -1])
    assert puts == 2 * len(features) and [n for _, n in outcomes] == [0, 0, len(features) - 1]
    puts, outcomes = endpoint_failures(
        lake, [prediction_prefix(day)],
        lambda: score_day(day, settings=s3_settings, lake=lake, model_version=facts["champion"]), [0, -1],
    )  # fmt: skip
    assert [n for _, n in outcomes] == [0, 0]


# --- a disk-full write --------------------------------------------------------------------------


def disk_full_in(monkeypatch, folder: str):
    """``os.fsync`` of a file under ``folder`` fails with ENOSPC: where a full disk shows up."""
    real = os.fsync

    def fsync(fd):
        if folder in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("stage", ["features", "scoring"])
def test_disk_full_keeps_the_last_good_partition(world, monkeypatch, stage):
    from airloop.core.storage import StorageError, open_lake, read_partition_files
    from airloop.core.usecase import load_use_case
    from airloop.features import compute_features
    from airloop.scoring import prediction_prefix, score_day

    settings, facts = world
    lake = open_lake(settings)
    day = load_use_case(settings.use_case).day(NEWEST)
    if stage == "features":
        prefixes = sorted(k.rsplit("/", 1)[0] for k in lake.list_keys("features/") if f"/ds={NEWEST}/_manifest" in k)
        run = lambda: compute_features(day, settings=settings, lake=lake)  # noqa: E731
    else:
        prefixes = [prediction_prefix(day)]
        run = lambda: score_day(day, settings=settings, lake=lake, model_version=facts["champion"])  # noqa: E731
    run()  # the clean run
    reference = {p: snapshot(lake, p) for p in prefixes}
    last_good = {p: publish_last_good(lake, p) for p in prefixes}
    with monkeypatch.context() as m:
        disk_full_in(m, f"{settings.data_dir / 'lake'}/{prefixes[0].split('/')[0]}/")
        with pytest.raises((OSError, StorageError)) as failure:
            run()
    message = str(failure.value)
    assert "No space left on device" in message and prefixes[0].split("/")[0] in message, message
    for prefix in prefixes:
        read_partition_files(lake, prefix)
        assert snapshot(lake, prefix) == last_good[prefix]
    assert not [p for p in (settings.data_dir / "lake").rglob(".tmp-*")]  # no half file left on the full disk
    run()
    assert {p: snapshot(lake, p) for p in prefixes} == reference


# --- two promotions racing ----------------------------------------------------------------------

RACER = """
import pathlib, sys, time
from airloop.registry import ModelRegistry, PromotionConflict
registry = ModelRegistry({url!r}, create=False)
registry.champion_version({model!r})  # connected, tables read
pathlib.Path({ready!r}).touch()
while not pathlib.Path({go!r}).exists():
    time.sleep(0.002)
kwargs = {{"expected_champion": {champion}}} if {checked} else {{}}
try:
    registry.promote({model!r}, {version}, reason="race", actor="racer-{version}", run_id="race/{version}", **kwargs)
    print("WON")
except PromotionConflict as exc:
    print("LOST", exc)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def race_registry(request, world):
    """(registry URL, model, champion, [two candidates]): the seeded SQLite registry, or a new
    PostgreSQL database with the same versions when one is reachable at 127.0.0.1:5432."""
    settings, facts = world
    model, champion, candidates = facts["model"], facts["champion"], facts["candidates"]
    if request.param == "sqlite":
        yield settings.registry_url, model, champion, candidates
        return
    if not port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432: the race ran on SQLite only")
    from sqlalchemy import create_engine, text

    from airloop.registry import ModelRegistry

    admin = create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    name = f"airloop_faults_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    source, target = ModelRegistry(settings.registry_url), ModelRegistry(url)
    for mv in source.versions(model):  # the same versions, the first promoted
        fields = {k: getattr(mv, k) for k in ("feature_service", "feature_columns", "window_start", "window_end",
                                              "fingerprint", "params", "metrics", "code_version", "device")}  # fmt: skip
        copy = target.reserve_version(model, **fields, run_id=mv.run_id)
        target.finalize_version(model, copy.version, artifact_uri=mv.artifact_uri, sha256=mv.sha256, reference_uri=mv.reference_uri)
    target.promote(model, champion, reason="seed", actor="fault test")
    source.engine.dispose(), target.engine.dispose()
    try:
        yield url, model, champion, candidates
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.parametrize("checked", [True, False], ids=["against-the-champion", "unchecked"])
def test_two_promotions_racing_leave_one_champion(race_registry, tmp_path, checked):
    url, model, champion, (a, b) = race_registry
    before = registry_state(url, model)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), os.environ.get("PYTHONPATH", "")])}
    racers = []
    for version in (a, b):
        code = RACER.format(url=url, model=model, champion=champion, version=version, checked=checked,
                            ready=str(tmp_path / f"ready-{version}"), go=str(go))  # fmt: skip
        racers.append(subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{v}").exists() for v in (a, b)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in racers), [p.communicate() for p in racers]
        time.sleep(0.05)
    go.touch()  # both start promoting now
    results = [p.communicate(timeout=120) for p in racers]
    assert all(p.returncode == 0 for p in racers), results
    said = [out.split()[0] for out, _ in results]
    after = registry_state(url, model)
    new = after["history"][len(before["history"]):]
    assert after["history"][: len(before["history"])] == before["history"]
    assert len(after["champions"]) == 1 and after["champion"] == after["champions"][0]
    # The history is one chain: each promotion replaced the champion the previous one left.
    chain = [before["champion"]] + [e[2] for e in new]
    assert [e[1] for e in new] == chain[:-1] and chain[-1] == after["champion"]
    assert len(new) == said.count("WON")
    if checked:
        assert sorted(said) == ["LOST", "WON"], results
    for version in (a, b):
        won = said[(a, b).index(version)] == "WON"
        expected = "champion" if version == after["champion"] else ("retired" if won else "candidate")
        assert after["statuses"][version] == expected, (version, after, results)
    assert after["statuses"][champion] == "retired"

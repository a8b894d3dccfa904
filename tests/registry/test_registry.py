"""The model registry on real databases: SQLite always, PostgreSQL when one is reachable."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.exc import IntegrityError

from airloop.registry import (
    ArtifactIntegrityError,
    ModelRegistry,
    PromotionConflict,
    RegistryError,
    VersionNotFound,
)
from airloop.registry.schema import AliasRow
from airloop.core.storage import LocalLake, sha256_bytes

MODEL = "test_model"


def port_open(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def postgres_admin_url():
    if not port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    return "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request, tmp_path):
    if request.param == "sqlite":
        yield ModelRegistry(f"sqlite:///{tmp_path / 'registry.db'}")
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    name = f"airloop_registry_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    reg = ModelRegistry(admin_url.rsplit("/", 1)[0] + f"/{name}")
    try:
        yield reg
    finally:
        reg.engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def add_version(registry: ModelRegistry, lake=None, *, payload: bytes | None = None, model=MODEL, run_id="run-1"):
    """Register a version the way training does: reserve, write the artifact, finalize."""
    mv = registry.reserve_version(
        model,
        feature_service="svc_v1",
        feature_columns=["a", "b"],
        window_start=date(2026, 1, 1),
        window_end=date(2026, 3, 31),
        fingerprint="f" * 64,
        params={"max_depth": 4},
        metrics={"roc_auc": 0.7},
        code_version="abc123",
        device="cpu",
        device_reason="no GPU visible",
        run_id=run_id,
    )
    payload = payload or f"model-{mv.version}".encode()
    key = f"models/{model}/v{mv.version}/model.ubj"
    uri = f"file:///nowhere/{key}"
    if lake is not None:
        lake.write_bytes(key, payload)
        uri = lake.uri(key)
    return registry.finalize_version(model, mv.version, artifact_uri=uri, sha256=sha256_bytes(payload), reference_uri=None)


def test_versions_are_numbered_and_recorded(registry):
    first, second = add_version(registry), add_version(registry)
    assert (first.version, second.version) == (1, 2)
    got = registry.get(MODEL, 2)
    assert got.status == "candidate"
    assert got.window_start == date(2026, 1, 1) and got.window_end == date(2026, 3, 31)
    assert got.feature_columns == ["a", "b"] and got.device == "cpu" and got.code_version == "abc123"
    assert got.created_at.tzinfo is not None
    assert [v.version for v in registry.versions(MODEL)] == [1, 2]
    assert registry.champion(MODEL) is None


def test_unknown_version_names_the_versions_there_are(registry):
    add_version(registry)
    with pytest.raises(VersionNotFound, match=r"test_model has no version 7; its versions are \[1\]"):
        registry.get(MODEL, 7)


def test_promotion_sets_champion_retires_the_old_and_records_history(registry):
    v1, v2 = add_version(registry), add_version(registry)
    registry.promote(MODEL, v1.version, reason="beats baseline", actor="run-a", expected_champion=None)
    entry = registry.promote(MODEL, v2.version, reason="better auc", actor="run-b", expected_champion=1, details={"x": 1})
    assert registry.champion(MODEL).version == 2
    assert registry.get(MODEL, 1).status == "retired"
    assert registry.get(MODEL, 2).status == "champion" and registry.get(MODEL, 2).gate == {"x": 1}
    assert (entry.action, entry.from_version, entry.to_version, entry.actor) == ("promote", 1, 2, "run-b")
    assert [(h.action, h.to_version, h.reason) for h in registry.history(MODEL)] == [
        ("promote", 1, "beats baseline"),
        ("promote", 2, "better auc"),
    ]


def test_stale_decision_is_refused(registry):
    v1, v2, v3 = add_version(registry), add_version(registry), add_version(registry)
    registry.promote(MODEL, v1.version, reason="r", actor="a", expected_champion=None)
    registry.promote(MODEL, v2.version, reason="r", actor="a", expected_champion=1)
    with pytest.raises(PromotionConflict, match="the champion is v2, not v1"):
        registry.promote(MODEL, v3.version, reason="r", actor="a", expected_champion=1)
    assert registry.champion(MODEL).version == 2
    assert registry.get(MODEL, 3).status == "candidate"


def test_the_database_allows_one_champion_per_model(registry):
    v1, v2 = add_version(registry), add_version(registry)
    registry.promote(MODEL, v1.version, reason="r", actor="a")
    now = datetime.now(timezone.utc)
    with pytest.raises(IntegrityError):
        with registry.engine.begin() as conn:
            conn.execute(insert(AliasRow).values(model_name=MODEL, alias="champion", version=v2.version, updated_at=now))


@pytest.mark.parametrize("incumbent", [None, 1], ids=["first-champion", "replacing-v1"])
def test_two_racing_promotions_leave_exactly_one_champion(registry, incumbent):
    base = add_version(registry)
    if incumbent is not None:
        registry.promote(MODEL, base.version, reason="r", actor="a", expected_champion=None)
    racers = [add_version(registry, run_id=f"racer-{i}") for i in range(2)]
    barrier = threading.Barrier(2)
    outcomes: dict[int, str] = {}

    def attempt(mv):
        barrier.wait()
        try:
            registry.promote(MODEL, mv.version, reason="race", actor=mv.run_id, expected_champion=incumbent)
            outcomes[mv.version] = "won"
        except PromotionConflict as exc:
            outcomes[mv.version] = f"conflict: {exc}"

    threads = [threading.Thread(target=attempt, args=(mv,)) for mv in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [v for v, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == 2 and len(winners) == 1, outcomes
    with registry.engine.connect() as conn:
        rows = conn.execute(select(AliasRow.version).where(AliasRow.model_name == MODEL)).all()
    assert [r[0] for r in rows] == winners
    loser = next(v for v in outcomes if v not in winners)
    assert registry.get(MODEL, loser).status == "candidate"
    assert registry.get(MODEL, winners[0]).status == "champion"
    assert sum(1 for v in registry.versions(MODEL) if v.status == "champion") == 1


def test_champion_at_follows_the_history(registry):
    v1, v2 = add_version(registry), add_version(registry)
    before = datetime.now(timezone.utc)
    time.sleep(0.02)
    registry.promote(MODEL, v1.version, reason="r", actor="a")
    time.sleep(0.02)
    between = datetime.now(timezone.utc)
    time.sleep(0.02)
    registry.promote(MODEL, v2.version, reason="r", actor="a")
    time.sleep(0.02)
    registry.rollback(MODEL, "previous", reason="v2 misbehaves", actor="oncall")
    after = datetime.now(timezone.utc)
    assert registry.champion_at(MODEL, before) is None
    assert registry.champion_at(MODEL, between).version == 1
    assert registry.champion_at(MODEL, after).version == 1
    promoted_v2_at = registry.history(MODEL)[1].at
    assert registry.champion_at(MODEL, promoted_v2_at).version == 2
    with pytest.raises(ValueError, match="aware"):
        registry.champion_at(MODEL, datetime(2026, 1, 1))


def test_rollback_walks_back_through_previous_champions(registry):
    for _ in range(3):
        mv = add_version(registry)
        registry.promote(MODEL, mv.version, reason="r", actor="a")
    first = registry.rollback(MODEL, "previous", reason="bad v3", actor="oncall", run_id="manual-1")
    assert (first.action, first.from_version, first.to_version) == ("rollback", 3, 2)
    assert registry.champion(MODEL).version == 2 and registry.get(MODEL, 3).status == "retired"
    registry.rollback(MODEL, "previous", reason="bad v2 too", actor="oncall")
    assert registry.champion(MODEL).version == 1
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback(MODEL, "previous", reason="again", actor="oncall")
    registry.rollback(MODEL, 3, reason="v3 was fine after all", actor="oncall")
    assert registry.champion(MODEL).version == 3
    assert [h.action for h in registry.history(MODEL)] == ["promote"] * 3 + ["rollback"] * 3


def test_rollback_refuses_bad_targets_and_leaves_the_champion(registry):
    with pytest.raises(RegistryError, match="has no champion"):
        registry.rollback(MODEL, "previous", reason="r", actor="a")
    v1, v2 = add_version(registry), add_version(registry)
    registry.promote(MODEL, v1.version, reason="r", actor="a")
    registry.refuse(MODEL, v2.version, reason="gate kept v1", actor="run-x")
    with pytest.raises(VersionNotFound, match="has no version 42; its versions are \\[1, 2\\]"):
        registry.rollback(MODEL, 42, reason="r", actor="a")
    with pytest.raises(RegistryError, match="already the champion"):
        registry.rollback(MODEL, 1, reason="r", actor="a")
    with pytest.raises(RegistryError, match="v2 is rejected"):
        registry.rollback(MODEL, 2, reason="r", actor="a")
    with pytest.raises(RegistryError, match="version number or 'previous'"):
        registry.rollback(MODEL, "latest", reason="r", actor="a")
    assert registry.champion(MODEL).version == 1
    assert [h.action for h in registry.history(MODEL)] == ["promote", "refuse"]


def test_refusal_keeps_the_champion_and_is_recorded(registry):
    v1, v2 = add_version(registry), add_version(registry)
    registry.promote(MODEL, v1.version, reason="r", actor="a")
    entry = registry.refuse(MODEL, v2.version, reason="roc_auc -0.1", actor="run-2", details={"promote": False})
    assert (entry.action, entry.candidate_version, entry.to_version) == ("refuse", 2, 1)
    assert registry.get(MODEL, 2).status == "rejected" and registry.get(MODEL, 2).gate == {"promote": False}
    assert registry.champion(MODEL).version == 1
    with pytest.raises(RegistryError, match="only a candidate"):
        registry.promote(MODEL, 2, reason="r", actor="a")


def test_artifact_bytes_are_verified_on_every_load(registry, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    v1, v2 = add_version(registry, lake), add_version(registry, lake)
    assert registry.read_artifact(v1, lake) == b"model-1"
    registry.promote(MODEL, v1.version, reason="r", actor="a")
    registry.promote(MODEL, v2.version, reason="r", actor="a")
    lake.write_bytes(f"models/{MODEL}/v1/model.ubj", b"tampered")
    with pytest.raises(ArtifactIntegrityError, match="refusing to load test_model v1"):
        registry.read_artifact(registry.get(MODEL, 1), lake)
    # A rollback checks the target's bytes first: serving never switches to a broken model.
    with pytest.raises(ArtifactIntegrityError, match="test_model v1"):
        registry.rollback(MODEL, "previous", reason="r", actor="a", lake=lake)
    assert registry.champion(MODEL).version == 2


def test_pending_versions_cannot_be_promoted_and_failures_are_kept(registry):
    mv = registry.reserve_version(
        MODEL, feature_service="s", feature_columns=["a"], window_start=date(2026, 1, 1), window_end=date(2026, 1, 2),
        fingerprint="f", params={}, metrics={}, code_version="c", device="cpu",
    )  # fmt: skip
    with pytest.raises(RegistryError, match="pending"):
        registry.promote(MODEL, mv.version, reason="r", actor="a")
    registry.fail_version(MODEL, mv.version, "disk full")
    failed = registry.get(MODEL, mv.version)
    assert failed.status == "failed" and failed.status_reason == "disk full"
    assert registry.champion(MODEL) is None


def test_cli_lists_shows_and_rolls_back(settings, capsys):
    from airloop.cli import main
    from airloop.core.storage import open_lake

    registry, lake = ModelRegistry(settings.registry_url), open_lake(settings)
    for _ in range(2):
        mv = add_version(registry, lake, model="flight_delay_xgb")
        registry.promote("flight_delay_xgb", mv.version, reason="better", actor="run")
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "   1 retired" in listing and "   2 champion" in listing
    assert main(["rollback", "7", "--reason", "typo"]) == 1
    assert "has no version 7; its versions are [1, 2]" in capsys.readouterr().err
    assert main(["rollback", "previous", "--reason", "v2 misbehaves", "--by", "alice"]) == 0
    assert "champion v2 -> v1 (v2 misbehaves)" in capsys.readouterr().out
    assert main(["model-history"]) == 0
    history = capsys.readouterr().out.splitlines()
    assert history[-1].split("Z ", 1)[1].split() == ["rollback", "v2", "->", "v1", "by", "alice:", "v2", "misbehaves"]
    assert main(["champion"]) == 0 and '"version": 1' in capsys.readouterr().out
    assert main(["champion", "--at", "2020-01-01T00:00:00"]) == 1
    assert "has no champion at 2020-01-01" in capsys.readouterr().out

"""The demo (scripts/demo.sh) is closed by default: secrets and the password file 0600, a Fernet key.

The script runs for real in a copy of the checkout with ``AIRLOOP_DEMO_PREPARE_ONLY=1``, which
stops it right before ``airflow standalone``.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import ROOT


def run_demo(home: Path, umask: int = 0o022, **env: str) -> subprocess.CompletedProcess:
    (home / "scripts").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "scripts" / "demo.sh", home / "scripts" / "demo.sh")
    variables = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRLOOP_"))}
    variables.update(PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", AIRLOOP_DEMO_PREPARE_ONLY="1", **env)
    return subprocess.run(["bash", "-c", f"umask {umask:03o}; exec bash scripts/demo.sh"], cwd=home, env=variables,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_a_fresh_demo_keeps_its_secrets_to_its_owner_and_sets_a_fernet_key(tmp_path, umask):
    from cryptography.fernet import Fernet

    out = run_demo(tmp_path, umask)
    assert out.returncode == 0, out.stderr
    secrets_file, passwords = tmp_path / "data" / "airflow-secrets.env", tmp_path / "simple_auth_manager_passwords.json.generated"
    assert mode(secrets_file) == 0o600 and mode(passwords) == 0o600
    assert "Fernet key from data/airflow-secrets.env" in out.stdout
    key = values(secrets_file)["AIRFLOW__CORE__FERNET_KEY"]
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"conn")) == b"conn"
    assert {"AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"} <= set(values(secrets_file))
    assert key not in out.stdout + out.stderr


def test_an_older_checkout_is_closed_and_keeps_its_secrets(tmp_path):
    (tmp_path / "data").mkdir()
    secrets_file, passwords = tmp_path / "data" / "airflow-secrets.env", tmp_path / "simple_auth_manager_passwords.json.generated"
    secrets_file.write_text("AIRFLOW__API_AUTH__JWT_SECRET=old-jwt\nAIRFLOW__API__SECRET_KEY=old-api\n")
    passwords.write_text('{"admin": "pw"}\n')
    secrets_file.chmod(0o644)
    passwords.chmod(0o644)
    assert run_demo(tmp_path).returncode == 0
    assert mode(secrets_file) == 0o600 and mode(passwords) == 0o600
    assert passwords.read_text() == '{"admin": "pw"}\n'
    kept = values(secrets_file)
    assert kept["AIRFLOW__API_AUTH__JWT_SECRET"] == "old-jwt" and kept["AIRFLOW__API__SECRET_KEY"] == "old-api"
    first_key = kept["AIRFLOW__CORE__FERNET_KEY"]
    assert run_demo(tmp_path).returncode == 0
    assert values(secrets_file)["AIRFLOW__CORE__FERNET_KEY"] == first_key  # made once, then reused


def test_a_fernet_key_from_the_environment_wins(tmp_path):
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    out = run_demo(tmp_path, AIRFLOW__CORE__FERNET_KEY=key)
    assert out.returncode == 0 and "Fernet key from the environment" in out.stdout
    assert "AIRFLOW__CORE__FERNET_KEY" not in values(tmp_path / "data" / "airflow-secrets.env")


def run_demo_with_fakes(home: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """demo.sh all the way (no PREPARE_ONLY), with ``airloop`` and ``airflow`` replaced at the edge
    by scripts that record their arguments (the seed and Airflow themselves are tested elsewhere)."""
    (home / "scripts").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "scripts" / "demo.sh", home / "scripts" / "demo.sh")
    fakes, calls = home / "fakes", home / "calls.txt"
    fakes.mkdir(exist_ok=True)
    calls.unlink(missing_ok=True)
    (fakes / "airloop").write_text(
        f'#!/bin/sh\necho "airloop $*" >> {calls}\n'
        'if [ "$1" = replay-offset ]; then echo AIRLOOP_REPLAY_OFFSET_DAYS=5110 > "$3"; exit 0; fi\n'
        'exit ${FAKE_SEED_RC:-0}\n'
    )
    (fakes / "airflow").write_text(f'#!/bin/sh\necho "airflow $* offset=$AIRLOOP_REPLAY_OFFSET_DAYS" >> {calls}\n')
    for fake in fakes.iterdir():
        fake.chmod(0o755)
    variables = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRLOOP_"))}
    variables.update(PATH=f"{fakes}:{Path(sys.executable).parent}:{os.environ['PATH']}", **env)
    out = subprocess.run(["bash", "scripts/demo.sh"], cwd=home, env=variables, capture_output=True, text=True, timeout=120)
    return out, calls.read_text().splitlines() if calls.exists() else []


OFFSET = "airloop replay-offset --write data/replay.env"


def test_the_demo_seeds_the_history_before_airflow_starts(tmp_path):
    out, calls = run_demo_with_fakes(tmp_path)
    assert out.returncode == 0, out.stderr
    # The replayed calendar first (kept in data/replay.env, exported to everything after), then
    # the seed, then the UI.
    assert calls == [OFFSET, "airloop seed", "airflow standalone offset=5110"]
    assert "Seeding the history the DAGs need" in out.stdout and "Seeded in" in out.stdout
    out, calls = run_demo_with_fakes(tmp_path, AIRLOOP_DEMO_SEED="0")  # the same checkout again
    assert calls == ["airflow standalone offset=5110"]  # the offset was chosen once, then read back


def test_an_offset_in_the_environment_wins(tmp_path):
    out, calls = run_demo_with_fakes(tmp_path, AIRLOOP_REPLAY_OFFSET_DAYS="4746")
    assert out.returncode == 0 and calls == ["airloop seed", "airflow standalone offset=4746"]
    assert not (tmp_path / "data" / "replay.env").exists()


def test_a_seed_that_stops_does_not_stop_the_demo_and_it_can_be_skipped(tmp_path):
    out, calls = run_demo_with_fakes(tmp_path / "a", FAKE_SEED_RC="1")
    assert out.returncode == 0 and calls == [OFFSET, "airloop seed", "airflow standalone offset=5110"]
    assert "Seeding stopped" in out.stdout and "Airflow starts anyway" in out.stdout
    out, calls = run_demo_with_fakes(tmp_path / "b", AIRLOOP_DEMO_SEED="0")
    assert out.returncode == 0 and calls == [OFFSET, "airflow standalone offset=5110"]

"""docker/ checked without a Docker engine: the compose file parses and hangs together, the image
matches the pinned Airflow and Python, every file it names exists, and every ``AIRLOOP_*`` /
``AIRFLOW__*`` variable it sets (and the services profile sets) is one the code or Airflow reads.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from testkit import ROOT

DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
DOCKERFILE = DOCKER / "Dockerfile"
PROFILE = ROOT / "profiles" / "services.env"
# Where Airloop reads its variables (tests/e2e: the services probe DAG reads AIRLOOP_WORKER_QUEUE).
CODE_DIRS = ("include", "plugins", "dags", "feature_repo", "scripts", "tests/e2e")
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def requirement_pin(name: str) -> str:
    match = re.search(rf"^{re.escape(name)}==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)
    assert match, f"{name} is not pinned in requirements.txt"
    return match.group(1)


def dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)", DOCKERFILE.read_text(), re.M))


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


@lru_cache(maxsize=1)
def airflow_options() -> set[tuple[str, str]]:
    """Every (section, option) Airflow 3.3 and the installed providers document."""
    from airflow.configuration import conf
    from airflow.providers_manager import ProvidersManager

    ProvidersManager().initialize_providers_configuration()
    return {
        (section, option)
        for section, body in conf.configuration_description.items()
        for option in body.get("options", {})
    }


@lru_cache(maxsize=1)
def airloop_names_in_code() -> set[str]:
    names: set[str] = set()
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".sh", ".yaml", ".yml") and "__pycache__" not in path.parts:
                names |= set(re.findall(r"AIRLOOP_[A-Z0-9_]+", path.read_text(errors="replace")))
    return names


def unknown_names(names: set[str]) -> set[str]:
    unknown = set()
    code = airloop_names_in_code()
    for name in names:
        if name.startswith("AIRFLOW__"):
            section, _, option = name.removeprefix("AIRFLOW__").lower().partition("__")
            if (section, option) not in airflow_options():
                unknown.add(name)
        elif name.startswith("AIRLOOP_") and name not in code:
            unknown.add(name)
    return unknown


# --- the image ------------------------------------------------------------------------------


def test_image_uses_the_pinned_airflow_and_python():
    args = dockerfile_args()
    assert args["AIRFLOW_VERSION"] == requirement_pin("apache-airflow")
    makefile = (ROOT / "Makefile").read_text()
    assert "sys.version_info[:2] == (3, 11)" in makefile  # the Python the project pins
    assert args["PYTHON_VERSION"] == "3.11"
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}-python\$\{PYTHON_VERSION\}$", DOCKERFILE.read_text(), re.M)


def test_image_installs_requirements_with_constraints_and_records_code_version():
    text = DOCKERFILE.read_text()
    assert "pip install --no-cache-dir -r /opt/airloop/requirements.txt -c /opt/airloop/constraints.txt" in text
    assert "ARG AIRLOOP_CODE_VERSION" in text
    assert "AIRLOOP_CODE_VERSION=${AIRLOOP_CODE_VERSION}" in text


def test_every_file_the_dockerfile_copies_exists():
    sources = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY "):
            parts = [p for p in line.split()[1:] if not p.startswith("--")]
            sources.extend(parts[:-1])
    assert sources
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert missing == []


# --- the compose file -----------------------------------------------------------------------


def test_compose_has_every_service(compose):
    services = set(compose["services"])
    expected = {"postgres", "redis", "minio", "minio-init", "airflow-init", "airflow-worker-cpu", "airflow-worker-gpu"}
    assert expected | AIRFLOW_SERVICES <= services


def test_workers_serve_the_cpu_and_gpu_queues_and_the_gpu_one_reserves_a_gpu(compose):
    services = compose["services"]
    cpu, gpu = services["airflow-worker-cpu"]["command"], services["airflow-worker-gpu"]["command"]
    assert cpu[cpu.index("--queues") + 1] == "cpu"
    assert gpu[gpu.index("--queues") + 1] == "gpu"
    assert cpu[cpu.index("--celery-hostname") + 1] != gpu[gpu.index("--celery-hostname") + 1]
    (device,) = services["airflow-worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "deploy" not in services["airflow-worker-cpu"]


def test_init_migrates_and_runs_airloop_setup(compose):
    command = " ".join(compose["services"]["airflow-init"]["command"])
    assert "airflow db migrate" in command and "python -m airloop setup" in command


def test_airflow_runs_on_postgres_redis_and_minio_never_sqlite(compose):
    for name in AIRFLOW_SERVICES | {"airflow-init", "airflow-worker-cpu", "airflow-worker-gpu"}:
        env = environment(compose["services"][name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert "@postgres:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:"), name
        assert env["AIRLOOP_S3_ENDPOINT_URL"] == "http://minio:9000", name
        assert env["AIRLOOP_LAKE_URL"].startswith("s3://"), name
        assert not [k for k, v in env.items() if "sqlite" in v.lower()], name


def test_compose_sets_the_same_variables_as_the_services_profile(compose):
    """The compose file is the profile with container host names: no variable missing."""
    profile = {
        line.split("=", 1)[0].strip()
        for line in PROFILE.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    # Local-only knobs of services-up.sh (moto, pid/log folder, ports of one-machine workers).
    local_only = {"AIRLOOP_S3_LOCAL_SERVER", "AIRLOOP_SERVICES_DIR", "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
                  "AIRFLOW__API__PORT", "AIRFLOW__CORE__PARALLELISM", "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"}  # fmt: skip
    env = environment(compose["services"]["airflow-scheduler"])
    assert sorted(profile - local_only - set(env)) == []


def test_every_env_name_is_read_by_airloop_or_airflow(compose):
    names = set()
    for service in compose["services"].values():
        names |= set(environment(service))
    names |= {
        line.split("=", 1)[0].strip()
        for line in PROFILE.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    names |= set(re.findall(r"\b(?:AIRLOOP|AIRFLOW_)_?[A-Z0-9_]+(?==)", DOCKERFILE.read_text()))
    names = {n for n in names if n.startswith(("AIRLOOP_", "AIRFLOW__"))}
    assert len(names) > 30
    assert unknown_names(names) == set()


def test_the_name_check_can_fail():
    assert unknown_names({"AIRFLOW__CORE__NO_SUCH_OPTION", "AIRLOOP_NO_SUCH_SETTING", "AIRFLOW__CORE__EXECUTOR"}) == {
        "AIRFLOW__CORE__NO_SUCH_OPTION",
        "AIRLOOP_NO_SUCH_SETTING",
    }


def test_services_reference_defined_volumes_networks_and_services(compose):
    volumes, networks, services = set(compose["volumes"]), set(compose["networks"]), set(compose["services"])
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).resolve().exists(), (name, source)
            else:
                assert source in volumes, (name, source)
        for network in service.get("networks", []):
            assert network in networks, (name, network)
        depends = service.get("depends_on", {})
        assert set(depends) <= services, (name, depends)
        build = service.get("build")
        if build:
            context = (COMPOSE.parent / build["context"]).resolve()
            assert (context / build["dockerfile"]).resolve() == DOCKERFILE.resolve()

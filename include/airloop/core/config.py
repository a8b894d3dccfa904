"""Typed settings for Airloop, read once from the environment.

Every setting has a default that works on a fresh machine with nothing installed (the embedded
profile: SQLite files and a local lake under ``data/``). Environment variables override the
defaults; ``AIRLOOP_ENV_FILE`` (or ``profiles/<AIRLOOP_PROFILE>.env``) may hold them instead.
Secrets never live here: S3 credentials come from the standard AWS variables or an Airflow
connection, database passwords from the URL given in the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PROJECT_ROOT = Path(__file__).resolve().parents[3]


class SettingsError(ValueError):
    """A setting has a value Airloop cannot use; the message names the variable."""


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_float(name: str, default: float) -> float:
    raw = env_str(name, str(default))
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def env_int(name: str, default: int) -> int:
    raw = env_str(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (safe for logs and errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{userinfo}:***@{netloc[-1]}"))


def _load_env_file() -> None:
    """Load ``KEY=VALUE`` lines from the profile file into ``os.environ`` (existing vars win)."""
    path = os.environ.get("AIRLOOP_ENV_FILE")
    profile = os.environ.get("AIRLOOP_PROFILE", "embedded")
    if not path and profile != "embedded":
        path = str(PROJECT_ROOT / "profiles" / f"{profile}.env")
    if not path:
        return
    env_file = Path(path)
    if not env_file.is_file():
        raise SettingsError(f"AIRLOOP_PROFILE={profile!r} needs the file {env_file}, which does not exist")
    for line in env_file.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        os.environ.setdefault(key.strip(), value.strip())


@dataclass(frozen=True)
class Settings:
    """Where Airloop reads and writes, and the thresholds of its gates.

    :param data_dir: root of every local store of the embedded profile (``AIRLOOP_DATA_DIR``).
    :param lake_url: ``file:///abs/path`` or ``s3://bucket/prefix`` (``AIRLOOP_LAKE_URL``).
    :param s3_endpoint_url: endpoint of an S3-compatible server, empty for AWS
        (``AIRLOOP_S3_ENDPOINT_URL``).
    :param source_url: SQLAlchemy URL of the upstream source database (``AIRLOOP_SOURCE_URL``).
    :param registry_url: SQLAlchemy URL of the model registry (``AIRLOOP_REGISTRY_URL``).
    :param replay_offset_days: days added to the source's timestamps; a multiple of 7 keeps
        weekdays aligned (``AIRLOOP_REPLAY_OFFSET_DAYS``).
    :param max_quarantine_share: the ingestion gate fails above this share of bad rows
        (``AIRLOOP_MAX_QUARANTINE_SHARE``).
    :param quarantine_gate_min_rows: the gate tolerates this many quarantined rows whatever
        their share, so one bad reading among a small table's rows (72 weather rows a day; the
        real data has a 1048 mph wind) does not stop the night (``AIRLOOP_QUARANTINE_GATE_MIN_ROWS``).
    """

    profile: str = "embedded"
    data_dir: Path = PROJECT_ROOT / "data"
    lake_url: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    source_url: str = ""
    registry_url: str = ""
    feature_repo: Path = PROJECT_ROOT / "feature_repo"
    use_case: str = "airloop.usecases.flights:USE_CASE"
    replay_offset_days: int = 4746
    max_quarantine_share: float = 0.01
    quarantine_gate_min_rows: int = 2
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> "Settings":
        """Build settings from the environment, validating each value once."""
        _load_env_file()
        data_dir = Path(env_str("AIRLOOP_DATA_DIR", str(PROJECT_ROOT / "data"))).resolve()
        settings = cls(
            profile=env_str("AIRLOOP_PROFILE", "embedded"),
            data_dir=data_dir,
            lake_url=env_str("AIRLOOP_LAKE_URL", (data_dir / "lake").as_uri()),
            s3_endpoint_url=env_str("AIRLOOP_S3_ENDPOINT_URL", ""),
            s3_region=env_str("AIRLOOP_S3_REGION", "us-east-1"),
            source_url=env_str("AIRLOOP_SOURCE_URL", f"sqlite:///{data_dir / 'source.db'}"),
            registry_url=env_str("AIRLOOP_REGISTRY_URL", f"sqlite:///{data_dir / 'registry.db'}"),
            feature_repo=Path(env_str("AIRLOOP_FEATURE_REPO", str(PROJECT_ROOT / "feature_repo"))),
            use_case=env_str("AIRLOOP_USE_CASE", "airloop.usecases.flights:USE_CASE"),
            replay_offset_days=env_int("AIRLOOP_REPLAY_OFFSET_DAYS", 4746),
            max_quarantine_share=env_float("AIRLOOP_MAX_QUARANTINE_SHARE", 0.01),
            quarantine_gate_min_rows=env_int("AIRLOOP_QUARANTINE_GATE_MIN_ROWS", 2),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        scheme = urlsplit(self.lake_url).scheme
        if scheme not in ("file", "s3"):
            raise SettingsError(f"AIRLOOP_LAKE_URL must start with file:// or s3://, got {self.lake_url!r}")
        if not 0.0 <= self.max_quarantine_share <= 1.0:
            raise SettingsError(
                f"AIRLOOP_MAX_QUARANTINE_SHARE must be between 0 and 1, got {self.max_quarantine_share}"
            )
        if self.quarantine_gate_min_rows < 0:
            raise SettingsError(
                f"AIRLOOP_QUARANTINE_GATE_MIN_ROWS must be 0 or more, got {self.quarantine_gate_min_rows}"
            )

    def with_overrides(self, **changes) -> "Settings":
        """Return a copy with some fields changed (tests and the CLI use this)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise SettingsError(f"unknown settings: {sorted(unknown)}")
        updated = replace(self, **changes)
        updated.validate()
        return updated


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` after changing env)."""
    return Settings.from_env()

"""Typed settings for Airloop, read once from the environment.

Every setting has a default that works on a fresh machine with nothing installed (the embedded
profile: SQLite files and a local lake under ``data/``). Environment variables override the
defaults; ``AIRLOOP_ENV_FILE`` (or ``profiles/<AIRLOOP_PROFILE>.env``) may hold them instead.
Secrets never live here: S3 credentials come from the standard AWS variables or an Airflow
connection, database passwords from the URL given in the environment.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from airloop.core.database import DatabaseURLError, check_database_url
from airloop.core.redaction import redact_url  # callers import it from here too

PROJECT_ROOT = Path(__file__).resolve().parents[3]


class SettingsError(ValueError):
    """A setting has a value Airloop cannot use; the message names the variable."""


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    """A finite number from ``name`` (or ``default``), refused with a message outside ``[minimum, maximum]``."""
    raw = env_str(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise SettingsError(f"{name} must be a finite number, got {raw!r}")
    check_range(name, value, minimum, maximum)
    return value


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer from ``name`` (or ``default``), refused with a message outside ``[minimum, maximum]``."""
    raw = env_str(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    check_range(name, value, minimum, maximum)
    return value


def check_range(name: str, value: float, minimum: float | None = None, maximum: float | None = None) -> None:
    """Refuse ``value`` outside ``[minimum, maximum]`` with a message naming the setting ``name``."""
    if (minimum is not None and not value >= minimum) or (maximum is not None and not value <= maximum):
        if minimum is not None and maximum is not None:
            bound = f"between {minimum:g} and {maximum:g}"
        else:
            bound = f"{minimum:g} or more" if minimum is not None else f"{maximum:g} or less"
        raise SettingsError(f"{name} must be {bound}, got {value:g}")


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
    :param volume_band_low: / :param volume_band_high: a day's source rows must lie within
        ``[low, high]`` times the median of the same weekday over the trailing weeks already in the
        raw zone, or its contract fails (``AIRLOOP_VOLUME_BAND_LOW``, ``AIRLOOP_VOLUME_BAND_HIGH``;
        defaults calibrated on the real 2013 year by ``airloop calibrate-volume``).
    :param volume_history_weeks: how many trailing same weekdays the median looks at
        (``AIRLOOP_VOLUME_HISTORY_WEEKS``).
    :param volume_min_history: the volume check applies only with at least this many of them in
        the raw zone (``AIRLOOP_VOLUME_MIN_HISTORY``).
    :param ingest_late_after_h: hours after a day's end before a day the source does not have yet
        is late: the extract task then fails and alerts instead of waiting (``AIRLOOP_INGEST_LATE_AFTER_H``).
    :param ingest_poke_s: seconds between two checks for a day the source does not have yet; the
        task is rescheduled in between and holds no worker slot (``AIRLOOP_INGEST_POKE_S``).
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
    volume_band_low: float = 0.55
    volume_band_high: float = 1.35
    volume_history_weeks: int = 4
    volume_min_history: int = 3
    ingest_late_after_h: float = 6.0
    ingest_poke_s: int = 600
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
            volume_band_low=env_float("AIRLOOP_VOLUME_BAND_LOW", cls.volume_band_low),
            volume_band_high=env_float("AIRLOOP_VOLUME_BAND_HIGH", cls.volume_band_high),
            volume_history_weeks=env_int("AIRLOOP_VOLUME_HISTORY_WEEKS", cls.volume_history_weeks),
            volume_min_history=env_int("AIRLOOP_VOLUME_MIN_HISTORY", cls.volume_min_history),
            ingest_late_after_h=env_float("AIRLOOP_INGEST_LATE_AFTER_H", cls.ingest_late_after_h),
            ingest_poke_s=env_int("AIRLOOP_INGEST_POKE_S", cls.ingest_poke_s),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse values that cannot be right, each with a message naming its variable.

        Called once by :meth:`from_env` and :meth:`with_overrides`. URLs in messages are redacted.
        """
        self._validate_lake()
        if self.replay_offset_days % 7:
            below = self.replay_offset_days - self.replay_offset_days % 7
            raise SettingsError(
                f"AIRLOOP_REPLAY_OFFSET_DAYS must be a multiple of 7 so replayed days keep the source's "
                f"weekdays, got {self.replay_offset_days} (nearest: {below} or {below + 7})"
            )
        check_range("AIRLOOP_MAX_QUARANTINE_SHARE", self.max_quarantine_share, 0.0, 1.0)
        check_range("AIRLOOP_QUARANTINE_GATE_MIN_ROWS", self.quarantine_gate_min_rows, 0)
        # A day exactly at its median must pass: the band holds 1.
        check_range("AIRLOOP_VOLUME_BAND_LOW", self.volume_band_low, 0.0, 1.0)
        check_range("AIRLOOP_VOLUME_BAND_HIGH", self.volume_band_high, 1.0)
        check_range("AIRLOOP_VOLUME_HISTORY_WEEKS", self.volume_history_weeks, 1, 52)
        check_range("AIRLOOP_VOLUME_MIN_HISTORY", self.volume_min_history, 1, self.volume_history_weeks)
        check_range("AIRLOOP_INGEST_LATE_AFTER_H", self.ingest_late_after_h, 0.0)
        check_range("AIRLOOP_INGEST_POKE_S", self.ingest_poke_s, 1)
        module, colon, attr = self.use_case.partition(":")
        if not (module.strip() and colon and attr.strip()):
            raise SettingsError(f"AIRLOOP_USE_CASE must be 'package.module:NAME', got {self.use_case!r}")
        for variable, url in (("AIRLOOP_SOURCE_URL", self.source_url), ("AIRLOOP_REGISTRY_URL", self.registry_url)):
            try:
                if url:
                    check_database_url(url, variable)
            except DatabaseURLError as exc:
                raise SettingsError(str(exc)) from None

    def _validate_lake(self) -> None:
        """The lake and its endpoint: URLs that name a place, never a credential."""
        shown = redact_url(self.lake_url)
        parts = _split_url(self.lake_url)
        if parts is None or parts.scheme not in ("file", "s3"):
            raise SettingsError(f"AIRLOOP_LAKE_URL must start with file:// or s3://, got {shown!r}")
        if "@" in parts.netloc or parts.query or parts.fragment:
            raise SettingsError(
                f"AIRLOOP_LAKE_URL must name only a place (no user, password or ?parameters: S3 credentials "
                f"come from the AWS variables or an Airflow connection), got {shown!r}"
            )
        if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
            raise SettingsError(
                f"AIRLOOP_LAKE_URL {shown!r} names the host {parts.netloc!r}: a local lake is file:///absolute/path"
            )
        if parts.scheme == "s3" and not parts.netloc:
            raise SettingsError(f"AIRLOOP_LAKE_URL {shown!r} names no bucket: use s3://bucket/prefix")
        if self.s3_endpoint_url:
            endpoint = _split_url(self.s3_endpoint_url)
            if endpoint is None or endpoint.scheme not in ("http", "https") or not endpoint.hostname:
                raise SettingsError(
                    f"AIRLOOP_S3_ENDPOINT_URL must be http(s)://host[:port], got {redact_url(self.s3_endpoint_url)!r}"
                )
            if "@" in endpoint.netloc:
                raise SettingsError(
                    f"AIRLOOP_S3_ENDPOINT_URL must not carry credentials, got {redact_url(self.s3_endpoint_url)!r}"
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


def _split_url(url: str):
    """``urlsplit`` of a ``scheme://`` URL, or None (no scheme, or a form it refuses)."""
    if "://" not in url:
        return None
    try:
        return urlsplit(url)
    except ValueError:  # e.g. an unbalanced '[' of an IPv6 host
        return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` after changing env)."""
    return Settings.from_env()

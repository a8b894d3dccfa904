"""The model registry: versions, the ``champion`` alias, and the history of every promotion.

A relational database (SQLite file by default, PostgreSQL by URL: ``AIRLOOP_REGISTRY_URL``)
holds the tables of :mod:`~airloop.registry.schema`. :class:`ModelRegistry` allocates and records
versions and reads artifacts back; the champion and its history are
:class:`~airloop.registry.champion.ChampionMixin`'s half.

Artifacts live in the lake under ``models/<name>/v<N>/``; :meth:`ModelRegistry.load_booster`
reads them back and refuses bytes whose sha256 differs from the one registered.
"""

from __future__ import annotations

from datetime import date
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from airloop.core.config import redact_url
from airloop.core.database import create_engine
from airloop.core.storage import sha256_bytes
from airloop.registry.champion import ChampionMixin
from airloop.registry.records import ArtifactIntegrityError, ModelVersion, RegistryError, VersionNotFound
from airloop.core.clock import clock_or_system
from airloop.registry.schema import Base, VersionRow, _jsonable

if TYPE_CHECKING:
    from airloop.core.clock import Clock
    from airloop.core.storage import Lake


class ModelRegistry(ChampionMixin):
    """The registry database at ``url`` (a SQLAlchemy URL).

    :param url: ``sqlite:///path/registry.db`` or ``postgresql+psycopg2://...``.
    :param create: create missing tables on first use (set-up does it explicitly).
    :param clock: where the instants it writes come from (``created_at`` of a version, the time
        of a promotion, rollback or refusal). Default: the real time (operators, CLI); a
        backtest passes a :class:`~airloop.core.clock.ReplayClock`, so a promotion replayed for
        a past day is visible "as of" that day (:meth:`champion_at`) and not before.
    """

    def __init__(self, url: str, *, create: bool = True, clock: "Clock | None" = None):
        self.url = url
        self._create = create
        self.clock = clock_or_system(clock)

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)

    @cached_property
    def engine(self):
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if self.url.startswith("sqlite"):
            path = self.url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Writers queue on SQLite's file lock instead of failing at once.
            kwargs["connect_args"] = {"timeout": 30}
        engine = create_engine(self.url, **kwargs)
        if self._create:
            Base.metadata.create_all(engine)
        return engine

    def create_tables(self) -> list[str]:
        """Create the registry tables when missing (idempotent); return their names."""
        Base.metadata.create_all(self.engine)
        return sorted(Base.metadata.tables)

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # --- versions -----------------------------------------------------------------------------

    def reserve_version(
        self,
        model_name: str,
        *,
        feature_service: str,
        feature_columns: list[str],
        window_start: date,
        window_end: date,
        fingerprint: str,
        params: dict,
        metrics: dict,
        code_version: str,
        device: str,
        device_reason: str = "",
        categories: dict | None = None,
        training_rows: int = 0,
        run_id: str = "",
    ) -> ModelVersion:
        """Allocate the next version number (``pending``) before its artifacts are written.

        The database allocates the number, so two trainings registering at once get different
        versions and never write into each other's ``models/<name>/v<N>/``. A rerun of a run
        (same ``run_id`` and ``fingerprint``) whose earlier attempt died before its artifacts were
        recorded takes that attempt's pending version again instead of leaving it behind.
        """
        if run_id:
            with self._session() as session:
                orphan = session.scalars(
                    select(VersionRow).where(
                        VersionRow.model_name == model_name, VersionRow.run_id == run_id,
                        VersionRow.fingerprint == fingerprint, VersionRow.status == "pending",
                    ).order_by(VersionRow.version.desc())
                ).first()  # fmt: skip
                if orphan is not None:
                    return ModelVersion._from_row(orphan)
        for _attempt in range(10):
            with self._session() as session:
                latest = session.scalar(select(func.max(VersionRow.version)).where(VersionRow.model_name == model_name))
                row = VersionRow(
                    model_name=model_name,
                    version=(latest or 0) + 1,
                    status="pending",
                    feature_service=feature_service,
                    feature_columns=list(feature_columns),
                    categories=_jsonable(categories or {}),
                    window_start=window_start,
                    window_end=window_end,
                    fingerprint=fingerprint,
                    params=_jsonable(params),
                    metrics=_jsonable(metrics),
                    code_version=code_version,
                    device=device,
                    device_reason=device_reason,
                    training_rows=int(training_rows),
                    run_id=run_id,
                    created_at=self.clock.now(),
                    status_reason="artifacts being written",
                )
                session.add(row)
                try:
                    session.commit()
                except (IntegrityError, OperationalError):
                    session.rollback()
                    continue
                return ModelVersion._from_row(row)
        raise RegistryError(f"could not allocate a version of {model_name} after 10 attempts (heavy contention)")

    def finalize_version(
        self, model_name: str, version: int, *, artifact_uri: str, sha256: str, reference_uri: str | None
    ) -> ModelVersion:
        """Record a pending version's published artifacts; it becomes a ``candidate``."""
        with self._session() as session:
            row = self._row(session, model_name, version)
            if row.status not in ("pending", "candidate"):
                raise RegistryError(f"{model_name} v{version} is {row.status}; only a pending version takes artifacts")
            row.artifact_uri, row.sha256, row.reference_uri = artifact_uri, sha256, reference_uri
            row.status, row.status_reason = "candidate", ""
            session.commit()
            return ModelVersion._from_row(row)

    def fail_version(self, model_name: str, version: int, reason: str) -> None:
        """Mark a pending version ``failed`` (its artifacts could not be published)."""
        with self._session() as session:
            row = self._row(session, model_name, version)
            if row.status == "pending":
                row.status, row.status_reason = "failed", reason[:2000]
                session.commit()

    def find_version(self, model_name: str, *, run_id: str, sha256: str) -> ModelVersion | None:
        """The version a run already registered with these artifact bytes (idempotent reruns)."""
        with self._session() as session:
            row = session.scalars(
                select(VersionRow)
                .where(VersionRow.model_name == model_name, VersionRow.run_id == run_id, VersionRow.sha256 == sha256)
                .order_by(VersionRow.version.desc())
            ).first()
            return ModelVersion._from_row(row) if row else None

    def _row(self, session: Session, model_name: str, version: int) -> VersionRow:
        row = session.scalars(
            select(VersionRow).where(VersionRow.model_name == model_name, VersionRow.version == int(version))
        ).first()
        if row is None:
            known = session.scalars(
                select(VersionRow.version).where(VersionRow.model_name == model_name).order_by(VersionRow.version)
            ).all()
            have = f"its versions are {known}" if known else "it has no versions"
            raise VersionNotFound(f"{model_name} has no version {version}; {have} (registry {self.safe_url})")
        return row

    def get(self, model_name: str, version: int) -> ModelVersion:
        """Version ``version`` of ``model_name``; :class:`VersionNotFound` names the versions there are."""
        with self._session() as session:
            return ModelVersion._from_row(self._row(session, model_name, version))

    def versions(self, model_name: str | None = None) -> list[ModelVersion]:
        """All versions (of one model), oldest first."""
        query = select(VersionRow).order_by(VersionRow.model_name, VersionRow.version)
        if model_name:
            query = query.where(VersionRow.model_name == model_name)
        with self._session() as session:
            return [ModelVersion._from_row(r) for r in session.scalars(query)]

    def model_names(self) -> list[str]:
        with self._session() as session:
            return list(session.scalars(select(VersionRow.model_name).distinct().order_by(VersionRow.model_name)))

    # --- artifacts ----------------------------------------------------------------------------

    def read_artifact(self, mv: ModelVersion, lake: "Lake") -> bytes:
        """The model bytes of ``mv``, after checking them against the registered sha256."""
        if not mv.artifact_uri or not mv.sha256:
            raise RegistryError(f"{mv.label} has no artifact ({mv.status}: {mv.status_reason})")
        key = artifact_key(mv.artifact_uri, lake)
        data = lake.read_bytes(key)
        actual = sha256_bytes(data)
        if actual != mv.sha256:
            raise ArtifactIntegrityError(
                f"refusing to load {mv.label}: {mv.artifact_uri} has sha256 {actual[:16]}..., "
                f"registered {mv.sha256[:16]}... (the file changed after registration)"
            )
        return data

    def load_booster(self, mv: ModelVersion, lake: "Lake"):
        """The XGBoost Booster of ``mv`` (sha256 verified before parsing)."""
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(self.read_artifact(mv, lake)))
        return booster


def artifact_key(uri: str, lake: "Lake") -> str:
    """The lake key of an artifact URI; an error when the URI is outside this lake."""
    root = lake.url.rstrip("/") + "/"
    if not uri.startswith(root):
        raise RegistryError(f"artifact {uri} is not in the configured lake {lake.url}")
    return uri[len(root) :]


def open_registry(settings=None, *, clock: "Clock | None" = None) -> ModelRegistry:
    """The registry named by the settings' ``registry_url`` (instants from ``clock``, default the real time)."""
    if settings is None:
        from airloop.core.config import get_settings

        settings = get_settings()
    return ModelRegistry(settings.registry_url, clock=clock)


def ensure_registry(settings) -> str:
    """Set-up step: the registry tables (``model_versions``, ``model_aliases``, ``promotion_history``)."""
    registry = ModelRegistry(settings.registry_url, create=False)
    tables = registry.create_tables()
    registry.engine.dispose()
    return f"registry tables {', '.join(tables)} ready in {registry.safe_url}"

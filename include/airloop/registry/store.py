"""The model registry: versions, the ``champion`` alias, and the history of every promotion.

A relational database (SQLite file by default, PostgreSQL by URL: ``AIRLOOP_REGISTRY_URL``)
holds three tables:

- ``model_versions``: one row per trained model: training window, FeatureService, training-set
  fingerprint, parameters, metrics, code version, device, artifact URI and sha256, reference
  sample URI, status (``pending`` -> ``candidate`` -> ``champion`` -> ``retired``, or
  ``rejected`` by the gate, or ``failed`` when publishing its artifacts failed).
- ``model_aliases``: ``(model_name, alias)`` is the primary key, so the database itself allows
  exactly one ``champion`` per model. Promotions and rollbacks are compare-and-swap on that row:
  a promotion decided against champion v3 only succeeds while v3 is still the champion, and two
  racing promotions end with exactly one winner (the other gets :class:`PromotionConflict`).
- ``promotion_history``: what changed (promote, rollback, refuse), when, why, by whom and which
  run, with the gate's numbers. :meth:`ModelRegistry.champion_at` answers "which version was
  champion at instant t" from it, for scoring backfills.

Artifacts live in the lake under ``models/<name>/v<N>/``; :meth:`ModelRegistry.load_booster`
reads them back and refuses bytes whose sha256 differs from the one registered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from airloop.core.config import redact_url
from airloop.core.storage import sha256_bytes

if TYPE_CHECKING:
    from airloop.core.storage import Lake

CHAMPION = "champion"
STATUSES = ("pending", "candidate", "champion", "retired", "rejected", "failed")
ACTIONS = ("promote", "rollback", "refuse")
_UNCHECKED = object()


class RegistryError(RuntimeError):
    """A registry operation cannot be done; the message says why and names the model/version."""


class VersionNotFound(RegistryError, LookupError):
    """The model has no such version."""


class PromotionConflict(RegistryError):
    """The champion changed (or was set) by someone else since the decision was taken."""


class ArtifactIntegrityError(RegistryError):
    """A model artifact's bytes do not match the sha256 recorded at registration."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the registry stores UTC instants only")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "pk": "pk_%(table_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s",
            "ix": "ix_%(table_name)s_%(column_0_name)s",
        }
    )


class VersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_name", "version", name="model_version"),
        CheckConstraint("status IN ('" + "','".join(STATUSES) + "')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    feature_service: Mapped[str] = mapped_column(String(200))
    feature_columns: Mapped[list] = mapped_column(JSON)
    categories: Mapped[dict] = mapped_column(JSON, default=dict)
    window_start: Mapped[date] = mapped_column(Date)
    window_end: Mapped[date] = mapped_column(Date)
    fingerprint: Mapped[str] = mapped_column(String(128))
    params: Mapped[dict] = mapped_column(JSON)
    metrics: Mapped[dict] = mapped_column(JSON)
    code_version: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(16))
    device_reason: Mapped[str] = mapped_column(Text, default="")
    training_rows: Mapped[int] = mapped_column(Integer, default=0)
    artifact_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reference_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    gate: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    run_id: Mapped[str] = mapped_column(String(250), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AliasRow(Base):
    __tablename__ = "model_aliases"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_name", "version"], ["model_versions.model_name", "model_versions.version"], name="version"
        ),
    )

    # The primary key is the rule: one row, hence one version, per (model, alias).
    model_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    alias: Mapped[str] = mapped_column(String(50), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(250), default="")


class HistoryRow(Base):
    __tablename__ = "promotion_history"
    __table_args__ = (CheckConstraint("action IN ('" + "','".join(ACTIONS) + "')", name="action"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    alias: Mapped[str] = mapped_column(String(50))
    action: Mapped[str] = mapped_column(String(20))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    candidate_version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250), default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    details: Mapped[dict] = mapped_column(JSON, default=dict)


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version (a detached, read-only copy of its row)."""

    model_name: str
    version: int
    status: str
    feature_service: str
    feature_columns: list[str]
    categories: dict[str, list]
    window_start: date
    window_end: date
    fingerprint: str
    params: dict
    metrics: dict
    code_version: str
    device: str
    device_reason: str
    training_rows: int
    artifact_uri: str | None
    sha256: str | None
    reference_uri: str | None
    gate: dict | None
    status_reason: str
    run_id: str
    created_at: datetime

    @property
    def label(self) -> str:
        return f"{self.model_name} v{self.version}"

    def as_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}

    @classmethod
    def _from_row(cls, row: VersionRow) -> "ModelVersion":
        return cls(**{f: getattr(row, f) for f in cls.__dataclass_fields__})


@dataclass(frozen=True)
class PromotionRecord:
    """One entry of the promotion history."""

    id: int
    model_name: str
    alias: str
    action: str
    from_version: int | None
    to_version: int | None
    candidate_version: int
    reason: str
    actor: str
    run_id: str
    at: datetime
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}

    @classmethod
    def _from_row(cls, row: HistoryRow) -> "PromotionRecord":
        return cls(**{f: getattr(row, f) for f in cls.__dataclass_fields__})


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON so numpy numbers and dates fit a JSON column."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


class ModelRegistry:
    """The registry database at ``url`` (a SQLAlchemy URL).

    :param url: ``sqlite:///path/registry.db`` or ``postgresql+psycopg2://...``.
    :param create: create missing tables on first use (set-up does it explicitly).
    """

    def __init__(self, url: str, *, create: bool = True):
        self.url = url
        self._create = create

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
        versions and never write into each other's ``models/<name>/v<N>/``.
        """
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
                    created_at=_utcnow(),
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

    # --- champion -----------------------------------------------------------------------------

    def champion_version(self, model_name: str) -> int | None:
        with self._session() as session:
            return session.scalar(
                select(AliasRow.version).where(AliasRow.model_name == model_name, AliasRow.alias == CHAMPION)
            )

    def champion(self, model_name: str) -> ModelVersion | None:
        """The version serving now, or None before the first promotion."""
        number = self.champion_version(model_name)
        return None if number is None else self.get(model_name, number)

    def champion_at(self, model_name: str, instant: datetime) -> ModelVersion | None:
        """The version that was champion at ``instant`` (aware), from the promotion history."""
        if instant.tzinfo is None:
            raise ValueError("champion_at needs an aware datetime (UTC instant)")
        with self._session() as session:
            number = session.scalar(
                select(HistoryRow.to_version)
                .where(
                    HistoryRow.model_name == model_name,
                    HistoryRow.alias == CHAMPION,
                    HistoryRow.action.in_(("promote", "rollback")),
                    HistoryRow.at <= instant,
                )
                .order_by(HistoryRow.at.desc(), HistoryRow.id.desc())
                .limit(1)
            )
        return None if number is None else self.get(model_name, number)

    def history(self, model_name: str) -> list[PromotionRecord]:
        """Every promotion, rollback and refusal of ``model_name``, oldest first."""
        with self._session() as session:
            rows = session.scalars(
                select(HistoryRow).where(HistoryRow.model_name == model_name).order_by(HistoryRow.at, HistoryRow.id)
            )
            return [PromotionRecord._from_row(r) for r in rows]

    def _swap_champion(
        self,
        session: Session,
        model_name: str,
        version: int,
        expected: int | None | object,
        actor: str,
    ) -> int | None:
        """Point ``champion`` at ``version`` if it still is ``expected``; return the old one."""
        now = _utcnow()
        current = session.scalar(
            select(AliasRow.version).where(AliasRow.model_name == model_name, AliasRow.alias == CHAMPION)
        )
        if expected is not _UNCHECKED and current != expected:
            raise PromotionConflict(
                f"{model_name}: the champion is {_v(current)}, not {_v(expected)} as when the decision was "
                f"taken; re-run the comparison against the current champion"
            )
        if current is None:
            session.add(AliasRow(model_name=model_name, alias=CHAMPION, version=version, updated_at=now, updated_by=actor))
            try:
                session.flush()
            except IntegrityError:
                raise PromotionConflict(
                    f"{model_name}: another promotion set the first champion at the same time; "
                    f"v{version} was not promoted"
                ) from None
            return None
        result = session.execute(
            update(AliasRow)
            .where(AliasRow.model_name == model_name, AliasRow.alias == CHAMPION, AliasRow.version == current)
            .values(version=version, updated_at=now, updated_by=actor)
        )
        if result.rowcount != 1:
            raise PromotionConflict(
                f"{model_name}: the champion changed from v{current} while v{version} was being promoted"
            )
        return current

    def promote(
        self,
        model_name: str,
        version: int,
        *,
        reason: str,
        actor: str,
        run_id: str = "",
        expected_champion: int | None | object = _UNCHECKED,
        details: dict | None = None,
    ) -> PromotionRecord:
        """Make ``version`` the champion and record why.

        :param expected_champion: the champion the decision was taken against (None: there was
            none). When given, the swap only happens while it still holds; otherwise
            :class:`PromotionConflict` and nothing changes.
        :param details: the gate's numbers, stored with the history entry and on the version.
        """
        try:
            with self._session() as session:
                row = self._row(session, model_name, version)
                if row.status not in ("candidate", "retired"):
                    raise RegistryError(
                        f"{model_name} v{version} is {row.status}; only a candidate (or a retired champion) can be promoted"
                    )
                previous = self._swap_champion(session, model_name, version, expected_champion, actor)
                self._retire(session, model_name, previous)
                row.status, row.status_reason = "champion", reason
                if details is not None:
                    row.gate = _jsonable(details)
                entry = self._record(session, model_name, "promote", previous, version, version, reason, actor, run_id, details)
                session.commit()
                return entry
        except OperationalError as exc:
            raise PromotionConflict(f"{model_name}: promotion of v{version} lost a database race: {exc.orig}") from exc

    def refuse(
        self, model_name: str, version: int, *, reason: str, actor: str, run_id: str = "", details: dict | None = None
    ) -> PromotionRecord:
        """Record that the gate kept the champion: ``version`` becomes ``rejected``."""
        with self._session() as session:
            row = self._row(session, model_name, version)
            if row.status == "champion":
                raise RegistryError(f"{model_name} v{version} is the champion; it cannot be refused")
            current = session.scalar(
                select(AliasRow.version).where(AliasRow.model_name == model_name, AliasRow.alias == CHAMPION)
            )
            row.status, row.status_reason = "rejected", reason
            if details is not None:
                row.gate = _jsonable(details)
            entry = self._record(session, model_name, "refuse", current, current, version, reason, actor, run_id, details)
            session.commit()
            return entry

    def previous_champion(self, model_name: str) -> int | None:
        """The champion before the current one, walking back through rollbacks.

        Promotions push onto a stack, a rollback pops back to its target: after promoting v1,
        v2, v3, "previous" is v2; after rolling back to v2, "previous" is v1.
        """
        stack: list[int] = []
        for entry in self.history(model_name):
            if entry.action == "promote":
                stack.append(entry.to_version)
            elif entry.action == "rollback":
                if entry.to_version in stack:
                    del stack[stack.index(entry.to_version) + 1 :]
                else:
                    stack.append(entry.to_version)
        return stack[-2] if len(stack) >= 2 else None

    def rollback(
        self,
        model_name: str,
        to: int | str = "previous",
        *,
        reason: str,
        actor: str,
        run_id: str = "",
        lake: "Lake | None" = None,
    ) -> PromotionRecord:
        """Make an earlier champion the champion again (``to``: a version number or ``previous``).

        :param lake: when given, the target's artifact is read and its sha256 checked first, so
            a rollback never switches serving to a model that cannot be loaded.
        :raises VersionNotFound: ``to`` is not a version of ``model_name``.
        :raises RegistryError: no champion, no previous champion, the target is already the
            champion or never was one (rejected, failed, pending).
        """
        current = self.champion_version(model_name)
        if current is None:
            raise RegistryError(f"{model_name} has no champion: there is nothing to roll back")
        if str(to) == "previous":
            target = self.previous_champion(model_name)
            if target is None:
                raise RegistryError(f"{model_name}: champion v{current} has no previous champion to roll back to")
        else:
            try:
                target = int(to)
            except (TypeError, ValueError):
                raise RegistryError(f"rollback target must be a version number or 'previous', got {to!r}") from None
        target_mv = self.get(model_name, target)
        if target == current:
            raise RegistryError(f"{model_name} v{target} is already the champion")
        if target_mv.status not in ("retired", "candidate") or not target_mv.artifact_uri:
            raise RegistryError(
                f"{model_name} v{target} is {target_mv.status} ({target_mv.status_reason or 'no reason recorded'}); "
                "roll back only to a version that served or passed registration"
            )
        if lake is not None:
            self.read_artifact(target_mv, lake)
        with self._session() as session:
            previous = self._swap_champion(session, model_name, target, current, actor)
            self._retire(session, model_name, previous)
            row = self._row(session, model_name, target)
            row.status, row.status_reason = "champion", f"rollback: {reason}"
            entry = self._record(session, model_name, "rollback", previous, target, target, reason, actor, run_id, {})
            session.commit()
            return entry

    def _retire(self, session: Session, model_name: str, version: int | None) -> None:
        if version is None:
            return
        old = self._row(session, model_name, version)
        old.status = "retired"

    def _record(self, session, model_name, action, from_v, to_v, candidate, reason, actor, run_id, details) -> PromotionRecord:
        row = HistoryRow(
            model_name=model_name,
            alias=CHAMPION,
            action=action,
            from_version=from_v,
            to_version=to_v,
            candidate_version=candidate,
            reason=reason,
            actor=actor,
            run_id=run_id,
            at=_utcnow(),
            details=_jsonable(details or {}),
        )
        session.add(row)
        session.flush()
        return PromotionRecord._from_row(row)

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


def _v(version) -> str:
    return "none" if version is None or version is _UNCHECKED else f"v{version}"


def open_registry(settings=None) -> ModelRegistry:
    """The registry named by the settings' ``registry_url``."""
    if settings is None:
        from airloop.core.config import get_settings

        settings = get_settings()
    return ModelRegistry(settings.registry_url)


def ensure_registry(settings) -> str:
    """Set-up step: the registry tables (``model_versions``, ``model_aliases``, ``promotion_history``)."""
    registry = ModelRegistry(settings.registry_url, create=False)
    tables = registry.create_tables()
    registry.engine.dispose()
    return f"registry tables {', '.join(tables)} ready in {registry.safe_url}"

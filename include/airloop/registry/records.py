"""What the registry hands out: read-only values of its rows (:class:`ModelVersion`,
:class:`PromotionRecord`) and the errors its operations raise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airloop.registry.schema import HistoryRow, VersionRow


class RegistryError(RuntimeError):
    """A registry operation cannot be done; the message says why and names the model/version."""


class VersionNotFound(RegistryError, LookupError):
    """The model has no such version."""


class PromotionConflict(RegistryError):
    """The champion changed (or was set) by someone else since the decision was taken."""


class ArtifactIntegrityError(RegistryError):
    """A model artifact's bytes do not match the sha256 recorded at registration."""


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

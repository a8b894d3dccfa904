"""The model registry: versions, aliases (the champion) and their history, in a SQL database.

Artifacts live in the lake (local or S3) and are checked by sha256 when loaded; the database
(SQLite by default, PostgreSQL on the services profile) holds versions, metrics and every
promotion, rollback and refusal.

- :mod:`~airloop.registry.store`: :class:`ModelRegistry` (versions, artifacts),
  :func:`open_registry`, :func:`ensure_registry`, :func:`artifact_key`.
- :mod:`~airloop.registry.champion`: the champion alias, its history, promote/refuse/rollback.
- :mod:`~airloop.registry.records`: :class:`ModelVersion`, :class:`PromotionRecord`, the errors.
- :mod:`~airloop.registry.schema`: the tables (``model_versions``, ``model_aliases``,
  ``promotion_history``).
"""

from __future__ import annotations

from airloop.registry.records import (
    ArtifactIntegrityError,
    ModelVersion,
    PromotionConflict,
    PromotionRecord,
    RegistryError,
    VersionNotFound,
)
from airloop.registry.schema import CHAMPION
from airloop.registry.store import ModelRegistry, artifact_key, ensure_registry, open_registry

__all__ = [
    "ArtifactIntegrityError",
    "CHAMPION",
    "ModelRegistry",
    "ModelVersion",
    "PromotionConflict",
    "PromotionRecord",
    "RegistryError",
    "VersionNotFound",
    "artifact_key",
    "ensure_registry",
    "open_registry",
]

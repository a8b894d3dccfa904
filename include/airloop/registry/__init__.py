"""The model registry: versions, aliases (the champion) and their history, in a SQL database.

Artifacts live in the lake (local or S3) and are checked by sha256 when loaded; the database
(SQLite by default, PostgreSQL on the services profile) holds versions, metrics and every
promotion, rollback and refusal.
"""

from __future__ import annotations

from airloop.registry.store import (
    AliasRow,
    artifact_key,
    ArtifactIntegrityError,
    CHAMPION,
    ensure_registry,
    ModelRegistry,
    ModelVersion,
    open_registry,
    PromotionConflict,
    RegistryError,
    VersionNotFound,
)

__all__ = [
    "AliasRow",
    "ArtifactIntegrityError",
    "CHAMPION",
    "ModelRegistry",
    "ModelVersion",
    "PromotionConflict",
    "RegistryError",
    "VersionNotFound",
    "artifact_key",
    "ensure_registry",
    "open_registry",
]

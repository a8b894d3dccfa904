"""Upstream partitions of a day: which feature partitions scoring waits for, and their check.

Scoring day D reads the features as of D's prediction time, whose newest data is D - 1's
feature partitions: :func:`upstream_partitions` names them, :func:`missing_inputs` is the
sensor's cheap check, :func:`verify_inputs` the full one (every file against its manifest's
sha256) that records them as the predictions' lineage.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Iterable, Mapping

from airloop.core.storage import Lake, StorageError, read_manifest, sha256_bytes
from airloop.scoring.errors import ScoringError, UpstreamCorruptError, UpstreamNotReadyError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from airloop.core.config import Settings
    from airloop.core.dates import LogicalDay
    from airloop.core.usecase import UseCase


def upstream_partitions(day: "LogicalDay", use_case: "UseCase", prefixes: "Mapping[str, str] | None" = None) -> list[str]:
    """The partitions scoring ``day`` waits for: every feature view's partition of the day before.

    They are the newest data the features as of ``day``'s prediction time can hold (the day
    before is the last day ingested by then); older partitions were checked when they were the
    newest.

    :param prefixes: view name -> where its rows live in the lake, from the registered feature
        definitions (:func:`view_prefixes`): a view whose rows changed meaning lives under a
        versioned prefix (``features/<view>/v2``). Views not named use ``features/<view>``.
    """
    if use_case.features is None:
        raise ScoringError(f"use case {use_case.name!r} defines no features (use_case.features)")
    previous = day.shift(-1).key
    return [f"{_view_prefix(view.name, prefixes)}/ds={previous}" for view in use_case.features.views]


def _view_prefix(view: str, prefixes: "Mapping[str, str] | None") -> str:
    """Where a view's partitions live: the registered layout's prefix, else ``features/<view>``."""
    return (prefixes or {}).get(view) or f"features/{view}"


def view_prefixes(settings: "Settings", use_case: "UseCase", *, lake: Lake | None = None) -> dict[str, str]:
    """Each view's lake prefix as the feature service's registered layout names it.

    Empty when nothing is registered yet (a fresh start): the default prefixes then name what
    is missing. Reads the lake's layout record (no Feast import) when it is current.
    """
    from airloop.features.registered_layout import registered_layout

    if use_case.features is None:
        return {}
    try:
        layout = registered_layout(settings, use_case.features.feature_service, lake=lake)
    except Exception as error:  # noqa: BLE001 - not applied yet / no registry: fall back to the defaults
        log.info("feature service %s not registered yet (%s): default feature prefixes", use_case.features.feature_service, error)
        return {}
    return {view.name: view.lake_prefix for view in layout.views}


def verify_inputs(lake: Lake, prefixes: Iterable[str]) -> list[dict]:
    """Check each upstream partition against its manifest; return their checksums for lineage.

    :raises UpstreamNotReadyError: a partition has no manifest (names them all).
    :raises UpstreamCorruptError: a listed file is missing or its sha256 differs (names it).
    """
    prefixes = sorted(set(prefixes))
    manifests = {p: read_manifest(lake, p) for p in prefixes}
    missing = [lake.uri(p) for p, m in manifests.items() if m is None]
    if missing:
        raise UpstreamNotReadyError(f"upstream partitions not published yet: {', '.join(missing)}")
    inputs = []
    for prefix, manifest in manifests.items():
        files = []
        for entry in manifest.get("files", []):
            key = f"{prefix}/{entry['name']}"
            try:
                data = lake.read_bytes(key)
            except StorageError as exc:
                raise UpstreamCorruptError(f"upstream partition {lake.uri(prefix)} is partial: {exc}") from None
            if sha256_bytes(data) != entry["sha256"]:
                raise UpstreamCorruptError(
                    f"upstream partition {lake.uri(prefix)} is corrupt: {entry['name']} does not match "
                    f"its manifest's sha256; republish it (rerun its DAG for that day)"
                )
            files.append({"name": entry["name"], "sha256": entry["sha256"]})
        inputs.append({"partition": prefix, "files": files})
    return inputs


def days_with_inputs(lake: Lake, use_case: "UseCase", days: "Iterable[LogicalDay]", prefixes: "Mapping[str, str] | None" = None) -> "list[LogicalDay]":
    """The days of ``days`` whose upstream partitions (:func:`upstream_partitions`) are all published.

    A day is trainable or scorable only then: its rows are looked up as of its prediction time,
    which reads the day before's feature partitions. One listing per view, not a read per day.
    """
    from airloop.core.storage import list_partitions

    days = list(days)
    if not days:
        return []
    published = set()
    for view in use_case.features.views if use_case.features else ():
        published.update(list_partitions(lake, _view_prefix(view.name, prefixes)))
    return [d for d in days if all(p in published for p in upstream_partitions(d, use_case, prefixes))]


def missing_inputs(lake: Lake, prefixes: Iterable[str]) -> list[str]:
    """The upstream partitions (of ``prefixes``) not published yet: a cheap manifest check."""
    return [p for p in sorted(set(prefixes)) if read_manifest(lake, p) is None]

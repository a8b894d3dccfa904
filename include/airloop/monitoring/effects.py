"""Effect sizes of a day's columns against a reference, computed directly (NumPy, no report).

Two families, each a pure function of the two samples:

* **PSI** (population stability index) of every column: the reference's deciles as bins (numeric)
  or its categories (categorical), a missing value a bin of its own, proportions smoothed by half
  a row so an empty bin is finite. What the drift *policy* compares against its calibrated
  per-column thresholds (:mod:`airloop.monitoring.calibration`): an effect size, so unlike a p-value
  it does not grow with the number of rows.
* **Evidently's large-sample distances**, the same definitions its ``DataDriftPreset`` applies
  above 1,000 reference rows: Wasserstein distance normed by the reference's standard deviation
  (numeric columns with more than 5 distinct values) and Jensen-Shannon distance of the value
  frequencies (other columns), a column drifting at 0.1. They give the report's *drift share*
  when no Evidently report is built (``render=False``): the same number, without the figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

PSI_BINS = 10
EVIDENTLY_THRESHOLD = 0.1


def _numeric(series: "pd.Series"):
    import numpy as np
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def psi_numeric(reference, current, bins: int = PSI_BINS) -> float:
    """PSI of two numeric samples (arrays with NaN for missing) on the reference's quantile bins."""
    import numpy as np

    ref_ok, cur_ok = reference[~np.isnan(reference)], current[~np.isnan(current)]
    if len(ref_ok):
        edges = np.unique(np.quantile(ref_ok, np.linspace(0, 1, bins + 1)[1:-1]))
    else:
        edges = np.array([])
    ref_counts = np.bincount(np.searchsorted(edges, ref_ok, side="right"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur_ok, side="right"), minlength=len(edges) + 1)
    ref_counts = np.append(ref_counts, len(reference) - len(ref_ok))
    cur_counts = np.append(cur_counts, len(current) - len(cur_ok))
    return _psi(ref_counts, cur_counts)


def _codes(reference: "pd.Series", current: "pd.Series"):
    """Both sides as integer codes over the union of their values (missing: a code of its own)."""
    import numpy as np
    import pandas as pd

    both = pd.concat([reference.astype("object"), current.astype("object")], ignore_index=True)
    codes, uniques = pd.factorize(both, use_na_sentinel=True)
    codes = np.where(codes < 0, len(uniques), codes)
    k = len(uniques) + 1
    return codes[: len(reference)], codes[len(reference) :], k


def psi_categorical(reference: "pd.Series", current: "pd.Series") -> float:
    """PSI of two categorical samples over the union of their values."""
    import numpy as np

    ref_codes, cur_codes, k = _codes(reference, current)
    return _psi(np.bincount(ref_codes, minlength=k), np.bincount(cur_codes, minlength=k))


def _psi(ref_counts, cur_counts) -> float:
    import numpy as np

    keep = (ref_counts + cur_counts) > 0
    ref_counts, cur_counts = ref_counts[keep].astype(float), cur_counts[keep].astype(float)
    ref_p = (ref_counts + 0.5) / (ref_counts.sum() + 0.5 * len(ref_counts))
    cur_p = (cur_counts + 0.5) / (cur_counts.sum() + 0.5 * len(cur_counts))
    return float(np.sum((cur_p - ref_p) * np.log(cur_p / ref_p)))


def evidently_distance(reference: "pd.Series", current: "pd.Series", numerical: bool) -> tuple[str, float]:
    """Evidently's large-sample method and score for one column: ``("wasserstein", d)`` or
    ``("jensenshannon", d)``; missing values are dropped first, as Evidently does."""
    import numpy as np
    from scipy import stats
    from scipy.spatial import distance

    if numerical:
        ref, cur = _numeric(reference), _numeric(current)
        ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
        if len(np.unique(ref)) > 5:
            norm = max(float(np.std(ref)), 0.001)
            return "wasserstein", float(stats.wasserstein_distance(ref, cur) / norm)
    ref_codes, cur_codes, k = _codes(reference.dropna(), current.dropna())
    ref_p = np.bincount(ref_codes, minlength=k) / max(len(ref_codes), 1)
    cur_p = np.bincount(cur_codes, minlength=k) / max(len(cur_codes), 1)
    return "jensenshannon", float(distance.jensenshannon(ref_p, cur_p))


def column_effects(reference: "pd.DataFrame", current: "pd.DataFrame", numerical: list[str],
                   categorical: list[str]) -> dict[str, dict]:  # fmt: skip
    """``{column: {"psi", "method", "score", "threshold", "drifted"}}`` of every tested column:
    its PSI, and Evidently's large-sample distance with its verdict at 0.1."""
    out: dict[str, dict] = {}
    for col in numerical + categorical:
        is_num = col in numerical
        if is_num:
            psi = psi_numeric(_numeric(reference[col]), _numeric(current[col]))
        else:
            psi = psi_categorical(reference[col], current[col])
        method, score = evidently_distance(reference[col], current[col], is_num)
        out[col] = {"psi": psi, "method": method, "score": score, "threshold": EVIDENTLY_THRESHOLD,
                    "drifted": score >= EVIDENTLY_THRESHOLD}  # fmt: skip
    return out

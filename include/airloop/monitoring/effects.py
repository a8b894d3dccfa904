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

    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def psi_numeric(reference, current, bins: int = PSI_BINS) -> float:
    """PSI of two numeric samples (arrays with NaN for missing) on the reference's quantile bins."""
    import numpy as np

    return numeric_effect(np.asarray(reference, dtype="float64"), np.asarray(current, dtype="float64"), bins)["psi"]


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


def _sorted_finite(values):
    import numpy as np

    return np.sort(values[~np.isnan(values)])


def _quantile_edges(ref_sorted, bins: int):
    """The reference's inner quantile edges (linear interpolation, as ``np.quantile``), deduplicated."""
    import numpy as np

    if not len(ref_sorted):
        return np.array([])
    positions = np.linspace(0, 1, bins + 1)[1:-1] * (len(ref_sorted) - 1)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, len(ref_sorted) - 1)
    edges = ref_sorted[low] + (positions - low) * (ref_sorted[high] - ref_sorted[low])
    return np.unique(edges)


def _wasserstein_sorted(a, b) -> float:
    """First Wasserstein distance of two sorted samples (SciPy's definition, without its checks)."""
    import numpy as np

    values = np.sort(np.concatenate([a, b]))
    deltas = np.diff(values)
    a_cdf = np.searchsorted(a, values[:-1], side="right") / len(a)
    b_cdf = np.searchsorted(b, values[:-1], side="right") / len(b)
    return float(np.sum(np.abs(a_cdf - b_cdf) * deltas))


def numeric_effect(reference, current, bins: int = PSI_BINS) -> dict:
    """PSI and Evidently's distance of one numeric column, both sides sorted once."""
    import numpy as np

    ref_sorted, cur_sorted = _sorted_finite(reference), _sorted_finite(current)
    edges = _quantile_edges(ref_sorted, bins)
    ref_counts = np.diff(np.concatenate([[0], np.searchsorted(ref_sorted, edges, side="right"), [len(ref_sorted)]]))
    cur_counts = np.diff(np.concatenate([[0], np.searchsorted(cur_sorted, edges, side="right"), [len(cur_sorted)]]))
    ref_counts = np.append(ref_counts, len(reference) - len(ref_sorted))
    cur_counts = np.append(cur_counts, len(current) - len(cur_sorted))
    out = {"psi": _psi(ref_counts, cur_counts)}
    distinct = 1 + int(np.count_nonzero(np.diff(ref_sorted))) if len(ref_sorted) else 0
    if distinct > 5 and len(cur_sorted):
        norm = max(float(np.std(ref_sorted)), 0.001)
        out.update(method="wasserstein", score=_wasserstein_sorted(ref_sorted, cur_sorted) / norm)
    return out


def column_effects(reference: "pd.DataFrame", current: "pd.DataFrame", numerical: list[str],
                   categorical: list[str]) -> dict[str, dict]:  # fmt: skip
    """``{column: {"psi", "method", "score", "threshold", "drifted"}}`` of every tested column:
    its PSI, and Evidently's large-sample distance with its verdict at 0.1."""
    out: dict[str, dict] = {}
    for col in numerical + categorical:
        effect = numeric_effect(_numeric(reference[col]), _numeric(current[col])) if col in numerical else {}
        if "method" not in effect:  # categorical, or numeric with 5 values or fewer: frequencies
            if col not in numerical:
                effect["psi"] = psi_categorical(reference[col], current[col])
            effect["method"], effect["score"] = evidently_distance(reference[col], current[col], False)
        score = effect["score"]
        out[col] = {"psi": effect["psi"], "method": effect["method"], "score": score, "threshold": EVIDENTLY_THRESHOLD,
                    "drifted": score >= EVIDENTLY_THRESHOLD}  # fmt: skip
    return out

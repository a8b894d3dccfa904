"""Data contracts: split a batch into valid rows and quarantined rows, each with its reason.

Two kinds of failure:

* **Structural** (a required column is missing or renamed): the batch as a whole cannot be
  trusted, so :class:`ContractError` is raised naming the columns, and nothing is written.
* **Row-level** (a value of the wrong type, out of range, a code outside the allowed set, a null
  or duplicated key): the row goes to quarantine with a ``_quarantine_reason`` such as
  ``"distance: -5.0 is below the minimum 1"``; every other row is published. Nothing is lost.

Range, set and pattern checks run through a pandera schema built from the use case's
:class:`~airloop.core.usecase.ColumnContract` list, so the contract is declared once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.usecase import ColumnContract, SourceTable

REASON_COLUMN = "_quarantine_reason"


class ContractError(ValueError):
    """The batch violates the contract structurally (e.g. missing columns); nothing was written."""


@dataclass
class ValidationResult:
    valid: "pd.DataFrame"
    quarantined: "pd.DataFrame"

    @property
    def total(self) -> int:
        return len(self.valid) + len(self.quarantined)

    @property
    def quarantined_share(self) -> float:
        return len(self.quarantined) / self.total if self.total else 0.0

    def reason_counts(self) -> dict[str, int]:
        """How many quarantined rows per check (``column: check``), for manifests and logs."""
        counts: dict[str, int] = {}
        for reasons in self.quarantined.get(REASON_COLUMN, []):
            for reason in str(reasons).split("; "):
                label = reason.split(":", 1)[0] + ": " + _reason_kind(reason)
                counts[label] = counts.get(label, 0) + 1
        return dict(sorted(counts.items()))


def _reason_kind(reason: str) -> str:
    for kind in ("not a", "below", "above", "not one of", "does not match", "null", "duplicate"):
        if kind in reason:
            return kind
    return "invalid"


def check_columns(frame: "pd.DataFrame", required: tuple[str, ...] | list[str], where: str) -> None:
    """Raise :class:`ContractError` naming missing (and unexpected) columns."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        unexpected = [c for c in frame.columns if c not in required]
        hint = f"; columns not in the contract: {unexpected} (renamed?)" if unexpected else ""
        raise ContractError(f"{where}: missing required columns {missing}{hint}")


def _coerce(frame: "pd.DataFrame", contract: "ColumnContract", reasons: "pd.Series") -> "pd.Series":
    """Cast one column to its contract dtype; values that cannot be cast become null + a reason."""
    import pandas as pd

    raw = frame[contract.name]
    if contract.dtype in ("int", "float"):
        values = pd.to_numeric(raw, errors="coerce").astype("Float64")
    elif contract.dtype == "datetime":
        if isinstance(raw.dtype, pd.DatetimeTZDtype):
            values = raw.dt.tz_convert("UTC")
        else:
            values = pd.to_datetime(raw, utc=True, errors="coerce")
    elif contract.dtype == "date":
        values = pd.to_datetime(raw, errors="coerce").dt.date
    elif contract.dtype == "str":
        values = raw.astype("string")
    else:
        raise ContractError(f"column {contract.name!r}: unknown contract dtype {contract.dtype!r}")
    lost = raw.notna() & pd.Series(values).isna()
    if contract.dtype == "int":
        fractional = values.notna() & (values != values.round())
        lost = lost | fractional.fillna(False).astype(bool)
    for idx in lost[lost].index:
        _add(reasons, idx, f"{contract.name}: not a valid {contract.dtype}: {_show(raw.loc[idx])}")
    if contract.dtype == "int":
        values = values.where(~lost).round().astype("Int64")
    elif contract.dtype == "float":
        values = values.astype("float64")
    return values


def _show(value) -> str:
    """A value as a reason shows it: plain Python repr (``-1.0``, ``'XXX'``), never ``np.float64(-1.0)``."""
    item = getattr(value, "item", None)
    if callable(item):
        try:
            value = item()
        except (TypeError, ValueError):
            pass
    return repr(value)


def _add(reasons: "pd.Series", idx, reason: str) -> None:
    current = reasons.at[idx]
    reasons.at[idx] = reason if not current else f"{current}; {reason}"


def _pandera_schema(table: "SourceTable"):
    import pandera.pandas as pa

    columns = {}
    for col in table.columns:
        checks = []
        if col.min_value is not None:
            checks.append(pa.Check.ge(col.min_value, error=f"below the minimum {col.min_value:g}"))
        if col.max_value is not None:
            checks.append(pa.Check.le(col.max_value, error=f"above the maximum {col.max_value:g}"))
        if col.allowed is not None:
            checks.append(pa.Check.isin(list(col.allowed), error=f"not one of {list(col.allowed)}"))
        if col.pattern is not None:
            checks.append(pa.Check.str_matches(f"^(?:{col.pattern})$", error=f"does not match /{col.pattern}/"))
        # Nulls are checked (with better messages) before pandera runs; here they only pass through.
        columns[col.name] = pa.Column(checks=checks, nullable=True, required=True)
    return pa.DataFrameSchema(columns, strict=False, coerce=False)


def validate(frame: "pd.DataFrame", table: "SourceTable") -> ValidationResult:
    """Split ``frame`` (already transformed) into valid and quarantined rows.

    :raises ContractError: a contract column is missing.
    """
    import pandas as pd
    import pandera.errors

    names = [c.name for c in table.columns]
    check_columns(frame, names, f"table {table.name!r}")
    frame = frame.reset_index(drop=True)
    reasons = pd.Series([""] * len(frame), index=frame.index, dtype=object)
    typed = pd.DataFrame(index=frame.index)
    for col in table.columns:
        typed[col.name] = _coerce(frame, col, reasons)

    for col in table.columns:
        if col.nullable and col.name not in table.key:
            continue
        what = "key column" if col.name in table.key else "column"
        for idx in frame.index[frame[col.name].isna()]:
            _add(reasons, idx, f"{col.name}: null in non-nullable {what}")

    schema = _pandera_schema(table)
    try:
        schema.validate(typed, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        for row in cases.itertuples(index=False):
            if row.index is None or pd.isna(row.index):
                raise ContractError(f"table {table.name!r}: {row.check} on {row.column}") from exc
            # Show the row's own typed value: failure_case mixes dtypes across columns (13 -> 13.0).
            _add(reasons, int(row.index), f"{row.column}: {_show(typed.at[int(row.index), row.column])} {row.check}")

    # Duplicate keys among otherwise-valid rows: identical copies keep their first occurrence;
    # conflicting versions of one key are all quarantined, since nothing says which is right.
    key = list(table.key)
    clean = reasons == ""
    dup_any = typed[clean].duplicated(key, keep=False)
    if dup_any.any():
        dupes = typed[clean][dup_any]
        for _, group in dupes.groupby(key, dropna=False, sort=False):
            identical = len(group.drop_duplicates()) == 1
            victims = group.index[1:] if identical else group.index
            label = "exact duplicate of an earlier row" if identical else "duplicate key with conflicting values"
            for idx in victims:
                _add(reasons, idx, f"{'+'.join(key)}: {label}")

    bad = reasons != ""
    valid = typed[~bad].reset_index(drop=True)
    quarantined = frame[bad].copy()
    quarantined = quarantined.astype({c: "string" for c in quarantined.columns})
    quarantined[REASON_COLUMN] = reasons[bad].astype("string")
    return ValidationResult(valid=valid, quarantined=quarantined.reset_index(drop=True))

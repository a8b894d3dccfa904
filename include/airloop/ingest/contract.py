"""Data contracts: split a batch into valid rows and quarantined rows, each with its reason.

Two kinds of failure:

* **Structural** (a required column is missing or renamed): the batch as a whole cannot be
  trusted, so :class:`ContractError` is raised naming the columns, and nothing is written.
* **Row-level** (a value of the wrong type, out of range, a code outside the allowed set, a null
  or duplicated key): the row goes to quarantine with a ``_quarantine_reason`` such as
  ``"distance: -5.0 is below the minimum 1"``; every other row is published. Nothing is lost.
  Of rows sharing a key, an exact copy keeps its first occurrence and a conflicting set goes
  to quarantine whole; the two are reasoned and counted apart.

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
# Duplicate keys come in two kinds that mean different things: an exact copy of a row (harmless
# upstream noise: one copy is published) and rows that share a key but disagree (nothing says
# which is right: none is published). Reasons and counts keep them apart.
EXACT_DUPLICATE = "exact duplicate"
CONFLICTING_DUPLICATE = "conflicting duplicate"
# Row keys a manifest names per quarantine reason: enough to look rows up, bounded for big days.
SAMPLE_KEYS = 5


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
        """How many quarantined rows per check (``column: check``), for manifests and logs.

        Duplicate keys count as ``<key>: exact duplicate`` (copies of a published row) and
        ``<key>: conflicting duplicate`` (rows that disagree, none published), separately.
        """
        counts: dict[str, int] = {}
        for _, label in self._labelled_rows():
            counts[label] = counts.get(label, 0) + 1
        return dict(sorted(counts.items()))

    def reason_summary(self, key: "tuple[str, ...] | list[str]", samples: int = SAMPLE_KEYS) -> dict[str, dict]:
        """Per check (labelled as in :meth:`reason_counts`): its row count and a few row keys.

        ``{"<column>: <check>": {"rows": n, "sample_keys": [{key column: value, ...}, ...]}}``.
        A sample key holds the ``key`` columns as the quarantine partition stores them (the
        source's values, as text; a null as ``None``), so a row can be found there and in the
        source. At most ``samples`` distinct keys, the smallest in sorted order: the same rows
        give the same manifest bytes whatever order they arrived in.
        """
        key = list(key)
        rows_of: dict[str, list[int]] = {}
        for position, label in self._labelled_rows():
            rows_of.setdefault(label, []).append(position)
        keys = list(self.quarantined[key].itertuples(index=False, name=None)) if rows_of and key else []
        summary = {}
        for label in sorted(rows_of):
            distinct = {tuple(_key_text(v) for v in keys[p]) for p in rows_of[label]} if keys else set()
            first = sorted(distinct, key=lambda k: tuple((v is None, v or "") for v in k))[:samples]
            summary[label] = {"rows": len(rows_of[label]), "sample_keys": [dict(zip(key, k)) for k in first]}
        return summary

    def _labelled_rows(self):
        """``(row position, "column: check")`` for every reason of every quarantined row."""
        for position, reasons in enumerate(self.quarantined.get(REASON_COLUMN, [])):
            for reason in str(reasons).split("; "):
                yield position, reason.split(":", 1)[0] + ": " + _reason_kind(reason)


def _key_text(value) -> str | None:
    """A key value as the manifest shows it: text, or ``None`` for a null."""
    import pandas as pd

    return None if pd.isna(value) else str(value)


# What a reason says after "column: ", as counted in manifests. Checked on the start of the text
# first, so a quarantined value that happens to contain "below" or "null" is not miscounted.
_LEADING_KINDS = {"not a valid": "not a", "null in": "null", EXACT_DUPLICATE: "exact duplicate",
                  CONFLICTING_DUPLICATE: "conflicting duplicate"}  # fmt: skip
_CHECK_KINDS = ("below", "above", "not one of", "does not match")


def _reason_kind(reason: str) -> str:
    text = reason.split(": ", 1)[-1]
    for lead, kind in _LEADING_KINDS.items():
        if text.startswith(lead):
            return kind
    # A check's words follow the value it shows: the last one found is the check's own.
    found = max((text.rfind(kind), kind) for kind in _CHECK_KINDS)
    return found[1] if found[0] >= 0 else "invalid"


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


def _mark_duplicates(typed: "pd.DataFrame", key: list[str], reasons: "pd.Series") -> None:
    """Give duplicate keys among otherwise-valid rows their reason, exact copies apart from conflicts.

    Identical copies keep their first occurrence; conflicting versions of one key are all
    quarantined, and the reason names the columns they disagree on.
    """
    clean = reasons == ""
    dup_any = typed[clean].duplicated(key, keep=False)
    if not dup_any.any():
        return
    where = "+".join(key)
    for _, group in typed[clean][dup_any].groupby(key, dropna=False, sort=False):
        if len(group.drop_duplicates()) == 1:
            for idx in group.index[1:]:
                _add(reasons, idx, f"{where}: {EXACT_DUPLICATE} of an earlier row (that copy is kept)")
            continue
        differ = [c for c in group.columns if c not in key and group[c].nunique(dropna=False) > 1]
        for idx in group.index:
            _add(reasons, idx, f"{where}: {CONFLICTING_DUPLICATE}: {len(group)} rows share this key and "
                               f"differ in {', '.join(differ)} (none is kept)")  # fmt: skip


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

    _mark_duplicates(typed, list(table.key), reasons)

    bad = reasons != ""
    valid = typed[~bad].reset_index(drop=True)
    quarantined = frame[bad].copy()
    quarantined = quarantined.astype({c: "string" for c in quarantined.columns})
    quarantined[REASON_COLUMN] = reasons[bad].astype("string")
    return ValidationResult(valid=valid, quarantined=quarantined.reset_index(drop=True))

"""The recgym log schema: columns, validation with actionable errors, and `LogDataset`.

Every simulator in recgym learns from the same table (DESIGN.md, section "Data"): one row
per page view, with the session, the step within it, the slate that was shown and the
item that was clicked (-1 for none), plus optional columns. This module checks such a
table before anyone trains on it and says, for every problem, which column, which rows
and how to fix it. Nothing is dropped silently: `LogDataset.clean` removes bad rows and
returns a `CleanReport` saying how many rows it removed and why.

On disk a `LogDataset` is one Parquet file for the log, whose schema metadata (key
``recgym``) holds the schema version, ``num_items`` and the name of the item table, which
sits beside it as ``<stem>.items.parquet``. Both files are written atomically.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recgym.data.files import atomic_write

SCHEMA_VERSION = 1
METADATA_KEY = b"recgym"
PREVIEW_ROWS = 5


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the log schema: its name, kind (int, float, int_list) and meaning."""

    name: str
    kind: str
    required: bool
    meaning: str


LOG_SCHEMA: tuple[ColumnSpec, ...] = (
    ColumnSpec("session_id", "int", True, "trajectory id"),
    ColumnSpec("user_id", "int", False, "user id, for user-level splits"),
    ColumnSpec("step", "int", True, "position in the session, 0-based"),
    ColumnSpec("slate", "int_list", True, "items shown, in order (the action)"),
    ColumnSpec("candidates", "int_list", False, "pool the slate was chosen from (display set)"),
    ColumnSpec("click", "int", True, "clicked item id, or -1 for none"),
    ColumnSpec("feedback", "int", False, "feedback class (0 skip, 1 click, 2 purchase, ...)"),
    ColumnSpec("reward", "float", False, "reward, e.g. purchase"),
    ColumnSpec("propensity", "float", False, "logging policy's probability of the slate"),
    ColumnSpec("timestamp", "int", False, "seconds"),
)
COLUMN_SPECS: dict[str, ColumnSpec] = {c.name: c for c in LOG_SCHEMA}
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in LOG_SCHEMA if c.required)
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(c.name for c in LOG_SCHEMA if not c.required)
LIST_COLUMNS: tuple[str, ...] = tuple(c.name for c in LOG_SCHEMA if c.kind == "int_list")
ITEM_COLUMNS: tuple[str, ...] = ("slate", "candidates", "click")

_MISSING_FIX = {
    "session_id": "give each trajectory an integer id, e.g. logs['session_id'] = "
    "logs.groupby('user_id').ngroup() if each user is one session",
    "step": "number page views within each session from 0, e.g. logs['step'] = "
    "logs.groupby('session_id').cumcount() after sorting by time",
    "slate": "add the list of item ids shown at each page view; for data without "
    "impressions build display sets with recgym.data.display_sets_by_release or "
    "display_sets_by_time_window",
    "click": "add the clicked item id per row, with -1 where nothing was clicked",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a log: the column, what is wrong, the first bad rows and the fix."""

    check: str
    column: str
    message: str
    rows: tuple[str, ...] = ()
    fix: str = ""
    n_bad: int = 0

    def __str__(self) -> str:
        text = f"column '{self.column}': {self.message}"
        if self.rows:
            shown = len(self.rows)
            more = f" (first {shown} of {self.n_bad:,})" if self.n_bad > shown else ""
            text += f"\n    bad rows{more}: " + "; ".join(self.rows)
        if self.fix:
            text += f"\n    fix: {self.fix}"
        return text


class LogValidationError(ValueError):
    """A log that breaks the recgym schema; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        lines = [f"invalid log{where}: {len(self.problems)} problem(s)"]
        lines += [f"  - {p}" for p in self.problems]
        cleanable = {*_DROPPABLE_CHECKS, *_SECOND_STAGE, "dtype", "step_gaps"}
        if any(p.check in cleanable for p in self.problems):
            lines.append(
                "  (LogDataset.clean(logs) or load_logs(path, clean=True) removes the bad rows "
                "and reports what it removed and why)"
            )
        super().__init__("\n".join(lines))

    @property
    def column(self) -> str:
        """Column of the first problem."""
        return self.problems[0].column

    @property
    def checks(self) -> list[str]:
        """Names of the failed checks, in the order found."""
        return [p.check for p in self.problems]


@dataclass
class CleanReport:
    """What `LogDataset.clean` changed: rows removed per reason, and repairs that kept rows."""

    rows_before: int
    rows_after: int
    removed: dict[str, int] = field(default_factory=dict)
    repaired: list[str] = field(default_factory=list)
    sessions_before: int = 0
    sessions_after: int = 0

    @property
    def n_removed(self) -> int:
        """Total number of rows removed."""
        return self.rows_before - self.rows_after

    def __str__(self) -> str:
        lines = [
            f"cleaned log: kept {self.rows_after:,} of {self.rows_before:,} rows "
            f"({self.n_removed:,} removed), {self.sessions_after:,} of "
            f"{self.sessions_before:,} sessions"
        ]
        lines += [f"  removed {n:,} rows: {reason}" for reason, n in self.removed.items() if n]
        lines += [f"  repaired: {r}" for r in self.repaired]
        return "\n".join(lines)


# Checks whose bad rows `clean` can drop (row-level), with the reason it reports.
_DROPPABLE_CHECKS: dict[str, str] = {
    "nan": "missing value (NaN / None)",
    "mistyped_value": "value of the wrong type",
    "not_integer": "non-integer value in an integer column",
    "empty_slate": "empty slate (nothing shown)",
    "negative_item": "negative item id",
    "item_out_of_range": "item id >= num_items",
    "repeated_item": "item repeated within a slate",
    "click_not_in_slate": "click not in its slate",
    "slate_not_in_candidates": "slate item not in candidates",
    "negative_step": "negative step",
    "negative_feedback": "negative feedback class",
    "nonfinite": "infinite value",
    "propensity_range": "propensity outside (0, 1]",
}
# Checks `clean` resolves after the row-level ones, on what is left.
_SECOND_STAGE = {
    "session_users": "session with more than one user_id (whole session removed)",
    "duplicate_step": "duplicate (session_id, step): later copies removed",
    "slate_length": "slate length differs from the most common length",
}


# ----------------------------------------------------------------------------- helpers


def _fmt_value(value: Any, limit: int = 8) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        seq = list(value)
        body = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in seq[:limit])
        return "[" + body + (", ..." if len(seq) > limit else "") + "]"
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _preview(index: pd.Index, positions: np.ndarray, describe: Callable[[int], str]) -> tuple:
    return tuple(f"row {index[p]!r}: {describe(int(p))}" for p in positions[:PREVIEW_ROWS])


def _row_problem(
    check: str,
    column: str,
    message: str,
    mask: np.ndarray,
    index: pd.Index,
    describe: Callable[[int], str],
    fix: str,
) -> Problem:
    positions = np.flatnonzero(mask)
    n = len(positions)
    return Problem(
        check=check,
        column=column,
        message=f"{n:,} row(s) {message}",
        rows=_preview(index, positions, describe),
        fix=fix,
        n_bad=n,
    )


@dataclass
class _ListColumn:
    """A parsed list column: flat int64 values, per-row lengths and per-row problems."""

    values: np.ndarray
    lengths: np.ndarray
    nan_rows: np.ndarray
    mistyped_rows: np.ndarray
    float_elements: bool

    @property
    def ok(self) -> np.ndarray:
        return ~(self.nan_rows | self.mistyped_rows)

    @cached_property
    def row_of_value(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.lengths)), self.lengths)

    @cached_property
    def matrix(self) -> np.ndarray | None:
        """(rows, k) view of the values when every row is valid with the same length k."""
        n = len(self.lengths)
        if n == 0 or not self.ok.all() or self.lengths.min() != self.lengths.max():
            return None
        return self.values.reshape(n, int(self.lengths[0]))


def _parse_list_cells_slow(cells: np.ndarray) -> _ListColumn:
    n = len(cells)
    nan_rows = np.zeros(n, bool)
    mistyped = np.zeros(n, bool)
    lengths = np.zeros(n, np.int64)
    parts: list[np.ndarray] = []
    float_elements = False
    for i, cell in enumerate(cells):
        if cell is None or (isinstance(cell, float) and np.isnan(cell)):
            nan_rows[i] = True
            continue
        if isinstance(cell, str) or not isinstance(cell, (list, tuple, np.ndarray)):
            mistyped[i] = True
            continue
        try:
            arr = np.asarray(list(cell))
        except (TypeError, ValueError):
            mistyped[i] = True
            continue
        if arr.size == 0:
            continue
        if arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
        elif arr.dtype.kind == "f":
            if np.isnan(arr).any():
                nan_rows[i] = True
                continue
            if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                mistyped[i] = True
                continue
            float_elements = True
            arr = arr.astype(np.int64)
        elif arr.dtype.kind == "O" and any(v is None for v in arr.ravel()):
            nan_rows[i] = True
            continue
        else:
            mistyped[i] = True
            continue
        if arr.ndim != 1:
            mistyped[i] = True
            continue
        lengths[i] = arr.size
        parts.append(arr)
    values = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return _ListColumn(values, lengths, nan_rows, mistyped, float_elements)


def _parse_list_column(series: pd.Series) -> _ListColumn:
    """Parse a list-of-int column quickly through Arrow; fall back to a per-cell scan."""
    n = len(series)
    try:
        if isinstance(series.dtype, pd.ArrowDtype):
            arr = pa.array(series)
        else:
            arr = pa.array(series.to_numpy(dtype=object), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return _parse_list_cells_slow(series.to_numpy(dtype=object))
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        return _parse_list_cells_slow(series.to_numpy(dtype=object))
    vtype = arr.type.value_type
    if not (
        pa.types.is_integer(vtype) or pa.types.is_floating(vtype) or pa.types.is_null(vtype)
    ):
        return _parse_list_cells_slow(series.to_numpy(dtype=object))
    nan_rows = arr.is_null().to_numpy(zero_copy_only=False)
    lengths = arr.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    # flatten() honours slicing offsets and skips values hidden under null cells.
    flat = arr.flatten()
    row_of_value = np.repeat(np.arange(n), lengths)
    mistyped = np.zeros(n, bool)
    float_elements = False
    if pa.types.is_null(vtype):
        values = np.zeros(len(flat), np.float64)
        if len(flat):
            nan_rows[np.unique(row_of_value)] = True
    else:
        valid = flat.is_valid().to_numpy(zero_copy_only=False)
        values = flat.to_numpy(zero_copy_only=False)
        if values.dtype.kind == "f" or not valid.all():
            values = np.asarray(values, dtype=np.float64)
            null_el = ~valid | np.isnan(values)
            nan_rows[row_of_value[null_el]] = True
            bad = ~null_el & (~np.isfinite(values) | (values != np.round(values)))
            mistyped[row_of_value[bad]] = True
            float_elements = pa.types.is_floating(vtype)
    bad_rows = nan_rows | mistyped
    if bad_rows.any():
        keep = ~bad_rows[row_of_value]
        values = values[keep]
        lengths = np.where(bad_rows, 0, lengths)
    if values.dtype.kind == "f":
        values = np.nan_to_num(values).astype(np.int64)
    else:
        values = values.astype(np.int64, copy=False)
    return _ListColumn(values, lengths, nan_rows, mistyped, float_elements)


@dataclass
class _IntColumn:
    values: np.ndarray  # int64, 0 where bad
    nan_rows: np.ndarray
    mistyped_rows: np.ndarray
    not_integer_rows: np.ndarray
    wrong_dtype: bool

    @property
    def ok(self) -> np.ndarray:
        return ~(self.nan_rows | self.mistyped_rows | self.not_integer_rows)


def _parse_int_column(series: pd.Series) -> _IntColumn:
    n = len(series)
    dtype = series.dtype
    if pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        isna = series.isna().to_numpy()
        values = series.fillna(0).to_numpy(dtype=np.int64) if isna.any() else series.to_numpy(
            dtype=np.int64
        )
        z = np.zeros(n, bool)
        return _IntColumn(values, isna, z, z.copy(), wrong_dtype=False)
    if pd.api.types.is_bool_dtype(dtype):
        z = np.zeros(n, bool)
        return _IntColumn(np.zeros(n, np.int64), z, ~z, z.copy(), wrong_dtype=True)
    isna = series.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(dtype):
        numeric = series.to_numpy(dtype=np.float64, na_value=np.nan)
        mistyped = np.zeros(n, bool)
    else:
        numeric = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        mistyped = ~isna & np.isnan(numeric)
    bad = isna | mistyped
    with np.errstate(invalid="ignore"):
        not_int = ~bad & (~np.isfinite(numeric) | (numeric != np.round(numeric)))
    clean = np.where(bad | not_int, 0.0, numeric)
    return _IntColumn(clean.astype(np.int64), isna, mistyped, not_int, wrong_dtype=True)


def _parse_float_column(series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Return (values, nan_rows, mistyped_rows, wrong_dtype)."""
    n = len(series)
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64), np.zeros(n, bool), np.zeros(n, bool), True
    isna = series.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, isna, np.zeros(n, bool), False
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return values, isna, ~isna & np.isnan(values), True


# ----------------------------------------------------------------------------- validation


@dataclass
class _Findings:
    """Everything validation learnt: problems, and per-check bad-row masks for cleaning."""

    problems: list[Problem] = field(default_factory=list)
    row_masks: dict[str, np.ndarray] = field(default_factory=dict)
    structural: bool = False
    int_cols: dict[str, _IntColumn] = field(default_factory=dict)
    float_cols: dict[str, np.ndarray] = field(default_factory=dict)
    list_cols: dict[str, _ListColumn] = field(default_factory=dict)
    num_items: int | None = None

    def flag(self, check: str, mask: np.ndarray) -> None:
        if check in self.row_masks:
            self.row_masks[check] = self.row_masks[check] | mask
        else:
            self.row_masks[check] = mask.copy()


def _items_index(items: pd.DataFrame) -> pd.DataFrame:
    if "item_id" in items.columns:
        items = items.set_index("item_id")
    return items


def _check_items(items: pd.DataFrame, num_items: int | None, f: _Findings) -> int | None:
    """Validate the item table; return the num_items it implies."""
    if not isinstance(items, pd.DataFrame):
        f.problems.append(
            Problem("items_type", "items", f"item table must be a DataFrame, got {type(items)}",
                    fix="pass items=pd.DataFrame(..., index=item ids)")
        )
        f.structural = True
        return num_items
    idx = items.index
    if len(idx) == 0:
        return num_items
    if not pd.api.types.is_integer_dtype(idx.dtype):
        f.problems.append(
            Problem("items_index", "item_id",
                    f"item table index must hold integer item ids, got dtype {idx.dtype}",
                    fix="set an integer 'item_id' column or index (0 .. num_items - 1); keep "
                    "original ids as an ordinary column")
        )
        f.structural = True
        return num_items
    ids = idx.to_numpy(dtype=np.int64)
    bad = []
    if (ids < 0).any():
        bad.append("negative ids")
    if idx.has_duplicates:
        bad.append("duplicate ids")
    if num_items is not None and (ids >= num_items).any():
        bad.append(f"ids >= num_items ({num_items})")
    if bad:
        f.problems.append(
            Problem("items_index", "item_id", "item table has " + ", ".join(bad),
                    rows=tuple(f"item {v}" for v in ids[(ids < 0) | idx.duplicated()][:5]),
                    fix="item ids must be unique integers in 0 .. num_items - 1")
        )
        f.structural = True
    return int(ids.max()) + 1 if num_items is None else num_items


def _find_problems(
    logs: pd.DataFrame, items: pd.DataFrame | None, num_items: int | None
) -> _Findings:
    f = _Findings()
    index = logs.index
    n = len(logs)
    if num_items is not None and (not isinstance(num_items, (int, np.integer)) or num_items < 1):
        f.problems.append(Problem("num_items", "num_items",
                                  f"num_items must be a positive int, got {num_items!r}",
                                  fix="pass the size of the item catalogue"))
        f.structural = True
        num_items = None
    if items is not None:
        num_items = _check_items(items, num_items, f)
    if n == 0:
        f.problems.append(Problem("empty", "session_id", "the log has no rows",
                                  fix="pass a log with at least one page view"))
        f.structural = True
        return f
    if logs.columns.has_duplicates:
        dup = sorted(set(logs.columns[logs.columns.duplicated()]))
        f.problems.append(Problem("duplicate_column", str(dup[0]), f"duplicate column names {dup}",
                                  fix="rename or drop the duplicate columns"))
        f.structural = True
        return f
    for name in REQUIRED_COLUMNS:
        if name not in logs.columns:
            f.problems.append(Problem("missing_column", name,
                                      f"required column is missing ({COLUMN_SPECS[name].meaning})",
                                      fix=_MISSING_FIX[name]))
            f.structural = True

    # -- scalar integer columns
    for spec in LOG_SCHEMA:
        if spec.name not in logs.columns:
            continue
        col = logs[spec.name]
        if spec.kind == "int":
            parsed = _parse_int_column(col)
            f.int_cols[spec.name] = parsed

            def show(p: int, c: pd.Series = col, name: str = spec.name) -> str:
                return f"{name}={_fmt_value(c.iloc[p])}"

            if parsed.nan_rows.any():
                fill = "-1 for no click" if spec.name == "click" else "a value"
                f.problems.append(_row_problem(
                    "nan", spec.name, "are missing (NaN/None)", parsed.nan_rows, index, show,
                    f"fill with {fill} or drop those rows"))
                f.flag("nan", parsed.nan_rows)
            if parsed.mistyped_rows.any():
                f.problems.append(_row_problem(
                    "mistyped_value", spec.name, "are not numbers", parsed.mistyped_rows, index,
                    show, f"'{spec.name}' holds integers; convert or drop those rows"))
                f.flag("mistyped_value", parsed.mistyped_rows)
            if parsed.not_integer_rows.any():
                f.problems.append(_row_problem(
                    "not_integer", spec.name, "are not whole numbers", parsed.not_integer_rows,
                    index, show, f"'{spec.name}' holds integers; round or drop those rows"))
                f.flag("not_integer", parsed.not_integer_rows)
            if parsed.wrong_dtype and parsed.ok.all():
                f.problems.append(Problem(
                    "dtype", spec.name, f"has dtype {col.dtype}, expected an integer dtype",
                    fix=f"logs['{spec.name}'] = logs['{spec.name}'].astype('int64')"))
            elif parsed.wrong_dtype and pd.api.types.is_bool_dtype(col.dtype):
                f.problems.append(Problem(
                    "dtype", spec.name, "is boolean, expected integers",
                    fix=("store the clicked item id (or -1), not a flag" if spec.name == "click"
                         else f"logs['{spec.name}'] = logs['{spec.name}'].astype('int64')")))
                f.structural = True
        elif spec.kind == "float":
            values, nan_rows, mistyped, wrong = _parse_float_column(col)
            f.float_cols[spec.name] = values

            def showf(p: int, c: pd.Series = col, name: str = spec.name) -> str:
                return f"{name}={_fmt_value(c.iloc[p])}"

            if nan_rows.any():
                f.problems.append(_row_problem("nan", spec.name, "are missing (NaN/None)",
                                               nan_rows, index, showf,
                                               "fill the missing values or drop those rows"))
                f.flag("nan", nan_rows)
            if mistyped.any():
                f.problems.append(_row_problem("mistyped_value", spec.name, "are not numbers",
                                               mistyped, index, showf,
                                               f"'{spec.name}' holds floats; convert or drop"))
                f.flag("mistyped_value", mistyped)
            with np.errstate(invalid="ignore"):
                inf = np.isinf(values)
            if inf.any():
                f.problems.append(_row_problem("nonfinite", spec.name, "are infinite", inf,
                                               index, showf, "replace or drop those rows"))
                f.flag("nonfinite", inf)
            if wrong and not (nan_rows.any() or mistyped.any()):
                f.problems.append(Problem(
                    "dtype", spec.name, f"has dtype {col.dtype}, expected float",
                    fix=f"logs['{spec.name}'] = logs['{spec.name}'].astype('float64')"))
        else:
            parsed_l = _parse_list_column(col)
            f.list_cols[spec.name] = parsed_l

            def showl(p: int, c: pd.Series = col, name: str = spec.name) -> str:
                return f"{name}={_fmt_value(c.iloc[p])}"

            if parsed_l.nan_rows.any():
                f.problems.append(_row_problem(
                    "nan", spec.name, "are missing or hold NaN/None items", parsed_l.nan_rows,
                    index, showl, "every row needs a list of integer item ids; drop those rows"))
                f.flag("nan", parsed_l.nan_rows)
            if parsed_l.mistyped_rows.any():
                f.problems.append(_row_problem(
                    "mistyped_value", spec.name, "are not lists of integer item ids",
                    parsed_l.mistyped_rows, index, showl,
                    f"store '{spec.name}' as a list (or numpy array) of ints per row, "
                    "e.g. [3, 17, 42]; strings like '3 17 42' are parsed only by load_logs on CSV"))
                f.flag("mistyped_value", parsed_l.mistyped_rows)
            if parsed_l.float_elements and parsed_l.ok.all():
                f.problems.append(Problem(
                    "dtype", spec.name, "holds floats, expected integer item ids",
                    fix=f"logs['{spec.name}'] = logs['{spec.name}'].map(lambda s: "
                    "np.asarray(s, dtype='int64'))"))
            empty = parsed_l.ok & (parsed_l.lengths == 0)
            if empty.any():
                f.problems.append(_row_problem(
                    "empty_slate", spec.name, "are empty (nothing shown)", empty, index, showl,
                    "a page view must show at least one item; drop those rows"))
                f.flag("empty_slate", empty)

    if f.structural:
        return f
    _check_values(logs, f, num_items)
    return f


def _check_values(logs: pd.DataFrame, f: _Findings, num_items: int | None) -> None:
    """Checks across columns: item ids, clicks in slates, steps, sessions, propensities."""
    index = logs.index
    n = len(logs)
    slate = f.list_cols["slate"]
    click = f.int_cols["click"]

    # -- item ids: negative and out of range
    if num_items is None:
        highest = -1
        for lc in f.list_cols.values():
            if len(lc.values):
                highest = max(highest, int(lc.values.max()))
        if click.ok.any():
            highest = max(highest, int(click.values[click.ok].max()))
        num_items = highest + 1 if highest >= 0 else None
    f.num_items = num_items
    for name in ITEM_COLUMNS:
        if name not in logs.columns:
            continue
        col = logs[name]

        def show(p: int, c: pd.Series = col, nm: str = name) -> str:
            return f"{nm}={_fmt_value(c.iloc[p])}"

        if name == "click":
            neg = click.ok & (click.values < -1)
            high = click.ok & (click.values >= num_items) if num_items else np.zeros(n, bool)
        else:
            lc = f.list_cols[name]
            rows = lc.row_of_value
            neg = np.zeros(n, bool)
            neg[rows[lc.values < 0]] = True
            high = np.zeros(n, bool)
            if num_items:
                high[rows[lc.values >= num_items]] = True
        if neg.any():
            what = "have a click below -1 (-1 means no click)" if name == "click" else (
                "contain negative item ids")
            f.problems.append(_row_problem(
                "negative_item", name, what, neg, index, show,
                "item ids are 0 .. num_items - 1 (remap raw ids, e.g. with pd.factorize); "
                "use -1 in 'click' for no click"))
            f.flag("negative_item", neg)
        if high.any():
            f.problems.append(_row_problem(
                "item_out_of_range", name, f"contain item ids >= num_items ({num_items})", high,
                index, show,
                "pass the right num_items / item table, or remap ids to 0 .. num_items - 1"))
            f.flag("item_out_of_range", high)

    # -- slates: equal length, no repeats, click inside, slate within candidates
    ok = slate.ok & (slate.lengths > 0)
    if ok.any():
        lens = slate.lengths[ok]
        values, counts = np.unique(lens, return_counts=True)
        if len(values) > 1:
            mode = int(values[np.argmax(counts)])
            bad = ok & (slate.lengths != mode)
            pairs = zip(values, counts, strict=True)
            dist = ", ".join(f"{int(v)}: {int(c):,} rows" for v, c in pairs)
            f.problems.append(_row_problem(
                "slate_length", "slate", f"have a slate length other than the most common "
                f"({mode}); lengths found: {dist}", bad, index,
                lambda p: f"len(slate)={int(slate.lengths[p])}",
                "all slates must have the same length k: pad or truncate them upstream, or "
                "split the log by slate length"))
            f.flag("slate_length", bad)
    rows = slate.row_of_value
    mat = slate.matrix
    if len(slate.values):
        if mat is not None:
            srt = np.sort(mat, axis=1)
            rep = (srt[:, 1:] == srt[:, :-1]).any(axis=1)
        else:
            shifted = slate.values - slate.values.min()
            width = int(shifted.max()) + 1
            skey = np.sort(rows.astype(np.int64) * width + shifted)
            dup_keys = skey[1:][skey[1:] == skey[:-1]]
            rep = np.zeros(n, bool)
            rep[(dup_keys // width).astype(np.int64)] = True
        if rep.any():
            f.problems.append(_row_problem(
                "repeated_item", "slate", "show the same item twice", rep, index,
                lambda p: f"slate={_fmt_value(logs['slate'].iloc[p])}",
                "each item is shown once per page view; de-duplicate the slates"))
            f.flag("repeated_item", rep)
        if mat is not None:
            hit = (mat == click.values[:, None]).any(axis=1)
        else:
            hit = np.zeros(n, bool)
            hit[rows[slate.values == np.repeat(click.values, slate.lengths)]] = True
        bad = ok & click.ok & (click.values != -1) & ~hit
        if bad.any():
            f.problems.append(_row_problem(
                "click_not_in_slate", "click", "have a click that is not in their slate", bad,
                index,
                lambda p: f"click={int(click.values[p])}, "
                f"slate={_fmt_value(logs['slate'].iloc[p])}",
                "a user can only click an item that was shown: set click to -1 or add the "
                "clicked item to the slate"))
            f.flag("click_not_in_slate", bad)
    if "candidates" in f.list_cols and len(slate.values):
        cand = f.list_cols["candidates"]
        lo = min(slate.values.min(), cand.values.min() if len(cand.values) else 0)
        width = int(max(slate.values.max(), cand.values.max() if len(cand.values) else 0) - lo) + 1
        ckey = np.sort(cand.row_of_value.astype(np.int64) * width + (cand.values - lo))
        skey = rows.astype(np.int64) * width + (slate.values - lo)
        pos = np.searchsorted(ckey, skey)
        found = (pos < len(ckey)) & (ckey[np.minimum(pos, len(ckey) - 1)] == skey)
        bad = np.zeros(n, bool)
        bad[rows[~found]] = True
        bad &= cand.ok
        if bad.any():
            f.problems.append(_row_problem(
                "slate_not_in_candidates", "candidates", "do not contain every item of the "
                "slate", bad, index,
                lambda p: f"slate={_fmt_value(logs['slate'].iloc[p])}, "
                f"candidates={_fmt_value(logs['candidates'].iloc[p])}",
                "candidates is the pool the slate was drawn from: include the slate's items"))
            f.flag("slate_not_in_candidates", bad)

    # -- steps and sessions
    sess = f.int_cols["session_id"]
    step = f.int_cols["step"]
    neg = step.ok & (step.values < 0)
    if neg.any():
        f.problems.append(_row_problem("negative_step", "step", "have a negative step", neg,
                                       index, lambda p: f"step={int(step.values[p])}",
                                       "steps are 0-based positions within the session"))
        f.flag("negative_step", neg)
    good = sess.ok & step.ok & ~neg
    pair = pd.DataFrame({"s": sess.values, "t": step.values})
    dup = good & pair.duplicated(keep=False).to_numpy()
    if dup.any():
        f.problems.append(_row_problem(
            "duplicate_step", "step", "share their (session_id, step) with another row", dup,
            index, lambda p: f"session_id={int(sess.values[p])}, step={int(step.values[p])}",
            "each page view of a session needs its own step; renumber with "
            "logs.groupby('session_id').cumcount() or drop the duplicates"))
        f.flag("duplicate_step", dup & pair.duplicated(keep="first").to_numpy())
    if good.any() and not dup.any():
        g = pair[good].groupby("s")["t"].agg(["min", "max", "size"])
        gaps = g[(g["min"] != 0) | (g["max"] != g["size"] - 1)]
        if len(gaps):
            bad_sessions = gaps.index.to_numpy()
            preview = tuple(
                f"session {int(s)}: steps {int(r['min'])}..{int(r['max'])} for {int(r['size'])} "
                "rows" for s, r in gaps.head(PREVIEW_ROWS).iterrows()
            )
            f.problems.append(Problem(
                "step_gaps", "step", f"{len(gaps):,} session(s) do not number their steps "
                "0, 1, ..., n-1 (a page view is missing, or steps start elsewhere)",
                rows=preview, n_bad=len(gaps),
                fix="renumber with logs['step'] = logs.sort_values(['session_id', 'step'])"
                ".groupby('session_id').cumcount(), or LogDataset.clean(logs)"))
            f.row_masks["step_gaps"] = np.isin(sess.values, bad_sessions) & good
    if "user_id" in f.int_cols:
        user = f.int_cols["user_id"]
        both = sess.ok & user.ok
        nu = pd.DataFrame({"s": sess.values[both], "u": user.values[both]}).groupby("s")[
            "u"].nunique()
        multi = nu[nu > 1].index.to_numpy()
        if len(multi):
            bad = both & np.isin(sess.values, multi)
            f.problems.append(_row_problem(
                "session_users", "user_id", f"belong to {len(multi):,} session(s) with more "
                "than one user_id", bad, index,
                lambda p: f"session_id={int(sess.values[p])}, user_id={int(user.values[p])}",
                "a session belongs to one user: give each user's trajectory its own "
                "session_id"))
            f.flag("session_users", bad)

    # -- optional columns' ranges
    if "propensity" in f.float_cols:
        prop = f.float_cols["propensity"]
        with np.errstate(invalid="ignore"):
            bad = np.isfinite(prop) & ~((prop > 0) & (prop <= 1))
        if bad.any():
            f.problems.append(_row_problem(
                "propensity_range", "propensity", "are outside (0, 1]", bad, index,
                lambda p: f"propensity={float(prop[p])!r}",
                "propensity is the logging policy's probability of the slate: a probability "
                "in (0, 1] (a 0 would make importance weights infinite)"))
            f.flag("propensity_range", bad)
    if "feedback" in f.int_cols:
        fb = f.int_cols["feedback"]
        bad = fb.ok & (fb.values < 0)
        if bad.any():
            f.problems.append(_row_problem(
                "negative_feedback", "feedback", "have a negative feedback class", bad, index,
                lambda p: f"feedback={int(fb.values[p])}",
                "feedback classes are 0 (skip), 1 (click), 2 (purchase), ..."))
            f.flag("negative_feedback", bad)


def validate_logs(
    logs: pd.DataFrame,
    items: pd.DataFrame | None = None,
    num_items: int | None = None,
    *,
    source: str | None = None,
) -> None:
    """Raise `LogValidationError` listing every schema problem of `logs`; return if valid."""
    if not isinstance(logs, pd.DataFrame):
        raise TypeError(f"logs must be a pandas DataFrame, got {type(logs).__name__}")
    f = _find_problems(logs, None if items is None else _items_index(items), num_items)
    if f.problems:
        raise LogValidationError(f.problems, source)


# ----------------------------------------------------------------------------- canonical form


def _canonical_list(lc: _ListColumn) -> pd.Series:
    offsets = np.concatenate([[0], np.cumsum(lc.lengths)])
    out = np.empty(len(lc.lengths), dtype=object)
    values = lc.values
    for i in range(len(out)):  # views into one buffer: no per-row copy
        out[i] = values[offsets[i]:offsets[i + 1]]
    return pd.Series(out, dtype=object)


def _canonicalize(logs: pd.DataFrame, f: _Findings) -> pd.DataFrame:
    """Return a copy with RangeIndex, int64 ints, float64 floats and int64-array lists."""
    out = logs.reset_index(drop=True).copy(deep=False)
    for name, ic in f.int_cols.items():
        out[name] = ic.values
    for name, values in f.float_cols.items():
        out[name] = values
    for name, lc in f.list_cols.items():
        out[name] = _canonical_list(lc)
    return out


# ----------------------------------------------------------------------------- LogDataset


class LogDataset:
    """An interaction log (one row per page view) plus an optional item table.

    Construction validates the log and raises `LogValidationError` naming every problem.
    The stored log has a fresh RangeIndex, int64 integer columns, float64 float columns and
    ``slate`` / ``candidates`` as object columns holding int64 numpy arrays; extra columns
    are kept as they are.

    Args:
        logs: the log, one row per page view (see `LOG_SCHEMA`).
        items: item table indexed by item id (or with an ``item_id`` column), holding
            feature columns or embedding columns.
        num_items: size of the item catalogue; defaults to the item table's highest id + 1,
            else the log's highest item id + 1.
    """

    def __init__(
        self,
        logs: pd.DataFrame,
        items: pd.DataFrame | None = None,
        num_items: int | None = None,
    ) -> None:
        if not isinstance(logs, pd.DataFrame):
            raise TypeError(f"logs must be a pandas DataFrame, got {type(logs).__name__}")
        items = None if items is None else _items_index(items)
        f = _find_problems(logs, items, num_items)
        if f.problems:
            raise LogValidationError(f.problems)
        self.logs: pd.DataFrame = _canonicalize(logs, f)
        if items is not None:
            items = items.copy()
            items.index = items.index.astype(np.int64)
            items.index.name = "item_id"
            items = items.sort_index()
        self.items: pd.DataFrame | None = items
        self.num_items: int = int(num_items if num_items is not None else f.num_items or 0)
        self.clean_report: CleanReport | None = None

    # -- summary properties
    def __len__(self) -> int:
        return len(self.logs)

    def __repr__(self) -> str:
        return (
            f"LogDataset({len(self.logs):,} page views, {self.num_sessions:,} sessions, "
            f"{self.num_items:,} items, slate size {self.slate_size})"
        )

    @property
    def num_sessions(self) -> int:
        """Number of distinct sessions."""
        return int(self.logs["session_id"].nunique())

    @property
    def slate_size(self) -> int:
        """The common slate length k."""
        return int(len(self.logs["slate"].iat[0]))

    def slates(self, column: str = "slate") -> np.ndarray:
        """Return the slates (or candidates) as an int64 array of shape (rows, k)."""
        return np.stack(self.logs[column].to_numpy()) if len(self.logs) else np.zeros((0, 0), int)

    def equals(self, other: LogDataset) -> bool:
        """Whether two datasets hold equal logs, item tables and num_items."""
        try:
            pd.testing.assert_frame_equal(self.logs, other.logs)
            if (self.items is None) != (other.items is None):
                return False
            if self.items is not None:
                pd.testing.assert_frame_equal(self.items, other.items)
        except AssertionError:
            return False
        return self.num_items == other.num_items

    def with_logs(self, logs: pd.DataFrame) -> LogDataset:
        """A new dataset with other rows (e.g. a split), the same items and num_items."""
        return LogDataset(logs, self.items, self.num_items)

    # -- cleaning
    @classmethod
    def clean(
        cls,
        logs: pd.DataFrame,
        items: pd.DataFrame | None = None,
        num_items: int | None = None,
    ) -> tuple[LogDataset, CleanReport]:
        """Drop the rows that break the schema and repair what can be repaired.

        Returns the valid dataset and a `CleanReport` that says how many rows were removed
        for each reason, and which repairs (dtype casts, step renumbering) kept rows.
        Structural problems (a missing column, a boolean click column) cannot be cleaned
        and raise `LogValidationError`.
        """
        if not isinstance(logs, pd.DataFrame):
            raise TypeError(f"logs must be a pandas DataFrame, got {type(logs).__name__}")
        items_i = None if items is None else _items_index(items)
        f = _find_problems(logs, items_i, num_items)
        if f.structural:
            raise LogValidationError([p for p in f.problems if p.check not in _DROPPABLE_CHECKS])
        n0 = len(logs)
        sessions0 = int(logs["session_id"].nunique())
        report = CleanReport(rows_before=n0, rows_after=n0, sessions_before=sessions0)
        keep = np.ones(n0, bool)
        for check, reason in _DROPPABLE_CHECKS.items():
            mask = f.row_masks.get(check)
            if mask is not None:
                newly = keep & mask
                if newly.any():
                    report.removed[reason] = int(newly.sum())
                    keep &= ~mask
        current = logs.iloc[np.flatnonzero(keep)] if not keep.all() else logs
        if len(current):
            current = _clean_second_stage(current, items_i, num_items, report)
        repaired_dtypes = [p.column for p in f.problems if p.check == "dtype"]
        if repaired_dtypes:
            report.repaired.append(f"cast {', '.join(repaired_dtypes)} to the schema dtype")
        if len(current) == 0:
            raise LogValidationError(
                [Problem("empty", "session_id", "no valid rows are left after cleaning",
                         fix="look at the problems in a plain LogDataset(logs) error")]
            )
        f2 = _find_problems(current, items_i, num_items)
        if f2.problems:  # only dtype and step problems can be left: repair them
            current = _canonicalize(current, f2)
            current = _renumber_steps(current, report)
        ds = cls(current, items_i, num_items)
        report.rows_after = len(ds.logs)
        report.sessions_after = ds.num_sessions
        ds.clean_report = report
        return ds, report

    # -- Parquet I/O
    def save(self, path: str | os.PathLike) -> Path:
        """Write the log to Parquet (and the item table beside it), atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        items_name = None
        if self.items is not None:
            items_name = _items_path(path).name
            _atomic_write_table(pa.Table.from_pandas(self.items, preserve_index=True),
                                _items_path(path))
        table = pa.Table.from_pandas(self.logs, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[METADATA_KEY] = json.dumps(
            {"schema_version": SCHEMA_VERSION, "num_items": self.num_items, "items": items_name}
        ).encode()
        _atomic_write_table(table.replace_schema_metadata(meta), path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, clean: bool = False) -> LogDataset:
        """Read a log written by `save` (or any Parquet / CSV log) and validate it."""
        return load_logs(path, clean=clean)


def _renumber_steps(logs: pd.DataFrame, report: CleanReport) -> pd.DataFrame:
    order = np.lexsort((logs["step"].to_numpy(), logs["session_id"].to_numpy()))
    sorted_sessions = logs["session_id"].to_numpy()[order]
    new_sorted = pd.Series(sorted_sessions).groupby(sorted_sessions).cumcount().to_numpy()
    new = np.empty(len(logs), np.int64)
    new[order] = new_sorted
    changed = new != logs["step"].to_numpy()
    if changed.any():
        n_sess = logs.loc[changed, "session_id"].nunique()
        report.repaired.append(
            f"renumbered steps to 0..n-1 in {n_sess:,} session(s) (order kept) after rows "
            "were removed or steps had gaps"
        )
        logs = logs.copy()
        logs["step"] = new
    return logs


def _clean_second_stage(
    logs: pd.DataFrame, items: pd.DataFrame | None, num_items: int | None, report: CleanReport
) -> pd.DataFrame:
    f = _find_problems(logs, items, num_items)
    keep = np.ones(len(logs), bool)
    for check, reason in _SECOND_STAGE.items():
        mask = f.row_masks.get(check)
        if mask is not None:
            newly = keep & mask
            if newly.any():
                report.removed[reason] = int(newly.sum())
                keep &= ~mask
    return logs.iloc[np.flatnonzero(keep)] if not keep.all() else logs


def _items_path(path: Path) -> Path:
    name = path.name[: -len(".parquet")] if path.name.endswith(".parquet") else path.name
    return path.with_name(name + ".items.parquet")


def _atomic_write_table(table: pa.Table, path: Path) -> None:
    with atomic_write(path) as temporary:
        pq.write_table(table, temporary)


# ----------------------------------------------------------------------------- loading

_LIST_SPLIT = re.compile(r"[\s,;|]+")


def _parse_list_string(cell: Any) -> Any:
    """'[1, 2, 3]', '1 2 3' or '1|2|3' -> [1, 2, 3]; anything unparsable is returned as is."""
    if not isinstance(cell, str):
        return cell
    body = cell.strip().strip("[]()").strip()
    if not body:
        return []
    try:
        return [int(tok) for tok in _LIST_SPLIT.split(body) if tok]
    except ValueError:
        return cell


def read_log_frame(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """Read a log table from Parquet or CSV without validating; return it and its metadata."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no log file at {path}")
    suffix = "".join(path.suffixes[-2:]).lower()
    meta: dict = {}
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as err:
            raise ValueError(f"{path} is not a readable Parquet file: {err}") from err
        raw = (table.schema.metadata or {}).get(METADATA_KEY)
        if raw:
            meta = json.loads(raw)
        return table.to_pandas(), meta
    if suffix.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
        sep = "\t" if ".tsv" in suffix else ","
        frame = pd.read_csv(path, sep=sep)
        for name in LIST_COLUMNS:
            if name in frame.columns and not pd.api.types.is_numeric_dtype(frame[name].dtype):
                frame[name] = frame[name].astype(object).map(_parse_list_string)
        return frame, meta
    raise ValueError(
        f"cannot tell the format of {path}: use a .parquet file (LogDataset.save writes one) "
        "or a .csv / .tsv file with list columns written as '[1, 2, 3]' or '1 2 3'"
    )


def load_logs(
    path: str | os.PathLike, *, num_items: int | None = None, clean: bool = False
) -> LogDataset:
    """Load and validate a log from Parquet (as written by `LogDataset.save`) or CSV.

    Args:
        path: ``.parquet`` file, or ``.csv`` / ``.tsv`` whose list columns are written as
            ``"[1, 2, 3]"``, ``"1 2 3"`` or ``"1|2|3"``.
        num_items: catalogue size; defaults to the saved value, else it is inferred.
        clean: drop bad rows instead of raising; the `CleanReport` is attached as
            ``dataset.clean_report`` and issued as a warning when anything was removed.

    Raises:
        LogValidationError: the log breaks the schema (and ``clean`` is False).
    """
    path = Path(path).expanduser()
    frame, meta = read_log_frame(path)
    if num_items is None:
        num_items = meta.get("num_items")
    items = None
    if meta.get("items"):
        items_file = path.with_name(meta["items"])
        if not items_file.exists():
            raise FileNotFoundError(
                f"{path} refers to its item table {items_file.name}, which is missing; copy "
                "it next to the log (LogDataset.save writes both)"
            )
        items = pq.read_table(items_file).to_pandas()
    if clean:
        ds, report = LogDataset.clean(frame, items, num_items)
        if report.n_removed or report.repaired:
            warnings.warn(f"{path}: {report}", stacklevel=2)
        return ds
    try:
        return LogDataset(frame, items, num_items)
    except LogValidationError as err:
        raise LogValidationError(err.problems, source=str(path)) from None

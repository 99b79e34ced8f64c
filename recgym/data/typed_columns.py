"""Log columns parsed into numpy arrays, with per-row masks of missing and mistyped values.

Validation (`checks`) and canonicalisation (`dataset`) both need a column's values as
plain int64 / float64 arrays and to know which rows could not be read as such. Parsing
never raises: a bad cell is marked in ``nan_rows`` or ``mistyped_rows`` and stored as 0.
List columns go through Arrow in one pass when they can, and fall back to a per-cell scan
when Arrow cannot type them (mixed cells, strings, nested lists).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa


@dataclass
class IntColumn:
    """An integer column: int64 values (0 where bad) and which rows are bad, and how."""

    values: np.ndarray
    nan_rows: np.ndarray
    mistyped_rows: np.ndarray
    not_integer_rows: np.ndarray
    wrong_dtype: bool

    @property
    def valid_rows(self) -> np.ndarray:
        """Rows holding a whole number."""
        return ~(self.nan_rows | self.mistyped_rows | self.not_integer_rows)


@dataclass
class FloatColumn:
    """A float column: float64 values (NaN where missing or unreadable) and the bad rows."""

    values: np.ndarray
    nan_rows: np.ndarray
    mistyped_rows: np.ndarray
    wrong_dtype: bool

    @property
    def valid_rows(self) -> np.ndarray:
        """Rows holding a number (possibly infinite)."""
        return ~(self.nan_rows | self.mistyped_rows)


@dataclass
class ListColumn:
    """A list-of-item-ids column: all values flat (int64), per-row lengths and the bad rows.

    Bad rows have length 0 and contribute no values.
    """

    values: np.ndarray
    lengths: np.ndarray
    nan_rows: np.ndarray
    mistyped_rows: np.ndarray
    float_elements: bool

    @property
    def valid_rows(self) -> np.ndarray:
        """Rows holding a list of whole numbers."""
        return ~(self.nan_rows | self.mistyped_rows)

    @cached_property
    def row_of_value(self) -> np.ndarray:
        """Row of each entry of `values`."""
        return np.repeat(np.arange(len(self.lengths)), self.lengths)

    @property
    def nonempty_rows(self) -> np.ndarray:
        """Valid rows holding at least one item."""
        return self.valid_rows & (self.lengths > 0)

    def rows_where(self, value_mask: np.ndarray) -> np.ndarray:
        """Bool mask of the rows holding at least one value selected by `value_mask`."""
        rows = np.zeros(len(self.lengths), bool)
        rows[self.row_of_value[value_mask]] = True
        return rows

    @cached_property
    def matrix(self) -> np.ndarray | None:
        """(rows, k) view of the values when every row is valid with the same length k."""
        n_rows = len(self.lengths)
        if n_rows == 0 or not self.valid_rows.all() or self.lengths.min() != self.lengths.max():
            return None
        return self.values.reshape(n_rows, int(self.lengths[0]))

    def cells(self) -> pd.Series:
        """One int64 array per row, as views into `values` (no per-row copy)."""
        offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        cells = np.empty(len(self.lengths), dtype=object)
        for row in range(len(cells)):
            cells[row] = self.values[offsets[row]:offsets[row + 1]]
        return pd.Series(cells, dtype=object)


TypedColumn = IntColumn | FloatColumn | ListColumn


def parse_int_column(series: pd.Series) -> IntColumn:
    """Read an integer column; floats holding whole numbers and numeric strings are read too."""
    n_rows = len(series)
    dtype = series.dtype
    no_rows = np.zeros(n_rows, bool)
    if pd.api.types.is_bool_dtype(dtype):
        return IntColumn(np.zeros(n_rows, np.int64), no_rows, ~no_rows, no_rows.copy(),
                         wrong_dtype=True)
    missing = series.isna().to_numpy()
    if pd.api.types.is_integer_dtype(dtype):
        values = (series.fillna(0) if missing.any() else series).to_numpy(dtype=np.int64)
        return IntColumn(values, missing, no_rows, no_rows.copy(), wrong_dtype=False)
    if pd.api.types.is_numeric_dtype(dtype):
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
        mistyped = no_rows
    else:
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64,
                                                                  na_value=np.nan)
        mistyped = ~missing & np.isnan(numbers)
    unreadable = missing | mistyped
    with np.errstate(invalid="ignore"):
        not_integer = ~unreadable & (~np.isfinite(numbers) | (numbers != np.round(numbers)))
    values = np.where(unreadable | not_integer, 0.0, numbers).astype(np.int64)
    return IntColumn(values, missing, mistyped, not_integer, wrong_dtype=True)


def parse_float_column(series: pd.Series) -> FloatColumn:
    """Read a float column; booleans and numeric strings are read but flagged as wrong dtype."""
    n_rows = len(series)
    if pd.api.types.is_bool_dtype(series.dtype):
        no_rows = np.zeros(n_rows, bool)
        return FloatColumn(series.to_numpy(dtype=np.float64), no_rows, no_rows.copy(),
                           wrong_dtype=True)
    missing = series.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return FloatColumn(values, missing, np.zeros(n_rows, bool), wrong_dtype=False)
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return FloatColumn(values, missing, ~missing & np.isnan(values), wrong_dtype=True)


def parse_list_column(series: pd.Series) -> ListColumn:
    """Read a list-of-int column through Arrow in one pass; fall back to a per-cell scan."""
    try:
        if isinstance(series.dtype, pd.ArrowDtype):
            array = pa.array(series)
        else:
            array = pa.array(series.to_numpy(dtype=object), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return _parse_list_cells(series)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
        return _parse_list_cells(series)
    element_type = array.type.value_type
    if not (pa.types.is_integer(element_type) or pa.types.is_floating(element_type)
            or pa.types.is_null(element_type)):
        return _parse_list_cells(series)
    return _parse_arrow_lists(array, element_type)


def _parse_arrow_lists(array: pa.Array, element_type: pa.DataType) -> ListColumn:
    n_rows = len(array)
    nan_rows = array.is_null().to_numpy(zero_copy_only=False)
    lengths = array.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    # flatten() honours slicing offsets and skips values hidden under null cells.
    elements = array.flatten()
    row_of_value = np.repeat(np.arange(n_rows), lengths)
    mistyped_rows = np.zeros(n_rows, bool)
    float_elements = False
    if pa.types.is_null(element_type):
        values = np.zeros(len(elements), np.float64)
        if len(elements):
            nan_rows[np.unique(row_of_value)] = True
    else:
        present = elements.is_valid().to_numpy(zero_copy_only=False)
        values = elements.to_numpy(zero_copy_only=False)
        if values.dtype.kind == "f" or not present.all():
            values = np.asarray(values, dtype=np.float64)
            missing_element = ~present | np.isnan(values)
            nan_rows[row_of_value[missing_element]] = True
            fractional = ~missing_element & (~np.isfinite(values) | (values != np.round(values)))
            mistyped_rows[row_of_value[fractional]] = True
            float_elements = pa.types.is_floating(element_type)
    bad_rows = nan_rows | mistyped_rows
    if bad_rows.any():
        values = values[~bad_rows[row_of_value]]
        lengths = np.where(bad_rows, 0, lengths)
    if values.dtype.kind == "f":
        values = np.nan_to_num(values).astype(np.int64)
    else:
        values = values.astype(np.int64, copy=False)
    return ListColumn(values, lengths, nan_rows, mistyped_rows, float_elements)


def _parse_list_cells(series: pd.Series) -> ListColumn:
    """The per-cell scan, for columns Arrow cannot type."""
    cells = series.to_numpy(dtype=object)
    n_rows = len(cells)
    nan_rows = np.zeros(n_rows, bool)
    mistyped_rows = np.zeros(n_rows, bool)
    lengths = np.zeros(n_rows, np.int64)
    parts: list[np.ndarray] = []
    float_elements = False
    for row, cell in enumerate(cells):
        if cell is None or (isinstance(cell, float) and np.isnan(cell)):
            nan_rows[row] = True
            continue
        if isinstance(cell, str) or not isinstance(cell, (list, tuple, np.ndarray)):
            mistyped_rows[row] = True
            continue
        try:
            items = np.asarray(list(cell))
        except (TypeError, ValueError):
            mistyped_rows[row] = True
            continue
        if items.size == 0:
            continue
        if items.dtype.kind in "iu":
            items = items.astype(np.int64)
        elif items.dtype.kind == "f":
            if np.isnan(items).any():
                nan_rows[row] = True
                continue
            if not np.all(np.isfinite(items)) or np.any(items != np.round(items)):
                mistyped_rows[row] = True
                continue
            float_elements = True
            items = items.astype(np.int64)
        elif items.dtype.kind == "O" and any(item is None for item in items.ravel()):
            nan_rows[row] = True
            continue
        else:
            mistyped_rows[row] = True
            continue
        if items.ndim != 1:
            mistyped_rows[row] = True
            continue
        lengths[row] = items.size
        parts.append(items)
    values = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return ListColumn(values, lengths, nan_rows, mistyped_rows, float_elements)


PARSERS = {"int": parse_int_column, "float": parse_float_column, "int_list": parse_list_column}

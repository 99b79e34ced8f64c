"""`LogDataset`, a validated page-view log with its item table, and `load_logs`.

Constructing a `LogDataset` runs the schema checks (`checks`) and raises
`LogValidationError` naming every problem; the stored log is in canonical form. Nothing is
dropped silently: `LogDataset.clean` removes bad rows instead and returns a `CleanReport`
saying how many rows it removed and why. `save` and `load_logs` go through `logfiles`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recgym.data.checks import (
    CHECKS,
    LogUnderCheck,
    LogValidationError,
    Problem,
    Validation,
    run_checks,
)
from recgym.data.logfiles import read_item_table, read_log_frame, write_log
from recgym.data.typed_columns import ListColumn


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
        lines += [f"  repaired: {repair}" for repair in self.repaired]
        return "\n".join(lines)


def _canonical_frame(logs: pd.DataFrame, log: LogUnderCheck) -> pd.DataFrame:
    """A copy with a RangeIndex, int64 ints, float64 floats and int64-array lists."""
    canonical = logs.reset_index(drop=True).copy(deep=False)
    for name, column in log.typed_columns.items():
        canonical[name] = column.cells() if isinstance(column, ListColumn) else column.values
    return canonical


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
        validation = run_checks(logs, items, num_items)
        if validation.problems:
            raise LogValidationError(validation.problems)
        self.logs: pd.DataFrame = _canonical_frame(logs, validation.log)
        items = validation.log.items
        if items is not None:
            items = items.copy()
            items.index = items.index.astype(np.int64)
            items.index.name = "item_id"
            items = items.sort_index()
        self.items: pd.DataFrame | None = items
        self.num_items: int = int(num_items if num_items is not None
                                  else validation.log.num_items or 0)
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
        validation = run_checks(logs, items, num_items)
        if validation.structural:
            dropped = {check.name for check in CHECKS if check.cleanup == "drop"}
            raise LogValidationError([p for p in validation.problems if p.check not in dropped])
        items = validation.log.items
        sessions_before = int(logs["session_id"].nunique())
        report = CleanReport(rows_before=len(logs), rows_after=len(logs),
                             sessions_before=sessions_before)
        kept = _drop_flagged_rows(logs, validation, "drop", report)
        if len(kept):
            kept = _drop_flagged_rows(kept, run_checks(kept, items, num_items), "drop_after",
                                      report)
        cast = [p.column for p in validation.problems if p.check == "dtype"]
        if cast:
            report.repaired.append(f"cast {', '.join(cast)} to the schema dtype")
        if len(kept) == 0:
            raise LogValidationError(
                [Problem("empty", "session_id", "no valid rows are left after cleaning",
                         fix="look at the problems in a plain LogDataset(logs) error")]
            )
        remaining = run_checks(kept, items, num_items)
        if remaining.problems:  # only dtype and step problems can be left: repair them
            kept = _renumber_steps(_canonical_frame(kept, remaining.log), report)
        dataset = cls(kept, items, num_items)
        report.rows_after = len(dataset.logs)
        report.sessions_after = dataset.num_sessions
        dataset.clean_report = report
        return dataset, report

    # -- files
    def save(self, path: str | os.PathLike) -> Path:
        """Write the log to Parquet (and the item table beside it), atomically."""
        return write_log(self.logs, path, num_items=self.num_items, items=self.items)

    @classmethod
    def load(cls, path: str | os.PathLike, *, clean: bool = False) -> LogDataset:
        """Read a log written by `save` (or any Parquet / CSV log) and validate it."""
        return load_logs(path, clean=clean)


def _drop_flagged_rows(
    logs: pd.DataFrame, validation: Validation, cleanup: str, report: CleanReport
) -> pd.DataFrame:
    """Drop the rows that checks with this `cleanup` flagged; count them under the first."""
    keep = np.ones(len(logs), bool)
    for check in CHECKS:
        rows = validation.rows_to_drop(check.name) if check.cleanup == cleanup else None
        if rows is not None and (keep & rows).any():
            report.removed[check.reason] = int((keep & rows).sum())
            keep &= ~rows
    return logs if keep.all() else logs.iloc[np.flatnonzero(keep)]


def _renumber_steps(logs: pd.DataFrame, report: CleanReport) -> pd.DataFrame:
    """Number each session's steps 0 .. n-1, keeping their order."""
    sessions = logs["session_id"].to_numpy()
    order = np.lexsort((logs["step"].to_numpy(), sessions))
    sorted_sessions = sessions[order]
    steps = np.empty(len(logs), np.int64)
    steps[order] = pd.Series(sorted_sessions).groupby(sorted_sessions).cumcount().to_numpy()
    changed = steps != logs["step"].to_numpy()
    if changed.any():
        n_sessions = logs.loc[changed, "session_id"].nunique()
        report.repaired.append(
            f"renumbered steps to 0..n-1 in {n_sessions:,} session(s) (order kept) after rows "
            "were removed or steps had gaps"
        )
        logs = logs.copy()
        logs["step"] = steps
    return logs


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
        FileNotFoundError: no file at `path`, or its item table is missing.
        LogFileError: `path` cannot be read as a log (a folder, an empty or corrupt file,
            not UTF-8, a misnamed format, a log written by a newer recgym).
        LogValidationError: the log breaks the schema (and ``clean`` is False), or lacks
            a required column; the message names the file.
    """
    path = Path(path).expanduser()
    frame, metadata = read_log_frame(path)
    if num_items is None:
        num_items = metadata.get("num_items")
    items = read_item_table(path, metadata["items"]) if metadata.get("items") else None
    try:
        if not clean:
            return LogDataset(frame, items, num_items)
        dataset, report = LogDataset.clean(frame, items, num_items)
    except LogValidationError as error:
        raise LogValidationError(error.problems, source=str(path)) from None
    if report.n_removed or report.repaired:
        warnings.warn(f"{path}: {report}", stacklevel=2)
    return dataset

"""Validating a log against the schema: the problems, a table of named checks, the validator.

A `Problem` names the check, the column, the first offending rows and the fix;
`LogValidationError` lists every problem of a log. Each check is a small function that
looks at a `LogUnderCheck` and returns `Finding`s: a `Problem` with the rows
`LogDataset.clean` would drop for it. `CHECKS` lists them; `run_checks` runs the table
one scope at a time:

* ``"input"`` checks look at the arguments and at the frame's shape; when a ``stops``
  check fails (no rows, duplicate column names) nothing else can be read and validation
  ends;
* ``"column"`` checks look at one schema column at a time;
* ``"log"`` checks compare columns and rows, and run only when no structural problem (one
  `clean` cannot fix, such as a missing column) was found.

The order of `CHECKS` is also the order in which `clean` names the reason for a row with
several problems.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from recgym.data.schema import (
    COLUMN_SPECS,
    ITEM_COLUMNS,
    LOG_SCHEMA,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
)
from recgym.data.typed_columns import (
    PARSERS,
    FloatColumn,
    IntColumn,
    ListColumn,
    TypedColumn,
)

PREVIEW_ROWS = 5
ColumnKind = TypeVar("ColumnKind", IntColumn, FloatColumn, ListColumn)
SCOPES = ("input", "column", "log")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a log: the check, column, message, first bad rows and the fix.

    ``cleanable`` says whether `LogDataset.clean` can remove or repair it.
    """

    check: str
    column: str
    message: str
    rows: tuple[str, ...] = ()
    fix: str = ""
    n_bad: int = 0
    cleanable: bool = False

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
        missing = [p.column for p in self.problems if p.check == "missing_column"]
        if missing:
            lines.append(f"  missing required column(s) {', '.join(missing)}: every log needs "
                         f"{', '.join(REQUIRED_COLUMNS)} (optional: {', '.join(OPTIONAL_COLUMNS)})")
        lines += [f"  - {problem}" for problem in self.problems]
        if any(problem.cleanable for problem in self.problems):
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
        return [problem.check for problem in self.problems]


@dataclass(frozen=True)
class Finding:
    """A problem, and the rows `LogDataset.clean` drops for it (None: it drops none)."""

    problem: Problem
    drop_rows: np.ndarray | None = None


def format_value(value: Any, limit: int = 8) -> str:
    """Short repr of a cell for error messages: lists cut after `limit` items."""
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
        shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v)
                          for v in items[:limit])
        return "[" + shown + (", ..." if len(items) > limit else "") + "]"
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def index_items_by_id(items: pd.DataFrame) -> pd.DataFrame:
    """The item table indexed by item id (its ``item_id`` column, if it has one)."""
    if isinstance(items, pd.DataFrame) and "item_id" in items.columns:
        return items.set_index("item_id")
    return items


class LogUnderCheck:
    """A log being validated: the frame, item table and catalogue size given with it.

    Schema columns are parsed into numpy arrays on first use, so checks that never run
    (after a failure that stops validation) parse nothing.
    """

    def __init__(self, frame: pd.DataFrame, items: pd.DataFrame | None,
                 num_items: int | None) -> None:
        self.frame = frame
        self.items = items
        self.given_num_items = num_items

    @cached_property
    def valid_given_num_items(self) -> int | None:
        """The ``num_items`` argument if it is a positive int, else None."""
        given = self.given_num_items
        if given is not None and isinstance(given, (int, np.integer)) and given >= 1:
            return given
        return None

    @cached_property
    def item_ids(self) -> np.ndarray | None:
        """Ids of the item table, if it is a DataFrame with a non-empty integer index."""
        if not isinstance(self.items, pd.DataFrame) or len(self.items.index) == 0:
            return None
        if not pd.api.types.is_integer_dtype(self.items.index.dtype):
            return None
        return self.items.index.to_numpy(dtype=np.int64)

    @cached_property
    def typed_columns(self) -> dict[str, TypedColumn]:
        """Every schema column present, parsed, in schema order."""
        return {spec.name: PARSERS[spec.kind](self.frame[spec.name])
                for spec in LOG_SCHEMA if spec.name in self.frame.columns}

    def column(self, name: str, kind: type[ColumnKind]) -> ColumnKind:
        """The parsed column `name`, which the schema gives the type `kind`."""
        column = self.typed_columns[name]
        if not isinstance(column, kind):
            raise TypeError(f"log column {name!r} parsed as {type(column).__name__}, "
                            f"not {kind.__name__}")
        return column

    @cached_property
    def num_items(self) -> int | None:
        """Catalogue size: as given, else the item table's highest id + 1, else the log's."""
        if self.valid_given_num_items is not None:
            return self.valid_given_num_items
        if self.item_ids is not None:
            return int(self.item_ids.max()) + 1
        highest = -1
        for name, column in self.typed_columns.items():
            if isinstance(column, ListColumn) and len(column.values):
                highest = max(highest, int(column.values.max()))
            elif name == "click" and column.valid_rows.any():
                highest = max(highest, int(column.values[column.valid_rows].max()))
        return highest + 1 if highest >= 0 else None

    @cached_property
    def numbered_rows(self) -> np.ndarray:
        """Rows with a readable session and a readable, non-negative step."""
        session, step = self.column("session_id", IntColumn), self.column("step", IntColumn)
        return session.valid_rows & step.valid_rows & (step.values >= 0)

    @cached_property
    def session_steps(self) -> pd.DataFrame:
        """(session, step) of every row, as parsed (0 where unreadable)."""
        return pd.DataFrame({"session": self.column("session_id", IntColumn).values,
                             "step": self.column("step", IntColumn).values})

    @cached_property
    def repeated_steps(self) -> np.ndarray:
        """Numbered rows whose (session_id, step) another row shares."""
        return self.numbered_rows & self.session_steps.duplicated(keep=False).to_numpy()

    def show(self, column: str) -> Callable[[int], str]:
        """Describe a row by its value in `column`, e.g. ``click=5``."""
        values = self.frame[column]
        return lambda position: f"{column}={format_value(values.iloc[position])}"

    def row_finding(
        self,
        check: str,
        column: str,
        message: str,
        bad_rows: np.ndarray,
        fix: str,
        describe: Callable[[int], str] | None = None,
        drop_rows: np.ndarray | None = None,
    ) -> Finding:
        """A cleanable problem with some rows: counts them and previews the first few.

        Args:
            check: name of the check.
            column: column at fault.
            message: what is wrong, after "N row(s)".
            bad_rows: bool mask of the offending rows.
            fix: how to fix it.
            describe: text for one row (by position); default: its value in `column`.
            drop_rows: rows `clean` drops (default: `bad_rows`).
        """
        describe = describe or self.show(column)
        positions = np.flatnonzero(bad_rows)
        preview = tuple(f"row {self.frame.index[position]!r}: {describe(int(position))}"
                        for position in positions[:PREVIEW_ROWS])
        problem = Problem(check, column, f"{len(positions):,} row(s) {message}", preview, fix,
                          len(positions), cleanable=True)
        return Finding(problem, bad_rows if drop_rows is None else drop_rows)


# ----------------------------------------------------------------------------- input checks


def _num_items_is_positive(log: LogUnderCheck) -> list[Finding]:
    given = log.given_num_items
    if given is None or log.valid_given_num_items is not None:
        return []
    return [Finding(Problem("num_items", "num_items",
                            f"num_items must be a positive int, got {given!r}",
                            fix="pass the size of the item catalogue"))]


def _item_table_is_a_frame(log: LogUnderCheck) -> list[Finding]:
    if log.items is None or isinstance(log.items, pd.DataFrame):
        return []
    return [Finding(Problem("items_type", "items",
                            f"item table must be a DataFrame, got {type(log.items)}",
                            fix="pass items=pd.DataFrame(..., index=item ids)"))]


def _item_ids_are_valid(log: LogUnderCheck) -> list[Finding]:
    items = log.items
    if not isinstance(items, pd.DataFrame) or len(items.index) == 0:
        return []
    if log.item_ids is None:
        return [Finding(Problem(
            "items_index", "item_id",
            f"item table index must hold integer item ids, got dtype {items.index.dtype}",
            fix="set an integer 'item_id' column or index (0 .. num_items - 1); keep original "
            "ids as an ordinary column"))]
    ids = log.item_ids
    faults = []
    if (ids < 0).any():
        faults.append("negative ids")
    if items.index.has_duplicates:
        faults.append("duplicate ids")
    given = log.valid_given_num_items
    if given is not None and (ids >= given).any():
        faults.append(f"ids >= num_items ({given})")
    if not faults:
        return []
    shown = ids[(ids < 0) | items.index.duplicated()][:PREVIEW_ROWS]
    return [Finding(Problem("items_index", "item_id", "item table has " + ", ".join(faults),
                            rows=tuple(f"item {item}" for item in shown),
                            fix="item ids must be unique integers in 0 .. num_items - 1"))]


def _has_rows(log: LogUnderCheck) -> list[Finding]:
    if len(log.frame):
        return []
    return [Finding(Problem("empty", "session_id", "the log has no rows",
                            fix="pass a log with at least one page view"))]


def _column_names_are_unique(log: LogUnderCheck) -> list[Finding]:
    columns = log.frame.columns
    if not columns.has_duplicates:
        return []
    duplicates = sorted(set(columns[columns.duplicated()]))
    return [Finding(Problem("duplicate_column", str(duplicates[0]),
                            f"duplicate column names {duplicates}",
                            fix="rename or drop the duplicate columns"))]


def _required_columns_present(log: LogUnderCheck) -> list[Finding]:
    return [Finding(Problem("missing_column", name,
                            f"required column is missing ({COLUMN_SPECS[name].meaning})",
                            fix=COLUMN_SPECS[name].fix_if_missing))
            for name in REQUIRED_COLUMNS if name not in log.frame.columns]


# ----------------------------------------------------------------------------- column checks


def _no_missing_values(log: LogUnderCheck) -> list[Finding]:
    findings = []
    for name, column in log.typed_columns.items():
        if not column.nan_rows.any():
            continue
        if isinstance(column, ListColumn):
            message = "are missing or hold NaN/None items"
            fix = "every row needs a list of integer item ids; drop those rows"
        elif isinstance(column, IntColumn):
            message = "are missing (NaN/None)"
            fill = "-1 for no click" if name == "click" else "a value"
            fix = f"fill with {fill} or drop those rows"
        else:
            message = "are missing (NaN/None)"
            fix = "fill the missing values or drop those rows"
        findings.append(log.row_finding("nan", name, message, column.nan_rows, fix))
    return findings


def _values_have_the_right_type(log: LogUnderCheck) -> list[Finding]:
    findings = []
    for name, column in log.typed_columns.items():
        if not column.mistyped_rows.any():
            continue
        if isinstance(column, ListColumn):
            message = "are not lists of integer item ids"
            fix = (f"store '{name}' as a list (or numpy array) of ints per row, e.g. "
                   "[3, 17, 42]; strings like '3 17 42' are parsed only by load_logs on CSV")
        elif isinstance(column, IntColumn):
            message = "are not numbers"
            fix = f"'{name}' holds integers; convert or drop those rows"
        else:
            message = "are not numbers"
            fix = f"'{name}' holds floats; convert or drop"
        findings.append(log.row_finding("mistyped_value", name, message, column.mistyped_rows,
                                        fix))
    return findings


def _integers_are_whole(log: LogUnderCheck) -> list[Finding]:
    return [log.row_finding("not_integer", name, "are not whole numbers",
                            column.not_integer_rows,
                            f"'{name}' holds integers; round or drop those rows")
            for name, column in log.typed_columns.items()
            if isinstance(column, IntColumn) and column.not_integer_rows.any()]


def _dtypes_match_the_schema(log: LogUnderCheck) -> list[Finding]:
    findings = []
    for name, column in log.typed_columns.items():
        dtype = log.frame[name].dtype
        if isinstance(column, IntColumn) and column.wrong_dtype:
            if column.valid_rows.all():
                findings.append(Finding(Problem(
                    "dtype", name, f"has dtype {dtype}, expected an integer dtype",
                    fix=f"logs['{name}'] = logs['{name}'].astype('int64')", cleanable=True)))
            elif pd.api.types.is_bool_dtype(dtype):
                fix = ("store the clicked item id (or -1), not a flag" if name == "click"
                       else f"logs['{name}'] = logs['{name}'].astype('int64')")
                findings.append(Finding(Problem("dtype", name, "is boolean, expected integers",
                                                fix=fix)))
        elif isinstance(column, FloatColumn):
            if column.wrong_dtype and not (column.nan_rows.any() or column.mistyped_rows.any()):
                findings.append(Finding(Problem(
                    "dtype", name, f"has dtype {dtype}, expected float",
                    fix=f"logs['{name}'] = logs['{name}'].astype('float64')", cleanable=True)))
        elif isinstance(column, ListColumn):
            if column.float_elements and column.valid_rows.all():
                findings.append(Finding(Problem(
                    "dtype", name, "holds floats, expected integer item ids",
                    fix=f"logs['{name}'] = logs['{name}'].map(lambda s: "
                    "np.asarray(s, dtype='int64'))", cleanable=True)))
    return findings


def _lists_are_not_empty(log: LogUnderCheck) -> list[Finding]:
    findings = []
    for name, column in log.typed_columns.items():
        if not isinstance(column, ListColumn):
            continue
        empty = column.valid_rows & (column.lengths == 0)
        if empty.any():
            findings.append(log.row_finding(
                "empty_slate", name, "are empty (nothing shown)", empty,
                "a page view must show at least one item; drop those rows"))
    return findings


def _floats_are_finite(log: LogUnderCheck) -> list[Finding]:
    findings = []
    for name, column in log.typed_columns.items():
        if not isinstance(column, FloatColumn):
            continue
        with np.errstate(invalid="ignore"):
            infinite = np.isinf(column.values)
        if infinite.any():
            findings.append(log.row_finding("nonfinite", name, "are infinite", infinite,
                                            "replace or drop those rows"))
    return findings


# ----------------------------------------------------------------------------- log checks


def _item_column_rows(log: LogUnderCheck, name: str,
                      is_bad: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Rows of item column `name` holding an item id for which `is_bad` is true."""
    column = log.typed_columns[name]
    if isinstance(column, ListColumn):
        return column.rows_where(is_bad(column.values))
    return column.valid_rows & is_bad(column.values)


def _item_ids_not_negative(log: LogUnderCheck) -> list[Finding]:
    findings = []
    for name in ITEM_COLUMNS:
        if name not in log.frame.columns:
            continue
        lowest = -1 if name == "click" else 0
        negative = _item_column_rows(log, name, lambda ids, low=lowest: ids < low)
        if negative.any():
            message = ("have a click below -1 (-1 means no click)" if name == "click"
                       else "contain negative item ids")
            findings.append(log.row_finding(
                "negative_item", name, message, negative,
                "item ids are 0 .. num_items - 1 (remap raw ids, e.g. with pd.factorize); "
                "use -1 in 'click' for no click"))
    return findings


def _item_ids_in_catalogue(log: LogUnderCheck) -> list[Finding]:
    num_items = log.num_items
    if not num_items:
        return []
    findings = []
    for name in ITEM_COLUMNS:
        if name not in log.frame.columns:
            continue
        too_high = _item_column_rows(log, name, lambda ids: ids >= num_items)
        if too_high.any():
            findings.append(log.row_finding(
                "item_out_of_range", name, f"contain item ids >= num_items ({num_items})",
                too_high,
                "pass the right num_items / item table, or remap ids to 0 .. num_items - 1"))
    return findings


def _slates_have_one_length(log: LogUnderCheck) -> list[Finding]:
    slate = log.column("slate", ListColumn)
    shown = slate.nonempty_rows
    if not shown.any():
        return []
    lengths, counts = np.unique(slate.lengths[shown], return_counts=True)
    if len(lengths) == 1:
        return []
    most_common = int(lengths[np.argmax(counts)])
    found = ", ".join(f"{int(length)}: {int(count):,} rows"
                      for length, count in zip(lengths, counts, strict=True))
    return [log.row_finding(
        "slate_length", "slate",
        f"have a slate length other than the most common ({most_common}); lengths found: "
        f"{found}", shown & (slate.lengths != most_common),
        "all slates must have the same length k: pad or truncate them upstream, or split the "
        "log by slate length", describe=lambda position: f"len(slate)={slate.lengths[position]}")]


def _slates_do_not_repeat_items(log: LogUnderCheck) -> list[Finding]:
    slate = log.column("slate", ListColumn)
    if not len(slate.values):
        return []
    if slate.matrix is not None:
        ordered = np.sort(slate.matrix, axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
    else:
        # one sortable key per (row, item): equal neighbours are repeats within a row
        shifted = slate.values - slate.values.min()
        width = int(shifted.max()) + 1
        keys = np.sort(slate.row_of_value.astype(np.int64) * width + shifted)
        repeated_keys = keys[1:][keys[1:] == keys[:-1]]
        repeated = np.zeros(len(slate.lengths), bool)
        repeated[(repeated_keys // width).astype(np.int64)] = True
    if not repeated.any():
        return []
    return [log.row_finding("repeated_item", "slate", "show the same item twice", repeated,
                            "each item is shown once per page view; de-duplicate the slates")]


def _clicks_are_in_their_slate(log: LogUnderCheck) -> list[Finding]:
    slate, click = log.column("slate", ListColumn), log.column("click", IntColumn)
    if not len(slate.values):
        return []
    if slate.matrix is not None:
        clicked_shown = (slate.matrix == click.values[:, None]).any(axis=1)
    else:
        clicked_shown = slate.rows_where(slate.values == np.repeat(click.values, slate.lengths))
    bad = slate.nonempty_rows & click.valid_rows & (click.values != -1) & ~clicked_shown
    if not bad.any():
        return []
    show_slate = log.show("slate")
    return [log.row_finding(
        "click_not_in_slate", "click", "have a click that is not in their slate", bad,
        "a user can only click an item that was shown: set click to -1 or add the clicked "
        "item to the slate",
        describe=lambda position: f"click={click.values[position]}, {show_slate(position)}")]


def _slates_within_candidates(log: LogUnderCheck) -> list[Finding]:
    if "candidates" not in log.typed_columns:
        return []
    slate, candidates = log.column("slate", ListColumn), log.column("candidates", ListColumn)
    if not len(slate.values):
        return []
    # one searchable key per (row, item) in both columns
    lowest = min(slate.values.min(), candidates.values.min() if len(candidates.values) else 0)
    highest = max(slate.values.max(), candidates.values.max() if len(candidates.values) else 0)
    width = int(highest - lowest) + 1
    candidate_keys = np.sort(candidates.row_of_value.astype(np.int64) * width
                             + (candidates.values - lowest))
    slate_keys = slate.row_of_value.astype(np.int64) * width + (slate.values - lowest)
    position = np.searchsorted(candidate_keys, slate_keys)
    found = (position < len(candidate_keys)) & (
        candidate_keys[np.minimum(position, len(candidate_keys) - 1)] == slate_keys)
    bad = slate.rows_where(~found) & candidates.valid_rows
    if not bad.any():
        return []
    show_slate, show_candidates = log.show("slate"), log.show("candidates")
    return [log.row_finding(
        "slate_not_in_candidates", "candidates", "do not contain every item of the slate", bad,
        "candidates is the pool the slate was drawn from: include the slate's items",
        describe=lambda position: f"{show_slate(position)}, {show_candidates(position)}")]


def _steps_not_negative(log: LogUnderCheck) -> list[Finding]:
    step = log.column("step", IntColumn)
    negative = step.valid_rows & (step.values < 0)
    if not negative.any():
        return []
    return [log.row_finding("negative_step", "step", "have a negative step", negative,
                            "steps are 0-based positions within the session",
                            describe=lambda position: f"step={step.values[position]}")]


def _steps_unique_in_session(log: LogUnderCheck) -> list[Finding]:
    if not log.repeated_steps.any():
        return []
    session, step = log.column("session_id", IntColumn), log.column("step", IntColumn)
    later_copies = log.repeated_steps & log.session_steps.duplicated(keep="first").to_numpy()
    return [log.row_finding(
        "duplicate_step", "step", "share their (session_id, step) with another row",
        log.repeated_steps,
        "each page view of a session needs its own step; renumber with "
        "logs.groupby('session_id').cumcount() or drop the duplicates",
        describe=lambda position: f"session_id={session.values[position]}, "
        f"step={step.values[position]}",
        drop_rows=later_copies)]


def _steps_count_from_zero(log: LogUnderCheck) -> list[Finding]:
    numbered = log.numbered_rows
    if not numbered.any() or log.repeated_steps.any():
        return []
    steps = log.session_steps[numbered].groupby("session")["step"].agg(["min", "max", "size"])
    gaps = steps[(steps["min"] != 0) | (steps["max"] != steps["size"] - 1)]
    if not len(gaps):
        return []
    preview = tuple(f"session {int(session)}: steps {int(row['min'])}..{int(row['max'])} for "
                    f"{int(row['size'])} rows"
                    for session, row in gaps.head(PREVIEW_ROWS).iterrows())
    return [Finding(Problem(
        "step_gaps", "step", f"{len(gaps):,} session(s) do not number their steps "
        "0, 1, ..., n-1 (a page view is missing, or steps start elsewhere)",
        rows=preview, n_bad=len(gaps),
        fix="renumber with logs['step'] = logs.sort_values(['session_id', 'step'])"
        ".groupby('session_id').cumcount(), or LogDataset.clean(logs)", cleanable=True))]


def _sessions_have_one_user(log: LogUnderCheck) -> list[Finding]:
    if "user_id" not in log.typed_columns:
        return []
    session, user = log.column("session_id", IntColumn), log.column("user_id", IntColumn)
    readable = session.valid_rows & user.valid_rows
    users_per_session = pd.DataFrame({"session": session.values[readable],
                                      "user": user.values[readable]}
                                     ).groupby("session")["user"].nunique()
    shared = users_per_session[users_per_session > 1].index.to_numpy()
    if not len(shared):
        return []
    return [log.row_finding(
        "session_users", "user_id", f"belong to {len(shared):,} session(s) with more than one "
        "user_id", readable & np.isin(session.values, shared),
        "a session belongs to one user: give each user's trajectory its own session_id",
        describe=lambda position: f"session_id={session.values[position]}, "
        f"user_id={user.values[position]}")]


def _feedback_not_negative(log: LogUnderCheck) -> list[Finding]:
    if "feedback" not in log.typed_columns:
        return []
    feedback = log.column("feedback", IntColumn)
    negative = feedback.valid_rows & (feedback.values < 0)
    if not negative.any():
        return []
    return [log.row_finding("negative_feedback", "feedback", "have a negative feedback class",
                            negative, "feedback classes are 0 (skip), 1 (click), 2 (purchase), ...",
                            describe=lambda position: f"feedback={feedback.values[position]}")]


def _propensities_are_probabilities(log: LogUnderCheck) -> list[Finding]:
    if "propensity" not in log.typed_columns:
        return []
    propensity = log.column("propensity", FloatColumn).values
    with np.errstate(invalid="ignore"):
        bad = np.isfinite(propensity) & ~((propensity > 0) & (propensity <= 1))
    if not bad.any():
        return []
    return [log.row_finding(
        "propensity_range", "propensity", "are outside (0, 1]", bad,
        "propensity is the logging policy's probability of the slate: a probability in (0, 1] "
        "(a 0 would make importance weights infinite)",
        describe=lambda position: f"propensity={float(propensity[position])!r}")]


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Check:
    """A named check: its function, what it looks at, and what `LogDataset.clean` does.

    Attributes:
        name: the name its problems carry (``Problem.check``).
        find: returns its findings on a log.
        scope: ``"input"``, ``"column"`` or ``"log"`` (see the module docstring).
        cleanup: ``"drop"`` (clean removes the rows), ``"drop_after"`` (clean removes them
            from what is left after the "drop" rows are gone), ``"repair"`` (clean casts
            or renumbers) or ``""`` (clean cannot fix it).
        reason: what `CleanReport` says about the rows it removes.
        stops: a failure ends validation, as nothing else can be read.
    """

    name: str
    find: Callable[[LogUnderCheck], list[Finding]]
    scope: str
    cleanup: str = ""
    reason: str = ""
    stops: bool = False


CHECKS: tuple[Check, ...] = (
    Check("num_items", _num_items_is_positive, "input"),
    Check("items_type", _item_table_is_a_frame, "input"),
    Check("items_index", _item_ids_are_valid, "input"),
    Check("empty", _has_rows, "input", stops=True),
    Check("duplicate_column", _column_names_are_unique, "input", stops=True),
    Check("missing_column", _required_columns_present, "input"),
    Check("nan", _no_missing_values, "column", "drop", "missing value (NaN / None)"),
    Check("mistyped_value", _values_have_the_right_type, "column", "drop",
          "value of the wrong type"),
    Check("not_integer", _integers_are_whole, "column", "drop",
          "non-integer value in an integer column"),
    Check("dtype", _dtypes_match_the_schema, "column", "repair"),
    Check("empty_slate", _lists_are_not_empty, "column", "drop", "empty slate (nothing shown)"),
    Check("negative_item", _item_ids_not_negative, "log", "drop", "negative item id"),
    Check("item_out_of_range", _item_ids_in_catalogue, "log", "drop", "item id >= num_items"),
    Check("repeated_item", _slates_do_not_repeat_items, "log", "drop",
          "item repeated within a slate"),
    Check("click_not_in_slate", _clicks_are_in_their_slate, "log", "drop",
          "click not in its slate"),
    Check("slate_not_in_candidates", _slates_within_candidates, "log", "drop",
          "slate item not in candidates"),
    Check("negative_step", _steps_not_negative, "log", "drop", "negative step"),
    Check("negative_feedback", _feedback_not_negative, "log", "drop", "negative feedback class"),
    Check("nonfinite", _floats_are_finite, "column", "drop", "infinite value"),
    Check("propensity_range", _propensities_are_probabilities, "log", "drop",
          "propensity outside (0, 1]"),
    Check("session_users", _sessions_have_one_user, "log", "drop_after",
          "session with more than one user_id (whole session removed)"),
    Check("duplicate_step", _steps_unique_in_session, "log", "drop_after",
          "duplicate (session_id, step): later copies removed"),
    Check("slate_length", _slates_have_one_length, "log", "drop_after",
          "slate length differs from the most common length"),
    Check("step_gaps", _steps_count_from_zero, "log", "repair"),
)


@dataclass
class Validation:
    """What running the checks on a log found, and the log with its parsed columns."""

    log: LogUnderCheck
    findings: list[Finding]

    @property
    def problems(self) -> list[Problem]:
        """Every problem, in the order found."""
        return [finding.problem for finding in self.findings]

    @property
    def structural(self) -> bool:
        """Whether some problem cannot be cleaned (so the log checks were skipped)."""
        return any(not finding.problem.cleanable for finding in self.findings)

    def rows_to_drop(self, check: str) -> np.ndarray | None:
        """Rows `clean` drops for `check`, over all its findings (None if none)."""
        masks = [finding.drop_rows for finding in self.findings
                 if finding.problem.check == check and finding.drop_rows is not None]
        return np.logical_or.reduce(masks) if masks else None


def run_checks(
    logs: pd.DataFrame, items: pd.DataFrame | None = None, num_items: int | None = None
) -> Validation:
    """Run `CHECKS` on a log, scope by scope, and return everything they found."""
    if not isinstance(logs, pd.DataFrame):
        raise TypeError(f"logs must be a pandas DataFrame, got {type(logs).__name__}")
    log = LogUnderCheck(logs, None if items is None else index_items_by_id(items), num_items)
    validation = Validation(log, [])
    for scope in SCOPES:
        if scope == "log" and validation.structural:
            break
        for check in CHECKS:
            if check.scope != scope:
                continue
            findings = check.find(log)
            validation.findings += findings
            if findings and check.stops:
                return validation
    return validation


def validate_logs(
    logs: pd.DataFrame,
    items: pd.DataFrame | None = None,
    num_items: int | None = None,
    *,
    source: str | None = None,
) -> None:
    """Raise `LogValidationError` listing every schema problem of `logs`; return if valid."""
    validation = run_checks(logs, items, num_items)
    if validation.problems:
        raise LogValidationError(validation.problems, source)

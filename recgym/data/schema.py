"""The recgym log schema: its columns, their kinds and meanings, and the feedback classes.

Every simulator in recgym learns from the same table (DESIGN.md, section "Data"): one row
per page view, with the session, the step within it, the slate that was shown and the
item that was clicked (-1 for none), plus optional columns. `LOG_SCHEMA` lists them.
The rest of the log layer builds on this module: `checks` validates a table against it,
`logfiles` reads and writes it, and `dataset.LogDataset` holds a validated one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Version of the on-disk log format; `logfiles` records it and refuses logs from newer ones.
SCHEMA_VERSION = 1

# Feedback classes of the optional ``feedback`` column (RecSimu, Zhao et al. AAAI 2020).
FEEDBACK_SKIP = 0
FEEDBACK_CLICK = 1
FEEDBACK_PURCHASE = 2


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the log schema.

    Attributes:
        name: column name.
        kind: ``"int"`` (stored int64), ``"float"`` (float64) or ``"int_list"`` (one int64
            array of item ids per row).
        required: whether every log must have it.
        meaning: what it holds.
        fix_if_missing: for a required column, how to add it to a log that lacks it.
    """

    name: str
    kind: str
    required: bool
    meaning: str
    fix_if_missing: str = ""


LOG_SCHEMA: tuple[ColumnSpec, ...] = (
    ColumnSpec("session_id", "int", True, "trajectory id",
               "give each trajectory an integer id, e.g. logs['session_id'] = "
               "logs.groupby('user_id').ngroup() if each user is one session"),
    ColumnSpec("user_id", "int", False, "user id, for user-level splits"),
    ColumnSpec("step", "int", True, "position in the session, 0-based",
               "number page views within each session from 0, e.g. logs['step'] = "
               "logs.groupby('session_id').cumcount() after sorting by time"),
    ColumnSpec("slate", "int_list", True, "items shown, in order (the action)",
               "add the list of item ids shown at each page view; for data without "
               "impressions build display sets with recgym.data.display_sets_by_release or "
               "display_sets_by_time_window"),
    ColumnSpec("candidates", "int_list", False, "pool the slate was chosen from (display set)"),
    ColumnSpec("click", "int", True, "clicked item id, or -1 for none",
               "add the clicked item id per row, with -1 where nothing was clicked"),
    ColumnSpec("feedback", "int", False, "feedback class (0 skip, 1 click, 2 purchase, ...); "
               "if absent, 1 where clicked and 0 elsewhere (feedback_from_clicks)"),
    ColumnSpec("reward", "float", False, "reward, e.g. purchase"),
    ColumnSpec("propensity", "float", False, "logging policy's probability of the slate"),
    ColumnSpec("timestamp", "int", False, "seconds"),
)
COLUMN_SPECS: dict[str, ColumnSpec] = {spec.name: spec for spec in LOG_SCHEMA}
REQUIRED_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in LOG_SCHEMA if spec.required)
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in LOG_SCHEMA if not spec.required)
LIST_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in LOG_SCHEMA if spec.kind == "int_list")
# Columns holding item ids, which must lie in 0 .. num_items - 1 (click also allows -1).
ITEM_COLUMNS: tuple[str, ...] = ("slate", "candidates", "click")


def feedback_from_clicks(logs: pd.DataFrame) -> np.ndarray:
    """Feedback classes of a log without a ``feedback`` column, derived from its clicks.

    The schema's rule: a page view whose ``click`` is an item has feedback
    `FEEDBACK_CLICK` (1) on that item; one without a click (``click == -1``) has
    `FEEDBACK_SKIP` (0). Simulators that learn feedback classes use it when the column is
    absent, as in logs written by ``recgym generate-logs``.

    Args:
        logs: a log with a ``click`` column, e.g. ``LogDataset.logs``.

    Returns:
        int64 array, shape (rows,).
    """
    if "click" not in logs.columns:
        raise KeyError("feedback_from_clicks needs the log's 'click' column (clicked item id, "
                       "or -1 for none); without it no feedback can be derived")
    clicked = logs["click"].to_numpy(np.int64) >= 0
    return np.where(clicked, FEEDBACK_CLICK, FEEDBACK_SKIP).astype(np.int64)

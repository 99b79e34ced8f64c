"""The log schema: a table of invalid logs and their errors, cleaning, and Parquet/CSV I/O."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recgym.data import (
    CleanReport,
    LogDataset,
    LogValidationError,
    feedback_from_clicks,
    load_logs,
    validate_logs,
)
from recgym.data.checks import CHECKS
from recgym.data.schema import COLUMN_SPECS


def valid_logs() -> pd.DataFrame:
    return pd.DataFrame({
        "session_id": [0, 0, 0, 1, 1, 2],
        "user_id": [10, 10, 10, 11, 11, 10],
        "step": [0, 1, 2, 0, 1, 0],
        "slate": [[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 4, 7], [2, 5, 8], [3, 6, 9]],
        "click": [2, -1, 9, 4, -1, 6],
        "feedback": [1, 0, 2, 1, 0, 1],
        "reward": [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        "propensity": [0.5, 0.25, 1.0, 0.1, 0.2, 0.3],
        "timestamp": [100, 110, 120, 200, 210, 300],
    })


def _set(col, values):
    def edit(df):
        df[col] = values
        return df
    return edit


def _cell(row, col, value):
    def edit(df):
        df[col] = df[col].astype(object)
        df.at[row, col] = value
        return df
    return edit


# (case id, edit of a valid log, failed check, column named in the error, text in the message)
INVALID = [
    ("missing click", lambda d: d.drop(columns="click"), "missing_column", "click",
     "required column is missing"),
    ("missing slate", lambda d: d.drop(columns="slate"), "missing_column", "slate",
     "display sets"),
    ("missing session_id", lambda d: d.drop(columns="session_id"), "missing_column",
     "session_id", "required column"),
    ("missing step", lambda d: d.drop(columns="step"), "missing_column", "step", "cumcount"),
    ("NaN click", _cell(1, "click", np.nan), "nan", "click", "-1 for no click"),
    ("NaN reward", _set("reward", [0.0, np.nan, 1.0, 0.0, 0.0, 0.0]), "nan", "reward",
     "missing"),
    ("None slate", _cell(2, "slate", None), "nan", "slate", "missing"),
    ("NaN inside slate", _cell(2, "slate", [7.0, np.nan, 9.0]), "nan", "slate", "NaN"),
    ("string step", _cell(1, "step", "one"), "mistyped_value", "step", "'one'"),
    ("fractional step", _set("step", [0.0, 1.5, 2.0, 0.0, 1.0, 0.0]), "not_integer", "step",
     "whole numbers"),
    ("float click dtype", _set("click", [2.0, -1.0, 9.0, 4.0, -1.0, 6.0]), "dtype", "click",
     "astype('int64')"),
    ("boolean click", _set("click", [True, False, True, True, False, True]), "dtype", "click",
     "clicked item id"),
    ("slate is a string", _cell(0, "slate", "1 2 3"), "mistyped_value", "slate",
     "list (or numpy array)"),
    ("slate is a scalar", _cell(0, "slate", 3), "mistyped_value", "slate", "lists of integer"),
    ("negative item in slate", _cell(0, "slate", [1, -2, 3]), "negative_item", "slate",
     "negative item ids"),
    ("click below -1", _set("click", [2, -3, 9, 4, -1, 6]), "negative_item", "click",
     "below -1"),
    ("item out of range", _cell(0, "slate", [1, 2, 99]), "item_out_of_range", "slate",
     "num_items (10)"),
    ("unequal slate lengths", _cell(0, "slate", [1, 2]), "slate_length", "slate",
     "most common (3)"),
    ("empty slate", _cell(0, "slate", []), "empty_slate", "slate", "empty"),
    ("repeated item", _cell(0, "slate", [1, 2, 2]), "repeated_item", "slate", "same item twice"),
    ("click not in slate", _set("click", [5, -1, 9, 4, -1, 6]), "click_not_in_slate", "click",
     "click=5, slate=[1, 2, 3]"),
    ("duplicate session/step", _set("step", [0, 1, 1, 0, 1, 0]), "duplicate_step", "step",
     "session_id=0, step=1"),
    ("step gap", _set("step", [0, 1, 3, 0, 1, 0]), "step_gaps", "step", "session 0"),
    ("steps from 1", _set("step", [1, 2, 3, 1, 2, 1]), "step_gaps", "step", "0, 1, ..., n-1"),
    ("negative step", _set("step", [0, 1, 2, 0, 1, -1]), "negative_step", "step", "negative"),
    ("propensity zero", _set("propensity", [0.5, 0.0, 1.0, 0.1, 0.2, 0.3]),
     "propensity_range", "propensity", "(0, 1]"),
    ("propensity above one", _set("propensity", [0.5, 0.2, 1.5, 0.1, 0.2, 0.3]),
     "propensity_range", "propensity", "propensity=1.5"),
    ("negative feedback", _set("feedback", [1, 0, -1, 1, 0, 1]), "negative_feedback",
     "feedback", "negative feedback"),
    ("infinite reward", _set("reward", [0.0, np.inf, 1.0, 0.0, 0.0, 0.0]), "nonfinite",
     "reward", "infinite"),
    ("session with two users", _set("user_id", [10, 12, 10, 11, 11, 10]), "session_users",
     "user_id", "more than one user_id"),
    ("slate not within candidates",
     lambda d: d.assign(candidates=[[1, 2, 3, 4], [4, 5, 6], [7, 8, 9], [1, 4, 7],
                                    [2, 5, 8], [3, 6]]),
     "slate_not_in_candidates", "candidates", "every item of the slate"),
    ("no rows", lambda d: d.iloc[:0], "empty", "session_id", "no rows"),
]


def test_valid_log_passes_and_is_canonical():
    ds = LogDataset(valid_logs())
    assert len(ds) == 6 and ds.num_sessions == 3 and ds.slate_size == 3
    assert ds.num_items == 10  # highest id 9, inferred
    assert ds.logs["click"].dtype == np.int64
    assert isinstance(ds.logs["slate"].iat[0], np.ndarray)
    assert ds.logs["slate"].iat[0].dtype == np.int64
    np.testing.assert_array_equal(ds.slates()[3], [1, 4, 7])
    validate_logs(valid_logs())  # no exception


@pytest.mark.parametrize("case, edit, check, column, text", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_log_raises_named_error(case, edit, check, column, text):
    bad = edit(valid_logs())
    kwargs = {"num_items": 10} if check == "item_out_of_range" else {}
    with pytest.raises(LogValidationError) as info:
        LogDataset(bad, **kwargs)
    err = info.value
    assert isinstance(err, ValueError)
    assert check in err.checks, f"{case}: got checks {err.checks}\n{err}"
    problem = next(p for p in err.problems if p.check == check)
    assert problem.column == column
    assert problem.fix, "every problem says how to fix it"
    assert f"column '{column}'" in str(err)
    assert text in str(err), f"{text!r} not in:\n{err}"
    assert set(err.checks) <= {c.name for c in CHECKS}, "every problem comes from the table"


def test_check_table_names_each_check_once_with_its_cleanup():
    names = [check.name for check in CHECKS]
    assert len(names) == len(set(names))
    for check in CHECKS:
        assert check.scope in ("input", "column", "log")
        assert check.cleanup in ("", "drop", "drop_after", "repair")
        assert bool(check.reason) == (check.cleanup in ("drop", "drop_after")), check.name


def test_feedback_from_clicks_follows_the_schema_rule(tmp_path):
    logs = valid_logs().drop(columns="feedback")  # as recgym generate-logs writes them
    expected = [1, 0, 1, 1, 0, 1]  # 1 on the clicked item, 0 on a page view without click
    np.testing.assert_array_equal(feedback_from_clicks(logs), expected)
    LogDataset(logs).save(tmp_path / "generated.parquet")
    derived = feedback_from_clicks(load_logs(tmp_path / "generated.parquet").logs)
    assert derived.dtype == np.int64 and derived.tolist() == expected
    assert "feedback_from_clicks" in COLUMN_SPECS["feedback"].meaning
    with pytest.raises(KeyError, match="'click' column"):
        feedback_from_clicks(logs.drop(columns="click"))


def test_error_shows_row_labels_and_limits_preview():
    df = pd.concat([valid_logs()] * 5, ignore_index=True).drop(columns="user_id")
    df["session_id"] = np.repeat(np.arange(10), 3)
    df["step"] = np.tile([0, 1, 2], 10)
    df.index = df.index + 1000  # labels, not positions, are reported
    df["click"] = 0  # not in any slate: 30 bad rows
    with pytest.raises(LogValidationError) as info:
        LogDataset(df)
    msg = str(info.value)
    assert "30 row(s) have a click that is not in their slate" in msg
    assert "row 1000: click=0" in msg
    assert "(first 5 of 30)" in msg
    assert "row 1005" not in msg


def test_all_problems_reported_together():
    df = valid_logs()
    df["click"] = [5, -1, 9, 4, -1, 6]
    df["propensity"] = [0.5, 0.0, 1.0, 0.1, 0.2, 0.3]
    with pytest.raises(LogValidationError) as info:
        LogDataset(df)
    assert set(info.value.checks) == {"click_not_in_slate", "propensity_range"}


def test_num_items_and_item_table_checks():
    items = pd.DataFrame({"f": np.arange(10.0)}, index=pd.Index(np.arange(10), name="item_id"))
    ds = LogDataset(valid_logs(), items=items)
    assert ds.num_items == 10 and ds.items is not None
    with pytest.raises(LogValidationError, match="item ids >= num_items \\(5\\)"):
        LogDataset(valid_logs(), items=items.iloc[:5])
    dup = pd.DataFrame({"item_id": [0, 0, 1], "f": [1.0, 2.0, 3.0]})
    with pytest.raises(LogValidationError, match="duplicate ids"):
        LogDataset(valid_logs(), items=dup)
    assert LogDataset(valid_logs(), num_items=50).num_items == 50


def test_not_a_dataframe():
    with pytest.raises(TypeError, match="DataFrame"):
        LogDataset({"session_id": [0]})


def test_extra_columns_are_kept():
    df = valid_logs().assign(true_state=[3, 1, 4, 1, 5, 9], note=list("abcdef"))
    ds = LogDataset(df)
    assert list(ds.logs["true_state"]) == [3, 1, 4, 1, 5, 9]
    assert list(ds.logs["note"]) == list("abcdef")


def test_numpy_and_tuple_slates_accepted():
    df = valid_logs()
    df["slate"] = [np.array(s, dtype=np.int32) for s in df["slate"]]
    a = LogDataset(df)
    df["slate"] = [tuple(s) for s in df["slate"]]
    b = LogDataset(df)
    np.testing.assert_array_equal(a.slates(), b.slates())


def test_clean_reports_what_it_removed_and_why():
    df = pd.concat([valid_logs()] * 2, ignore_index=True)
    df["session_id"] = np.repeat([0, 1], 6)
    df["step"] = np.tile(np.arange(6), 2)
    df["user_id"] = np.repeat([7, 8], 6)
    df["click"] = df["click"].astype(object)
    df.at[1, "click"] = 99  # not in slate
    df.at[2, "click"] = np.nan  # missing
    df.at[8, "propensity"] = 0.0  # out of range
    df.at[9, "slate"] = [1, 4]  # wrong length (click 4 still shown)
    with pytest.raises(LogValidationError):
        LogDataset(df)
    ds, report = LogDataset.clean(df)
    assert isinstance(report, CleanReport)
    assert report.rows_before == 12 and report.rows_after == 8 and report.n_removed == 4
    assert report.removed == {
        "missing value (NaN / None)": 1,
        "click not in its slate": 1,
        "propensity outside (0, 1]": 1,
        "slate length differs from the most common length": 1,
    }
    text = str(report)
    assert "kept 8 of 12 rows (4 removed)" in text and "click not in its slate" in text
    assert any("renumbered steps" in r for r in report.repaired)
    assert ds.clean_report is report
    # steps renumbered 0..n-1 per session, order kept
    for _, g in ds.logs.groupby("session_id"):
        assert list(g["step"]) == list(range(len(g)))
    assert ds.logs["click"].dtype == np.int64


def test_clean_cannot_fix_structure():
    with pytest.raises(LogValidationError, match="required column is missing"):
        LogDataset.clean(valid_logs().drop(columns="slate"))


def test_clean_of_valid_log_changes_nothing():
    ds, report = LogDataset.clean(valid_logs())
    assert report.n_removed == 0 and report.removed == {} and report.repaired == []
    assert ds.equals(LogDataset(valid_logs()))


def test_parquet_round_trip_with_items(tmp_path):
    items = pd.DataFrame({"genre": list("abcdefghij"), "emb_0": np.linspace(0, 1, 10)},
                         index=pd.Index(np.arange(10), name="item_id"))
    df = valid_logs().assign(true_state=[3, 1, 4, 1, 5, 9])
    df["candidates"] = [list(range(10))] * 6
    ds = LogDataset(df, items=items, num_items=12)
    path = ds.save(tmp_path / "logs.parquet")
    assert path.exists() and (tmp_path / "logs.items.parquet").exists()
    assert not list(tmp_path.glob("*.tmp")), "no temporary files left behind"
    back = load_logs(path)
    pd.testing.assert_frame_equal(back.logs, ds.logs)
    pd.testing.assert_frame_equal(back.items, ds.items)
    assert back.num_items == 12
    assert back.equals(ds) and LogDataset.load(path).equals(ds)


def test_round_trip_detects_differences(tmp_path):
    ds = LogDataset(valid_logs())
    ds.save(tmp_path / "a.parquet")
    other = valid_logs()
    other.at[0, "slate"] = [1, 3, 2]
    assert not load_logs(tmp_path / "a.parquet").equals(LogDataset(other))


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / "logs.parquet"
    LogDataset(valid_logs()).save(path)
    LogDataset(valid_logs().iloc[:3]).save(path)
    assert len(load_logs(path)) == 3


def test_load_csv_with_list_strings(tmp_path):
    df = valid_logs()
    df["slate"] = ["[1, 2, 3]", "4 5 6", "7|8|9", "[1,4,7]", "2 5 8", "3 6 9"]
    df.to_csv(tmp_path / "logs.csv", index=False)
    ds = load_logs(tmp_path / "logs.csv")
    np.testing.assert_array_equal(ds.slates(), LogDataset(valid_logs()).slates())


def test_load_bad_file_names_file_and_problem(tmp_path):
    df = valid_logs()
    df["click"] = [5, -1, 9, 4, -1, 6]
    df["slate"] = df["slate"].map(lambda s: " ".join(map(str, s)))
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(LogValidationError) as info:
        load_logs(tmp_path / "bad.csv")
    assert "bad.csv" in str(info.value) and "click=5" in str(info.value)
    with pytest.warns(UserWarning, match="removed 1 rows: click not in its slate"):
        ds = load_logs(tmp_path / "bad.csv", clean=True)
    assert len(ds) == 5


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no log file"):
        load_logs(tmp_path / "missing.parquet")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot tell the format"):
        load_logs(tmp_path / "x.json")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        load_logs(tmp_path / "broken.parquet")
    ds = LogDataset(valid_logs(), items=pd.DataFrame({"f": np.arange(10)}))
    ds.save(tmp_path / "l.parquet")
    (tmp_path / "l.items.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="l.items.parquet"):
        load_logs(tmp_path / "l.parquet")


def test_validation_is_fast_on_a_large_log():
    import time

    n, k = 200_000, 10
    rng = np.random.default_rng(0)
    slates = np.argsort(rng.random((n, 100)), axis=1)[:, :k]
    df = pd.DataFrame({
        "session_id": np.arange(n) // 20,
        "step": np.arange(n) % 20,
        "slate": list(slates),
        "click": np.where(rng.random(n) < 0.5, slates[:, 0], -1),
    })
    start = time.perf_counter()
    ds = LogDataset(df)
    assert time.perf_counter() - start < 10.0
    assert ds.num_items == 100 and ds.slate_size == k


def test_atomic_write_replaces_on_success_and_keeps_the_old_file_on_error(tmp_path):
    from recgym.data import atomic_write

    target = tmp_path / "sub" / "table.txt"
    with atomic_write(target) as temporary:
        temporary.write_text("first")
    assert target.read_text() == "first" and oct(target.stat().st_mode)[-3:] == "644"
    with pytest.raises(RuntimeError), atomic_write(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "first"
    assert [p.name for p in target.parent.iterdir()] == ["table.txt"]

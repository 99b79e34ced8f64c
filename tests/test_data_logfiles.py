"""Log files recgym refuses: each error names the file, what is wrong and the fix."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from recgym.data import LogDataset, LogFileError, LogValidationError, load_logs
from recgym.data.schema import SCHEMA_VERSION


def valid_logs() -> pd.DataFrame:
    return pd.DataFrame({
        "session_id": [0, 0, 1],
        "step": [0, 1, 0],
        "slate": [[1, 2, 3], [4, 5, 6], [7, 8, 9]],
        "click": [2, -1, 9],
        "note": ["café", "crème", "naïve"],
    })


def csv_text(frame: pd.DataFrame) -> str:
    frame = frame.assign(slate=frame["slate"].map(lambda s: " ".join(map(str, s))))
    return frame.to_csv(index=False)


def write_newer_log(path: Path) -> None:
    LogDataset(valid_logs()).save(path)
    table = pq.read_table(path)
    metadata = dict(table.schema.metadata)
    recgym_meta = json.loads(metadata[b"recgym"])
    recgym_meta["schema_version"] = 99
    metadata[b"recgym"] = json.dumps(recgym_meta).encode()
    pq.write_table(table.replace_schema_metadata(metadata), path)


def write_truncated_gzip(path: Path) -> None:
    rows = np.random.default_rng(0).integers(0, 10**6, size=(2000, 4))
    text = "session_id,step,slate,click\n" + "\n".join(",".join(map(str, r)) for r in rows)
    compressed = gzip.compress(text.encode())
    path.write_bytes(compressed[: len(compressed) // 2])


def parquet_bytes(tmp_path: Path) -> bytes:
    LogDataset(valid_logs()).save(tmp_path / "source.parquet")
    return (tmp_path / "source.parquet").read_bytes()


# (case, file name, how to write it, error type, texts the message must hold)
BAD_FILES = [
    ("newer schema version", "logs.parquet", write_newer_log, LogFileError,
     ["written by a newer recgym (schema version 99, this one reads up to "
      f"{SCHEMA_VERSION})", "upgrade recgym"]),
    ("empty csv", "logs.csv", lambda p: p.write_bytes(b""), LogFileError,
     ["is empty (0 bytes)", "write it again"]),
    ("empty parquet", "logs.parquet", lambda p: p.write_bytes(b""), LogFileError,
     ["is empty (0 bytes)"]),
    ("binary garbage csv", "logs.csv",
     lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)), LogFileError,
     ["binary data", "UTF-8"]),
    ("undecodable bytes without NUL", "logs.csv",
     lambda p: p.write_bytes(bytes(range(128, 256)) * 4), LogFileError,
     ["is not UTF-8 text", "byte 0x80 on line 1", "re-save it as UTF-8"]),
    ("latin-1 csv", "logs.csv",
     lambda p: p.write_bytes(csv_text(valid_logs()).encode("latin-1")), LogFileError,
     ["is not UTF-8 text", "byte 0xe9 on line 2", "Latin-1", "re-save it as UTF-8"]),
    ("utf-16 csv", "logs.csv",
     lambda p: p.write_bytes(csv_text(valid_logs()).encode("utf-16")), LogFileError,
     ["is UTF-16 text", "re-save it as UTF-8"]),
    ("csv that is not a log", "ratings.csv",
     lambda p: p.write_text("userId,movieId,rating\n1,3,4.0\n2,4,5.0\n"), LogValidationError,
     ["missing required column(s) session_id, step, slate, click",
      "every log needs session_id, step, slate, click", "column 'slate': required column"]),
    ("parquet that is not a log", "items.parquet",
     lambda p: pd.DataFrame({"item_id": [0, 1], "genre": ["a", "b"]}).to_parquet(p),
     LogValidationError, ["missing required column(s) session_id, step, slate, click"]),
    ("csv lacking one column", "logs.csv",
     lambda p: p.write_text(csv_text(valid_logs().drop(columns="click"))), LogValidationError,
     ["missing required column(s) click:", "every log needs"]),
    ("folder", "logs", lambda p: p.mkdir(), LogFileError,
     ["is a folder, not a log file", "pass the path of one log file"]),
    ("parquet bytes named .csv", "logs.csv",
     lambda p: p.write_bytes(parquet_bytes(p.parent)), LogFileError,
     ["holds Parquet data but is named as a CSV", "rename it to .parquet"]),
    ("csv text named .parquet", "logs.parquet",
     lambda p: p.write_text(csv_text(valid_logs())), LogFileError,
     ["is not a readable Parquet file", "holds text", "name it .csv"]),
    ("truncated parquet", "logs.parquet",
     lambda p: p.write_bytes(parquet_bytes(p.parent)[:200]), LogFileError,
     ["is not a readable Parquet file", "truncated or corrupt"]),
    ("plain text named .csv.gz", "logs.csv.gz",
     lambda p: p.write_text(csv_text(valid_logs())), LogFileError,
     ["is named .gz but is not gzip-compressed"]),
    ("truncated gzip", "logs.csv.gz", write_truncated_gzip, LogFileError,
     ["is not a readable gzip file", "truncated"]),
    ("ragged csv", "logs.csv",
     lambda p: p.write_text("session_id,step,slate,click\n0,0,1 2 3,1\n0,1,1,2,3,1\n"),
     LogFileError, ["is not a well-formed CSV", "Expected 4 fields in line 3", "quote list"]),
    ("unquoted list columns", "logs.csv",
     lambda p: p.write_text("session_id,step,slate,click\n0,0,1,2,3,1\n0,1,4,5,6,-1\n"),
     LogFileError, ["is not a well-formed CSV", "2 field(s) more than the header"]),
    ("csv of blank lines", "logs.csv", lambda p: p.write_text("\n\n"), LogFileError,
     ["holds no CSV data"]),
]


@pytest.mark.parametrize("case, name, write, error, texts", BAD_FILES,
                         ids=[case[0] for case in BAD_FILES])
def test_bad_log_file_is_refused_with_a_clear_error(tmp_path, case, name, write, error, texts):
    path = tmp_path / name
    write(path)
    with pytest.raises(error) as info:
        load_logs(path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(path) in message, f"{case}: the message does not name the file:\n{message}"
    for text in texts:
        assert text in message, f"{case}: {text!r} not in:\n{message}"
    # a short error of our own: pandas / pyarrow errors are not chained into the traceback
    error = info.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


@pytest.mark.parametrize("clean", [False, True])
def test_missing_columns_name_the_file_when_cleaning_too(tmp_path, clean):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId\n1,3\n")
    with pytest.raises(LogValidationError, match="ratings.csv"):
        load_logs(path, clean=clean)


def test_missing_path_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no log file at .*the folder holds no such"):
        load_logs(tmp_path / "missing.parquet")
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        load_logs(tmp_path / "nowhere" / "logs.parquet")


def test_folder_error_lists_the_logs_inside(tmp_path):
    LogDataset(valid_logs()).save(tmp_path / "run" / "logs.parquet")
    with pytest.raises(LogFileError, match="it holds logs.parquet"):
        load_logs(tmp_path / "run")


def test_current_and_older_schema_versions_load(tmp_path):
    path = tmp_path / "logs.parquet"
    LogDataset(valid_logs()).save(path)
    table = pq.read_table(path)
    metadata = dict(table.schema.metadata)
    assert json.loads(metadata[b"recgym"])["schema_version"] == SCHEMA_VERSION
    assert len(load_logs(path)) == 3
    del metadata[b"recgym"]  # a Parquet log written by other tools
    pq.write_table(table.replace_schema_metadata(metadata), path)
    assert len(load_logs(path)) == 3


def test_gzipped_and_tab_separated_logs_still_load(tmp_path):
    text = csv_text(valid_logs())
    (tmp_path / "logs.csv.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "logs.tsv").write_text(text.replace(",", "\t"))
    expected = LogDataset(valid_logs()).slates()
    for name in ("logs.csv.gz", "logs.tsv"):
        np.testing.assert_array_equal(load_logs(tmp_path / name).slates(), expected)


def test_empty_item_table_is_named(tmp_path):
    items = pd.DataFrame({"genre": list("abcdefghij")})
    LogDataset(valid_logs(), items=items).save(tmp_path / "logs.parquet")
    (tmp_path / "logs.items.parquet").write_bytes(b"")
    with pytest.raises(LogFileError, match="logs.items.parquet is empty"):
        load_logs(tmp_path / "logs.parquet")

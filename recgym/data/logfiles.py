"""Logs on disk: reading Parquet / CSV logs and item tables, writing them atomically.

A log saved by `LogDataset.save` is one Parquet file whose schema metadata (key
``recgym``) holds the schema version, ``num_items`` and the name of the item table, which
sits beside it as ``<stem>.items.parquet``; both files are written atomically. CSV / TSV
logs (optionally gzipped) write list columns as ``"[1, 2, 3]"``, ``"1 2 3"`` or ``"1|2|3"``.

Reading refuses a file it cannot read as a log with a `LogFileError` that names the file,
what is wrong and the fix, rather than a pandas / pyarrow traceback: a folder, an empty
file, binary or non-UTF-8 content in a CSV, Parquet bytes behind a ``.csv`` name (and the
reverse), a corrupt Parquet file, or a log written by a newer recgym. A path that does not
exist raises `FileNotFoundError`.
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
import re
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recgym.data.files import atomic_write
from recgym.data.schema import LIST_COLUMNS, SCHEMA_VERSION

METADATA_KEY = b"recgym"
ITEMS_SUFFIX = ".items.parquet"
PARQUET_SUFFIXES = (".parquet", ".pq")
TEXT_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"
# Bytes read from the start of a file to tell what it holds.
SNIFF_BYTES = 4096
_LIST_SEPARATORS = re.compile(r"[\s,;|]+")


class LogFileError(ValueError):
    """A file that cannot be read as a log; the message names it, what is wrong and the fix."""


def items_path(log_path: str | os.PathLike) -> Path:
    """Where the item table of the log at `log_path` lives: ``<stem>.items.parquet``."""
    log_path = Path(log_path)
    name = log_path.name
    stem = name[: -len(".parquet")] if name.endswith(".parquet") else name
    return log_path.with_name(stem + ITEMS_SUFFIX)


def write_log(
    logs: pd.DataFrame, path: str | os.PathLike, *, num_items: int,
    items: pd.DataFrame | None = None,
) -> Path:
    """Write a log to Parquet with recgym's metadata, and its item table beside it.

    Each file is written atomically, so an interrupted save never leaves half a log.
    """
    path = Path(path)
    items_name = None
    if items is not None:
        items_file = items_path(path)
        _write_table(pa.Table.from_pandas(items, preserve_index=True), items_file)
        items_name = items_file.name
    table = pa.Table.from_pandas(logs, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[METADATA_KEY] = json.dumps(
        {"schema_version": SCHEMA_VERSION, "num_items": num_items, "items": items_name}
    ).encode()
    _write_table(table.replace_schema_metadata(metadata), path)
    return path


def _write_table(table: pa.Table, path: Path) -> None:
    with atomic_write(path) as temporary:
        pq.write_table(table, temporary)


def read_log_frame(path: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a log table from Parquet or CSV without validating; return it and its metadata.

    Raises:
        FileNotFoundError: nothing exists at `path`.
        LogFileError: `path` is not a file recgym can read as a log (see the module docstring).
    """
    path = Path(path).expanduser()
    if not path.exists():
        where = ("the folder holds no such file" if path.parent.is_dir()
                 else f"the folder {path.parent} does not exist either")
        raise FileNotFoundError(f"no log file at {path} ({where}); pass the path of a .parquet "
                                "or .csv log, as written by LogDataset.save or recgym "
                                "generate-logs")
    if path.is_dir():
        logs = sorted(p.name for p in path.iterdir() if _is_log_name(p.name))
        holds = f"it holds {', '.join(logs[:5])}" if logs else "it holds no .parquet / .csv file"
        raise LogFileError(f"{path} is a folder, not a log file ({holds}); pass the path of "
                           f"one log file (recgym data info {path} summarises the folder)")
    is_parquet = path.suffix.lower() in PARQUET_SUFFIXES
    if not (is_parquet or _is_log_name(path.name)):
        raise LogFileError(
            f"cannot tell the format of {path}: use a .parquet file (LogDataset.save writes one) "
            "or a .csv / .tsv file with list columns written as '[1, 2, 3]' or '1 2 3'"
        )
    if is_parquet:
        table = read_parquet_table(path)
        return _table_to_frame(table, path), _recgym_metadata(table, path)
    return _read_text_log(path), {}


def read_item_table(log_path: Path, name: str) -> pd.DataFrame:
    """Read the item table `name` that the log at `log_path` refers to, from beside it."""
    items_file = log_path.with_name(name)
    if not items_file.exists():
        raise FileNotFoundError(
            f"{log_path} refers to its item table {items_file.name}, which is missing; copy "
            "it next to the log (LogDataset.save writes both)"
        )
    return _table_to_frame(read_parquet_table(items_file), items_file)


def _is_log_name(name: str) -> bool:
    name = name.lower()
    return name.endswith(PARQUET_SUFFIXES) or name.endswith(TEXT_SUFFIXES)


def _file_start(path: Path) -> bytes:
    """The first bytes of a file, which tell what it holds; an empty file is refused."""
    with open(path, "rb") as handle:
        start = handle.read(SNIFF_BYTES)
    if not start:
        raise LogFileError(f"{path} is empty (0 bytes), so it holds no table; write it again "
                           "(an interrupted copy or export leaves such files)")
    return start


def read_parquet_table(path: Path) -> pa.Table:
    """Read a Parquet file, saying what the file holds instead if it is not Parquet."""
    start = _file_start(path)
    if not start.startswith(PARQUET_MAGIC):
        raise LogFileError(f"{path} is not a readable Parquet file: {_describe_non_parquet(start)}")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise LogFileError(
            f"{path} is not a readable Parquet file: it starts like one but cannot be read "
            f"({error}); it is probably truncated or corrupt: write it again"
        ) from None


def _describe_non_parquet(start: bytes) -> str:
    """What a file that lacks the Parquet magic bytes holds, and the fix."""
    if start.startswith(GZIP_MAGIC):
        return "it holds gzip-compressed data; if it is a gzipped CSV log, name it .csv.gz"
    if _is_text(start):
        return ("it holds text, not Parquet data; if it is a CSV log, name it .csv "
                "(or .tsv if tab-separated)")
    return ("it does not start with the Parquet magic bytes 'PAR1'; write logs with "
            "LogDataset.save or recgym generate-logs")


def _is_text(start: bytes) -> bool:
    try:
        start.decode("utf-8")
    except UnicodeDecodeError as error:  # a character cut at the end of the sample is fine
        return error.start >= len(start) - 3 and b"\0" not in start
    return b"\0" not in start


def _table_to_frame(table: pa.Table, path: Path) -> pd.DataFrame:
    try:
        return table.to_pandas()
    except (pa.ArrowException, ValueError, TypeError) as error:
        raise LogFileError(f"{path} holds Parquet columns pandas cannot read ({error}); write "
                           "it with plain int / float / list<int> columns") from None


def _recgym_metadata(table: pa.Table, path: Path) -> dict[str, Any]:
    """The metadata `write_log` stored, after checking this recgym can read its version."""
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if not raw:
        return {}
    try:
        metadata = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        metadata = None
    version = metadata.get("schema_version", SCHEMA_VERSION) if isinstance(metadata, dict) else None
    if not isinstance(version, int):
        raise LogFileError(f"{path} has malformed recgym metadata (key 'recgym' in the Parquet "
                           f"schema: {raw[:80]!r}); write the log again with LogDataset.save")
    if version > SCHEMA_VERSION:
        raise LogFileError(
            f"{path} was written by a newer recgym (schema version {version}, this one reads up "
            f"to {SCHEMA_VERSION}); upgrade recgym (pip install -U recgym) to read it, or "
            "save it again with this version's LogDataset.save"
        )
    return metadata


def _open_text(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _bad_gzip(path: Path, error: Exception) -> LogFileError:
    return LogFileError(f"{path} is not a readable gzip file ({error}); it is probably "
                        "truncated: compress it again")


def _read_text_log(path: Path) -> pd.DataFrame:
    """Read a CSV / TSV log; list columns written as strings become lists of ints."""
    start = _file_start(path)
    if path.name.lower().endswith(".gz"):
        if not start.startswith(GZIP_MAGIC):
            raise LogFileError(f"{path} is named .gz but is not gzip-compressed; drop the .gz "
                               "from its name (or compress it with gzip)")
        try:
            with gzip.open(path, "rb") as handle:
                start = handle.read(SNIFF_BYTES)
        except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
            raise _bad_gzip(path, error) from None
    if start.startswith(PARQUET_MAGIC):
        raise LogFileError(f"{path} holds Parquet data but is named as a CSV; rename it to "
                           ".parquet")
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise LogFileError(f"{path} is UTF-16 text; recgym reads CSV logs as UTF-8: re-save it "
                           "as UTF-8 (e.g. iconv -f utf-16 -t utf-8 IN > OUT)")
    if b"\0" in start:
        raise LogFileError(f"{path} holds binary data (NUL bytes), not CSV text; pass a CSV "
                           "log in UTF-8, or a .parquet log")
    separator = "\t" if path.name.lower().endswith((".tsv", ".tsv.gz")) else ","
    try:
        frame = pd.read_csv(path, sep=separator)
    except UnicodeDecodeError:
        raise LogFileError(
            f"{path} is not UTF-8 text ({_first_undecodable_byte(path)}); if it is a CSV in "
            "another encoding (Latin-1, cp1252, ...), re-save it as UTF-8 (e.g. iconv -f "
            "latin1 -t utf-8 IN > OUT)"
        ) from None
    except pd.errors.EmptyDataError:
        raise LogFileError(f"{path} holds no CSV data (not even a header line); write the "
                           "log again") from None
    except (EOFError, gzip.BadGzipFile) as error:
        raise _bad_gzip(path, error) from None
    except pd.errors.ParserError as error:
        raise _ragged_csv(path, str(error).strip().splitlines()[-1]) from None
    if not isinstance(frame.index, pd.RangeIndex):  # pandas made the surplus fields row labels
        raise _ragged_csv(path, f"its rows have {frame.index.nlevels} field(s) more than the "
                          "header")
    for name in LIST_COLUMNS:
        if name in frame.columns and not pd.api.types.is_numeric_dtype(frame[name].dtype):
            frame[name] = frame[name].astype(object).map(_parse_list_string)
    return frame


def _ragged_csv(path: Path, detail: str) -> LogFileError:
    return LogFileError(f"{path} is not a well-formed CSV ({detail}); every line needs as many "
                        "fields as the header: quote list columns that contain the separator, "
                        "e.g. \"[1, 2, 3]\"")


def _first_undecodable_byte(path: Path) -> str:
    """Where the first byte UTF-8 cannot decode is, e.g. "byte 0xe9 on line 3"."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with _open_text(path) as handle:
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:  # error.object: bytes held over + chunk
                line += error.object.count(b"\n", 0, error.start)
                return f"byte {error.object[error.start]:#04x} on line {line}"
            line += chunk.count(b"\n")
    return "it ends inside a multi-byte character"


def _parse_list_string(cell: Any) -> Any:
    """'[1, 2, 3]', '1 2 3' or '1|2|3' -> [1, 2, 3]; anything unparsable is returned as is."""
    if not isinstance(cell, str):
        return cell
    body = cell.strip().strip("[]()").strip()
    if not body:
        return []
    try:
        return [int(token) for token in _LIST_SEPARATORS.split(body) if token]
    except ValueError:
        return cell

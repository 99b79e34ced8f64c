"""Downloading dataset archives: checksum-verified, atomic, safe to interrupt.

`download_file` streams a URL (``https://``, ``http://``, ``file://``) or a local path into
a temporary file beside the destination while hashing it, checks the SHA-256 when one is
known, and only then renames it into place. An interrupted download leaves no partial
file behind; running it again starts over. `extract_zip` unpacks into a temporary folder
and renames it into place, refusing members that would land outside it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import BinaryIO

CHUNK_BYTES = 1 << 20


class ChecksumError(ValueError):
    """A downloaded file's SHA-256 differs from the pinned one."""


def sha256_of(path: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def _open_source(url: str) -> tuple[BinaryIO, int | None]:
    if "://" not in url:
        path = Path(url).expanduser()
        return open(path, "rb"), path.stat().st_size
    request = urllib.request.Request(url, headers={"User-Agent": "recgym-data-download"})
    response = urllib.request.urlopen(request, timeout=60)
    size = response.headers.get("Content-Length")
    return response, int(size) if size else None


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    progress: bool = True,
    chunk_bytes: int = CHUNK_BYTES,
) -> Path:
    """Download `url` to `dest`, verifying `sha256` when given; skip if already there.

    Args:
        url: ``https://``/``http://``/``file://`` URL, or a local file path.
        dest: destination file; its folder is created.
        sha256: expected hex digest. A file already at `dest` with this digest is kept
            (no download); without a digest an existing file is kept as it is.
        progress: show a tqdm progress bar.
        chunk_bytes: read size.

    Raises:
        ChecksumError: the downloaded bytes do not match `sha256` (nothing is written).
    """
    dest = Path(dest).expanduser()
    if dest.exists():
        if sha256 is None or sha256_of(dest) == sha256.lower():
            return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        source, total = _open_source(url)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False)
        with source, os.fdopen(fd, "wb") as out:
            while block := source.read(chunk_bytes):
                out.write(block)
                digest.update(block)
                if bar is not None:
                    bar.update(len(block))
        if bar is not None:
            bar.close()
        got = digest.hexdigest()
        if sha256 is not None and got != sha256.lower():
            raise ChecksumError(
                f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {got}. "
                "The file may be corrupt or changed upstream; nothing was written to "
                f"{dest}. Delete any stale copy and retry, or pass sha256=None if you trust "
                "the new file."
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def extract_zip(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> Path:
    """Unpack `archive` into `dest_dir` atomically; return `dest_dir`.

    The members are extracted into a temporary sibling folder which is renamed into
    place at the end, so an interrupted extraction never leaves a half-filled folder.
    Members with absolute paths or ``..`` components are refused.
    """
    archive = Path(archive)
    dest_dir = Path(dest_dir).expanduser()
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest_dir.parent, prefix=f".{dest_dir.name}."))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                parts = Path(member.filename).parts
                if Path(member.filename).is_absolute() or ".." in parts:
                    raise ValueError(f"refusing unsafe path {member.filename!r} in {archive}")
            zf.extractall(tmp)
        if dest_dir.exists():
            shutil.rmtree(dest_dir)
        os.replace(tmp, dest_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest_dir

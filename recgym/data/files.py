"""Atomic file writes: a crash or an interrupt never leaves a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path``.

    The temporary file lives in the same folder (so the final ``os.replace`` is atomic)
    and is removed if the block raises. Parent folders are created.

    Example:
        >>> with atomic_write("results.md") as temporary:  # doctest: +SKIP
        ...     temporary.write_text(table)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o644)  # mkstemp creates owner-only files
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def save_figure(figure, path: str | os.PathLike, *, dpi: int = 110) -> Path:
    """Lay out a matplotlib figure, write it as PNG atomically, and close it."""
    import matplotlib.pyplot as plt

    try:
        figure.tight_layout()
        with atomic_write(path, suffix=".png") as temporary:
            figure.savefig(temporary, format="png", dpi=dpi)
    finally:
        plt.close(figure)
    return Path(path)

"""Atomic file writes: a crash or an interrupt never leaves a half-written file behind.

Long runs also save their progress here (:func:`save_progress`), so a killed run can
resume from it with the same settings (:func:`load_progress`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


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


def save_progress(path: str | os.PathLike, run: dict[str, Any], **state: Any) -> None:
    """Write the progress of a long run as JSON, atomically, with the settings that made it.

    Args:
        path: the progress file.
        run: what identifies the run (e.g. its command-line arguments), JSON values.
        **state: what the run needs to continue, JSON values.
    """
    with atomic_write(path, suffix=".json") as temporary:
        temporary.write_text(json.dumps({"run": run, **state}))


def load_progress(path: str | os.PathLike, run: dict[str, Any]) -> dict[str, Any]:
    """The state :func:`save_progress` wrote at ``path``, if a run with the same ``run`` did.

    Raises:
        ValueError: the saved run had other settings; the message names the first that
            differs, so that resuming never mixes the work of two different runs.
    """
    saved = json.loads(Path(path).read_text(encoding="utf-8"))
    current = json.loads(json.dumps(run))  # as JSON gives it back: tuples become lists
    for name in [*current, *(name for name in saved["run"] if name not in current)]:
        if saved["run"].get(name) != current.get(name):
            raise ValueError(
                f"cannot resume: the interrupted run in {path} had {name} "
                f"{saved['run'].get(name)!r}, this one has {name} {current.get(name)!r}; pass "
                "the same arguments to resume it, or start afresh (--overwrite, or delete it)")
    return saved

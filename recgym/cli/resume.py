"""``--resume`` / ``--overwrite`` of long commands whose runs save their progress as they go.

A killed run leaves its progress beside its output. The next run continues it with
``--resume`` (same arguments, else refused), discards it with ``--overwrite``, and without
either is refused: progress is never silently reused nor silently deleted.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_resume_options(command: argparse.ArgumentParser, progress: str) -> None:
    """Add ``--resume`` and ``--overwrite``; ``progress`` says where the progress is kept."""
    choice = command.add_mutually_exclusive_group()
    choice.add_argument("--resume", action="store_true",
                        help=f"continue an interrupted run from its progress ({progress}) "
                             "with the same arguments, to the result it would have had; "
                             "with no progress there, start afresh")
    choice.add_argument("--overwrite", action="store_true",
                        help=f"start afresh, discarding the progress of an interrupted run "
                             f"({progress})")


def run_arguments(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """``{"--sessions": 1000, ...}``: the options that decide a run's result, saved with it."""
    return {f"--{name.replace('_', '-')}": getattr(args, name) for name in names}


def continues_interrupted_run(progress: Path, args: argparse.Namespace) -> bool:
    """Whether to continue the interrupted run whose progress is at ``progress``.

    True with ``--resume`` when there is progress; False when there is none (said if
    ``--resume`` asked for it) or with ``--overwrite``, and the caller starts afresh.

    Raises:
        FileExistsError: there is progress and neither option was given.
    """
    if not progress.exists():
        if args.resume:
            print(f"nothing to resume at {progress}: starting afresh")
        return False
    if args.resume or args.overwrite:
        return args.resume
    raise FileExistsError(f"a previous run was interrupted and left its progress in {progress}: "
                          "pass --resume to continue it (with the same arguments), or "
                          f"--overwrite to start afresh (or delete {progress})")

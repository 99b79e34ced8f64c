"""Argument types shared by the ``recgym`` commands (argparse ``type=`` functions).

Each one checks a value while the command line is parsed, so bad input is refused before
any work starts, and its message (``argument --max-steps: ...``) names the option, the
value and what is allowed. Standard library only: `recgym --help` must stay fast.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import Any

_WORDS = {"true": True, "false": False, "none": None, "null": None}


def parse_value(text: str) -> Any:
    """A command-line value as a Python value: int, float, bool, None, tuple, else the text.

    Python literals (``100``, ``1e-3``, ``True``, ``(600,)``, ``'cpu'``) are evaluated;
    ``true`` / ``false`` / ``none`` are accepted in any case; anything else stays a string,
    so ``device=cpu`` needs no quotes.
    """
    if text.strip().lower() in _WORDS:
        return _WORDS[text.strip().lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def key_value(text: str) -> tuple[str, Any]:
    """``"num_items=100"`` -> ``("num_items", 100)``: the type of ``--env-arg`` and ``--set``.

    Raises:
        argparse.ArgumentTypeError: no ``=``, or a key that is not a Python name.
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE with KEY a Python name (e.g. num_items=100), got {text!r}")
    return key, parse_value(value.strip())


def positive_int(text: str) -> int:
    """An integer >= 1 (counts of steps, sessions, ...)."""
    try:
        value: int | None = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _new_file(text: str, suffix: str, kind: str) -> Path:
    """A file to write: its name ends in ``suffix`` and its folder exists."""
    path = Path(text).expanduser()
    if path.suffix != suffix:
        raise argparse.ArgumentTypeError(
            f"{kind}: the file name must end in {suffix}, got {text!r}")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(
            f"folder {str(path.parent)!r} of {text!r} does not exist; create it first")
    return path


def parquet_output(text: str) -> Path:
    """A Parquet file to write: the name ends in ``.parquet`` and its folder exists."""
    return _new_file(text, ".parquet", "logs are written as Parquet")


def model_output(text: str) -> Path:
    """A stable-baselines3 model to write: the name ends in ``.zip`` and its folder exists."""
    return _new_file(text, ".zip", "a model is written as a stable-baselines3 zip")


def checkpoint_output(text: str) -> Path:
    """A checkpoint to write: the name ends in ``.pt`` and its folder exists."""
    return _new_file(text, ".pt", "a checkpoint is written as a torch file")


def env_id(text: str) -> str:
    """A registered recgym env id (the registry is strings: nothing heavy is imported)."""
    from recgym.registration import ENV_DESCRIPTIONS

    if text not in ENV_DESCRIPTIONS:
        raise argparse.ArgumentTypeError(
            f"unknown env {text!r}; registered: {', '.join(ENV_DESCRIPTIONS)}")
    return text

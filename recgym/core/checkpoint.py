"""One checkpoint convention for every simulator, CF model and agent.

A checkpoint is one file: ``torch.save`` of a plain dict holding

* ``recgym_checkpoint``: the format version (:data:`FORMAT_VERSION`);
* ``kind``: what it holds (``"recsimu"``, ``"irecgan-user"``, ``"cascading-dqn"``, ...);
* ``config``: the model's config as a dict; ``state_dict``: the weights;
* any extra entries the kind needs (start states, item features, training history).

It is read with ``torch.load(..., weights_only=True)``, so loading never unpickles code,
and written atomically (a temporary file in the same folder, then ``os.replace``), so a
killed writer leaves the previous file intact. Every way a file can be wrong gets a
:class:`CheckpointError` that names the file, says what is wrong and, where the caller
knows it, the command that rebuilds the file.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file is not a readable recgym checkpoint of the expected kind."""


def checkpoint_payload(kind: str, config: dict[str, Any], state_dict: dict[str, Any],
                       **extra: Any) -> dict[str, Any]:
    """The dict a checkpoint file holds (format version, kind, config, weights, extras)."""
    return {"recgym_checkpoint": FORMAT_VERSION, "kind": kind, "config": config,
            "state_dict": state_dict, **extra}


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (parent folders are created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, temporary)
        os.chmod(temporary, 0o644)  # mkstemp creates owner-only files
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _fix(rebuild: str | None) -> str:
    return f"; rebuild it with `{rebuild}`" if rebuild else ""


def read_checkpoint_file(path: str | os.PathLike, *, rebuild: str | None = None
                         ) -> dict[str, Any]:
    """Load a checkpoint file's dict with ``weights_only=True``; no kind or version checks.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is empty, truncated, corrupt, not a torch file, or holds
            something other than a dict (e.g. a bare tensor).
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"checkpoint {path} {what}{_fix(rebuild)}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (an interrupted copy?){_fix(rebuild)}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"checkpoint {path} is corrupt, or holds objects other than tensors and plain "
            f"values, which recgym never unpickles{_fix(rebuild)}") from None
    except Exception as error:  # torch's readers fail on garbage in many ways (EOF, index...)
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt, or not a torch file "
            f"({type(error).__name__}: {str(error).splitlines()[0][:120]}){_fix(rebuild)}"
        ) from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} is not a recgym checkpoint: it holds a "
                              f"{type(payload).__name__}, not a dict{_fix(rebuild)}")
    return payload


def check_checkpoint(payload: dict[str, Any], kind: str | Collection[str], *,
                     source: str | os.PathLike = "checkpoint", rebuild: str | None = None
                     ) -> dict[str, Any]:
    """Refuse a loaded checkpoint of another kind or from a newer recgym; return it.

    Files written before the format version existed (no ``recgym_checkpoint`` entry but a
    ``kind``) are read as version 0: the same entries, ``config`` not always among them.
    """
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    found = payload.get("kind")
    if found is None:
        raise CheckpointError(f"{source} is not a recgym checkpoint (no 'kind' entry; "
                              f"expected {' or '.join(kinds)}){_fix(rebuild)}")
    version = payload.get("recgym_checkpoint", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{source} was written by a newer recgym (checkpoint format "
                              f"{version}; this recgym reads up to {FORMAT_VERSION}): "
                              "upgrade recgym to load it")
    if found not in kinds:
        raise CheckpointError(f"{source} is a checkpoint of {found!r}, expected "
                              f"{' or '.join(repr(k) for k in kinds)}{_fix(rebuild)}")
    required = ("config", "state_dict") if version >= 1 else ("state_dict",)
    missing = [key for key in required if key not in payload]
    if missing:
        raise CheckpointError(f"{source} ({found}) lacks {missing}: truncated by hand or "
                              f"written by another tool{_fix(rebuild)}")
    return payload


def load_checkpoint(path: str | os.PathLike, kind: str | Collection[str], *,
                    rebuild: str | None = None) -> dict[str, Any]:
    """Read and check a checkpoint file of the given kind(s) (see :func:`check_checkpoint`)."""
    payload = read_checkpoint_file(path, rebuild=rebuild)
    return check_checkpoint(payload, kind, source=path, rebuild=rebuild)


def config_from_checkpoint(config_class: type, payload: dict[str, Any], *,
                           source: str | os.PathLike = "checkpoint") -> Any:
    """The checkpoint's config as ``config_class``; a config that does not fit is refused."""
    try:
        return config_class(**payload["config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{source} ({payload.get('kind')}) holds a config that does not "
                              f"fit {config_class.__name__}: {error}") from None

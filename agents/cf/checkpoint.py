"""One-file checkpoints for the collaborative-filtering models: config + weights (+ training state).

A checkpoint is ``torch.save`` of a plain dict of tensors, numbers, strings, lists and dicts:

* ``format``: ``"recgym.cf/1"``; ``model``: the class name (``"MultVAE"``, ``"RaCT"``, ...);
* ``config``: the model's config dataclass as a dict;
* ``state_dict``: the weights;
* ``training`` (optional): epoch, optimizer states, generator state, history and the
  best-validation weights, so `fit(..., resume=True)` continues where it stopped.

It is read with ``torch.load(..., weights_only=True)``, so loading never unpickles code, and
written atomically (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "recgym.cf/1"


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write `payload` (plus the format tag) to `path` atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save({"format": FORMAT, **payload}, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint dict without unpickling code; checks the format tag."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a recgym CF checkpoint (expected format {FORMAT!r})")
    return payload


def load_model(path: str | os.PathLike) -> Any:
    """Rebuild whichever CF model a checkpoint holds (MultVAE, MultDAE, RaCT, CFSFL, EASE, ...)."""
    from agents.cf import MODELS

    payload = read_checkpoint(path)
    name = payload.get("model")
    if name not in MODELS:
        raise ValueError(f"{path} holds unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name].load(path)

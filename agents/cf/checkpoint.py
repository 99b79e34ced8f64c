"""Checkpoints of the collaborative-filtering models, in recgym's one convention.

A CF checkpoint is a :mod:`recgym.core.checkpoint` file of kind ``"cf-model"`` whose
``model`` entry names the class (``"MultVAE"``, ``"RaCT"``, ...), plus an optional
``training`` entry (epoch, optimizer states, generator state, history and the
best-validation weights) so that ``fit(..., resume=True)`` continues where it stopped.
Files of the earlier ``"recgym.cf/1"`` format are still read.
"""

from __future__ import annotations

import os
from typing import Any

from recgym.core.checkpoint import check_checkpoint, read_checkpoint_file

KIND = "cf-model"
LEGACY_FORMAT = "recgym.cf/1"
REBUILD = "recgym train MODEL --data DATA --out FILE"


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a CF checkpoint without unpickling code."""
    payload = read_checkpoint_file(path, rebuild=REBUILD)
    if payload.get("format") == LEGACY_FORMAT:
        return payload
    return check_checkpoint(payload, KIND, source=path, rebuild=REBUILD)


def load_model(path: str | os.PathLike) -> Any:
    """Rebuild whichever CF model a checkpoint holds (MultVAE, MultDAE, RaCT, CFSFL, EASE, ...)."""
    from agents.cf import MODELS

    payload = read_checkpoint(path)
    name = payload.get("model")
    if name not in MODELS:
        raise ValueError(f"{path} holds unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name].load(path)

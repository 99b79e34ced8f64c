"""Data, model construction and one training run, shared by the CLI and the benchmarks.

Datasets (all binarised and split under strong generalisation, RaCT appendix A):

* ``ml-latest-small``, ``ml-100k``, ``ml-1m``, ``ml-20m`` or a MovieLens folder: the Liang et
  al. preprocessing (ratings >= 4 kept, users with >= 5 of them) and
  `strong_generalization_split` from `recgym.data.cf`;
* ``ml-1m-lcf`` or a folder with ``train.txt`` / ``test.txt``: the binarised ML-1M files of
  the LCF / RecZoo split. Their train and test parts are merged back into full histories and
  split the same way (the models are built for held-out users, not held-out items);
* ``planted-<users>x<items>[-s<seed>]``: `planted_interactions`, a synthetic ML-20M-shaped
  matrix with a known low-rank preference structure (seed 0 unless given).

By default 10% of the users are validation users and 10% test users (ML-20M: 10K).

Under ``torchrun`` (``WORLD_SIZE > 1``) Mult-VAE / Mult-DAE train data-parallel (see
:mod:`recgym.core.distributed`); rank 0 alone writes the checkpoint, plot and record.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from agents.cf import CFSFL, EASE, MultDAE, MultVAE, Popularity, RaCT
from agents.cf.base import CFModel, TrainableCF
from recgym.core.distributed import init_data_parallel
from recgym.core.random import isolated_global_rng
from recgym.data.cf import (
    LIANG_SEED,
    PLANTED_NAME,
    liang_preprocess,
    load_ml1m_implicit,
    planted_interactions,
    strong_generalization_split,
)
from recgym.data.paths import default_data_root

MODEL_NAMES: dict[str, type[CFModel]] = {
    "mult-vae": MultVAE, "mult-dae": MultDAE, "ract": RaCT, "cf-sfl": CFSFL, "ease": EASE,
    "popularity": Popularity,
}


@dataclass
class CFData:
    """A strong-generalisation split ready for the models."""

    name: str
    train: sp.csr_matrix
    valid: tuple[sp.csr_matrix, sp.csr_matrix]
    test: tuple[sp.csr_matrix, sp.csr_matrix]
    summary: str
    item_ids: np.ndarray | None = None  # dataset item id of each column (for env policies)

    @property
    def num_items(self) -> int:
        """Catalogue size."""
        return self.train.shape[1]


def _read_interactions(name: str, data_root: str | os.PathLike | None) -> tuple[str, pd.DataFrame,
                                                                             bool]:
    """Interactions (user_id, item_id[, rating]) and whether they are binarised already."""
    key = name.lower()
    planted = PLANTED_NAME.match(key)
    if planted:
        users, items, seed = (int(g) if g else 0 for g in planted.groups())
        return key, planted_interactions(users, items, seed=seed), True
    if key.startswith("planted"):
        raise ValueError(f"{name!r}: a planted matrix is named planted-<users>x<items>"
                         "[-s<seed>], e.g. planted-20000x4000 or planted-20000x4000-s1")
    path = Path(name).expanduser()
    root = Path(data_root).expanduser() if data_root else None
    lcf_dir = None
    if path.is_dir() and (path / "train.txt").is_file():
        lcf_dir = path
    elif key in ("ml-1m-lcf", "movielens-1m-implicit-lcf"):
        lcf_dir = (root or default_data_root()) / "movielens-1m-implicit-lcf"
        if not (lcf_dir / "train.txt").is_file():
            raise FileNotFoundError(f"ml-1m-lcf: no {lcf_dir / 'train.txt'}; pass the folder "
                                    "holding movielens-1m-implicit-lcf/ as data_root "
                                    "(recgym train --root DIR) or set RECGYM_DATA")
    if lcf_dir is not None:
        split = load_ml1m_implicit(lcf_dir)
        both = pd.concat([split.train, split.test], ignore_index=True)
        return "ml-1m-lcf", both, True
    from recgym.data.movielens import load_movielens

    ml = load_movielens(name, root=root)
    return ml.name, ml.interactions, False


def load_cf_data(name: str, *, seed: int = LIANG_SEED, heldout: int | float = 0.1,
                 data_root: str | os.PathLike | None = None) -> CFData:
    """Load, binarise and split a dataset by name or path (see the module docstring).

    Args:
        name: dataset name or folder.
        seed: split seed (98765 is Liang et al.'s).
        heldout: validation (and test) users: a count, or a fraction of the users.
        data_root: folder holding the datasets (default: ``$RECGYM_DATA``, else
            ``~/.cache/recgym/data``; see `recgym.data.paths.default_data_root`).
    """
    label, frame, binary = _read_interactions(name, data_root)
    if not binary:
        frame = liang_preprocess(frame, min_rating=4.0, min_user_count=5)
    n_users = frame["user_id"].nunique()
    n_held = int(round(heldout * n_users)) if isinstance(heldout, float) else int(heldout)
    split = strong_generalization_split(frame, max(1, n_held), seed=seed)
    return CFData(label, split.train, (split.val_fold_in, split.val_target),
                  (split.test_fold_in, split.test_target), split.summary(), split.item_ids)


def _option_problem(default: Any, value: Any) -> str | None:
    """What is wrong with `value` for a config option whose default is `default`, if any."""
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if isinstance(default, bool):
        return None if isinstance(value, bool) else "expected True or False"
    if isinstance(default, int):
        ok = number(value) and isinstance(value, int) and value >= 0
        return None if ok else "expected an integer >= 0"
    if isinstance(default, float):
        return None if number(value) and value >= 0 else "expected a number >= 0"
    if isinstance(default, tuple):
        ok = isinstance(value, (tuple, list)) and all(
            number(v) and isinstance(v, int) and v > 0 for v in value)
        return None if ok else "expected a tuple of integers > 0, e.g. (600,)"
    if isinstance(default, str):
        return None if isinstance(value, str) else "expected a string"
    return None


def check_overrides(kind: str, overrides: dict[str, Any]) -> None:
    """Refuse an unknown model, unknown options and values of the wrong type or sign.

    An option takes values of its config default's type (a float option also takes ints);
    numbers must be >= 0. Checked before any data is loaded or model built.

    Raises:
        ValueError: naming the model, the option and the value.
    """
    if kind not in MODEL_NAMES:
        raise ValueError(f"unknown model {kind!r}; choose from {sorted(MODEL_NAMES)}")
    defaults = {f.name: f.default for f in dataclasses.fields(MODEL_NAMES[kind].config_class)
                if f.name != "num_items"}
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise ValueError(f"{kind} has no option(s) {sorted(unknown)}; "
                         f"options: {sorted(defaults)}")
    for key, value in overrides.items():
        problem = _option_problem(defaults[key], value)
        if problem is not None:
            raise ValueError(f"{kind} option {key}={value!r}: {problem}")


def build_model(kind: str, num_items: int, *, seed: int = 0, **overrides: Any) -> CFModel:
    """A model by CLI name (``mult-vae``, ``ract``, ...) with config overrides."""
    check_overrides(kind, overrides)
    cls = MODEL_NAMES[kind]
    if "seed" in {f.name for f in dataclasses.fields(cls.config_class)}:
        overrides.setdefault("seed", seed)
    return cls(num_items, **overrides)


def plot_history(history: list[dict[str, Any]], path: str | os.PathLike, title: str) -> None:
    """Validation NDCG@100 per epoch, stage boundaries marked, as a small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history if "valid_ndcg@100" in h]
    if not epochs:
        return
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.plot(epochs, [h["valid_ndcg@100"] for h in history if "valid_ndcg@100" in h], lw=1)
    prev = None
    for h in history:
        if prev is not None and h["stage"] != prev:
            ax.axvline(h["epoch"] - 0.5, color="grey", ls=":", lw=0.8)
        prev = h["stage"]
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation NDCG@100")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


@isolated_global_rng
def run(kind: str, data: CFData, *, seed: int = 0, out_dir: str | os.PathLike | None = None,
        resume: bool = False, progress: bool = True, overrides: dict[str, Any] | None = None,
        ) -> dict[str, Any]:
    """Train one model on `data`, evaluate it on the test users, write checkpoint + plot.

    Returns a JSON-able record: dataset, model, seed, config, test metrics (mean, sem),
    training seconds and the per-epoch history.
    """
    torch.manual_seed(seed)  # only for third-party code that might read the global state
    model = build_model(kind, data.num_items, seed=seed, **(overrides or {}))
    parallel = init_data_parallel()
    if parallel is not None:
        if type(model) not in (MultVAE, MultDAE):  # RaCT subclasses them; its critic is not sharded
            raise ValueError(f"data-parallel training (torchrun) supports mult-vae and "
                             f"mult-dae, not {kind}: run {kind} in one process")
        model.data_parallel = parallel
        progress = progress and parallel.is_main
    writes = out_dir is not None and (parallel is None or parallel.is_main)
    stem = f"{kind}-{data.name}-seed{seed}"
    ckpt = Path(out_dir) / f"{stem}.pt" if out_dir is not None else None
    if ckpt is not None and resume and ckpt.is_file() and not isinstance(model, TrainableCF):
        model = type(model).load(ckpt)
    start = time.perf_counter()
    model.fit(data.train, valid=data.valid, checkpoint=ckpt, progress=progress,
              **({"resume": resume} if isinstance(model, TrainableCF) else {}))
    seconds = time.perf_counter() - start
    eval_start = time.perf_counter()
    metrics = model.evaluate(*data.test)
    eval_seconds = time.perf_counter() - eval_start
    history = getattr(model, "history", [])
    if writes and history:
        plot_history(history, Path(out_dir) / f"{stem}.png", f"{kind} on {data.name}, seed {seed}")
    record = {
        "dataset": data.name, "model": kind, "seed": seed,
        "config": dataclasses.asdict(model.config),
        "test": {k: {"mean": v.mean, "sem": v.sem, "users": v.n_users}
                 for k, v in metrics.items()},
        "train_seconds": seconds, "eval_seconds": eval_seconds,
        "history": history,
    }
    if writes:
        path = Path(out_dir) / f"{stem}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=1, default=_json_default))
        os.replace(tmp, path)
    return record


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

"""Shared parts of the CF models: checks, evaluation, policy, checkpoints, training loop.

Input checks, offline evaluation, the env policy, one-file checkpoints and a resumable,
staged training loop.

A model scores a batch of users from their binary histories, ``score(x) -> (B, M)``; the
ranking of unseen items by that score is both its offline prediction (RaCT appendix A:
fold-in items are removed before ranking) and its slate in an environment.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from agents.cf.checkpoint import KIND, read_checkpoint
from agents.cf.policy import CFPolicy
from recgym.core.checkpoint import checkpoint_payload, save_checkpoint
from recgym.evaluation.ranking import evaluate_scores, summarize

DEFAULT_METRICS = ("recall@20", "recall@50", "ndcg@100")
HeldOut = tuple[sp.spmatrix, sp.spmatrix]


def check_interactions(matrix: Any, num_items: int, name: str = "matrix", *,
                       allow_empty_rows: bool = True) -> sp.csr_matrix:
    """A binary float32 CSR matrix with `num_items` columns, or a clear ValueError.

    Accepts scipy sparse matrices and 2-D numpy arrays (converted to CSR).
    """
    if isinstance(matrix, np.ndarray):
        matrix = sp.csr_matrix(matrix)
    if not sp.issparse(matrix):
        raise TypeError(f"{name} must be a scipy sparse matrix (users x items), "
                        f"got {type(matrix).__name__}")
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D (users x items), got shape {matrix.shape}")
    if matrix.shape[1] != num_items:
        raise ValueError(
            f"{name} has {matrix.shape[1]} item columns but the model's catalogue has "
            f"{num_items} items: item ids must be 0..{num_items - 1} (map new items out, "
            "or build the model with the larger catalogue)")
    csr = sp.csr_matrix(matrix, dtype=np.float32)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    if csr.nnz and not np.all(csr.data == 1.0):
        bad = np.unique(csr.data[csr.data != 1.0])[:5]
        raise ValueError(f"{name} must be binary (0/1 implicit feedback); found values "
                         f"{bad.tolist()}: binarise it first (e.g. liang_preprocess)")
    if not allow_empty_rows:
        empty = np.flatnonzero(np.diff(csr.indptr) == 0)
        if len(empty):
            raise ValueError(f"{name} has {len(empty)} users without any interaction "
                             f"(rows {empty[:5].tolist()}...): drop them before training")
    return csr


def csr_to_dense(block: sp.csr_matrix, device: torch.device | str = "cpu") -> Tensor:
    """Dense float32 ``(b, M)`` tensor of a CSR block (one mini-batch, never the whole matrix)."""
    coo = block.tocoo()
    out = torch.zeros(block.shape, dtype=torch.float32, device=device)
    if coo.nnz:
        rows = torch.as_tensor(coo.row, dtype=torch.long)
        cols = torch.as_tensor(coo.col, dtype=torch.long)
        out[rows, cols] = torch.as_tensor(coo.data, dtype=torch.float32)
    return out


def _held_out(fold_in: Any, target: Any) -> HeldOut:
    if target is None:
        if isinstance(fold_in, tuple | list) and len(fold_in) == 2:
            return fold_in[0], fold_in[1]
        for a, b in (("fold_in", "target"), ("test_fold_in", "test_target")):
            if hasattr(fold_in, a) and hasattr(fold_in, b):
                return getattr(fold_in, a), getattr(fold_in, b)
        raise TypeError("evaluate needs (fold_in, target): pass both matrices or a 2-tuple")
    return fold_in, target


class CFModel(nn.Module):
    """Base of every CF model: a config dataclass, ``score``, evaluation, policy, checkpoint."""

    config_class: ClassVar[type]
    config: Any

    @property
    def num_items(self) -> int:
        """Size of the item catalogue (columns of the interaction matrix)."""
        return int(self.config.num_items)

    def score(self, x: Tensor) -> Tensor:
        """Scores ``(B, M)`` of every item for users with binary histories ``x`` ``(B, M)``."""
        raise NotImplementedError

    @torch.no_grad()
    def score_csr(self, block: sp.spmatrix) -> Tensor:
        """Scores for a CSR block of user histories (checked, densified per block)."""
        block = check_interactions(block, self.num_items, "fold-in")
        was_training = self.training
        self.eval()
        try:
            return self.score(csr_to_dense(block))
        finally:
            self.train(was_training)

    def evaluate(self, fold_in: Any, target: Any = None, *,
                 metrics: tuple[str, ...] = DEFAULT_METRICS, batch_size: int = 500,
                 per_user: bool = False) -> dict[str, Any]:
        """Recall@R / NDCG@R on held-out users (RaCT appendix A protocol, eq. 12-13).

        Args:
            fold_in: ``(N, M)`` sparse fold-in histories, or a ``(fold_in, target)`` pair.
            target: ``(N, M)`` sparse target items (disjoint from the fold-in).
            metrics: metric names (``recall@R``, ``ndcg@R``, ``precision@k``).
            batch_size: users per mini-batch.
            per_user: return per-user arrays (NaN for users without targets) instead of
                `MetricSummary` (mean, standard error, users counted).
        """
        fold_in, target = _held_out(fold_in, target)
        fold_in = check_interactions(fold_in, self.num_items, "fold-in")
        target = check_interactions(target, self.num_items, "target")
        if fold_in.shape[0] != target.shape[0]:
            raise ValueError(f"fold-in has {fold_in.shape[0]} users, target {target.shape[0]}")
        if fold_in.multiply(target).nnz:
            raise ValueError("fold-in and target share items; the protocol needs them disjoint")
        values = evaluate_scores(self.score_csr, fold_in, target, metrics, batch_size)
        if per_user:
            return values
        return {m: summarize(v) for m, v in values.items()}

    def as_policy(self, k: int = 10, *, history_key: str = "clicks", pad_id: int | None = None,
                  item_ids: Any = None, candidates_key: str | None = None) -> CFPolicy:
        """This model as a recgym `Policy` recommending ``k`` unseen items from click histories.

        See `agents.cf.policy.CFPolicy` for ``item_ids`` (env id of each model column) and
        ``candidates_key`` (rank a candidate pool and return positions in it).
        """
        return CFPolicy(self, k, history_key=history_key, pad_id=pad_id, item_ids=item_ids,
                        candidates_key=candidates_key)

    # ------------------------------------------------------------------ checkpoints

    def _payload(self) -> dict[str, Any]:
        weights = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        return checkpoint_payload(KIND, asdict(self.config), weights, model=type(self).__name__)

    def save(self, path: str | os.PathLike) -> Path:
        """Write config + weights to one file (atomically)."""
        return save_checkpoint(path, self._payload())

    @classmethod
    def _config_from_dict(cls, data: dict[str, Any]) -> Any:
        names = {f.name for f in fields(cls.config_class)}
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()
                  if k in names}
        return cls.config_class(**kwargs)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CFModel:
        """Rebuild a model from a checkpoint written by `save` or by training."""
        payload = read_checkpoint(path)
        if payload.get("model") != cls.__name__:
            raise ValueError(f"{path} holds a {payload.get('model')}, not a {cls.__name__}")
        config = cls._config_from_dict(payload["config"])
        model = cls(**asdict(config))
        model.load_state_dict(payload["state_dict"])
        if "training" in payload and isinstance(model, TrainableCF):
            model._restore_training(payload["training"])
        model.eval()
        return model


class Stage:
    """One training stage: a name, its epoch count, and whether to keep its best epoch."""

    def __init__(self, name: str, epochs: int, run: Callable[[sp.csr_matrix, int], dict],
                 select_best: bool = True) -> None:
        self.name, self.epochs, self.run, self.select_best = name, epochs, run, select_best


class TrainableCF(CFModel):
    """A CF model trained by mini-batch SGD in stages, with validation and resumable checkpoints.

    Subclasses define ``_stages()`` and ``_optimizers()``; each stage's ``run(train, epoch)``
    performs one epoch and returns loss statistics.
    """

    def _init_training(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.updates = 0
        self._best: tuple[float, dict[str, Tensor]] | None = None
        self._opts: dict[str, torch.optim.Optimizer] | None = None
        self._resume_state: dict[str, Any] | None = None

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def _stages(self) -> list[Stage]:
        raise NotImplementedError

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimizers by name, created on first use."""
        if self._opts is None:
            self._opts = self._optimizers()
        return self._opts

    def _user_batches(self, n_users: int) -> list[Tensor]:
        perm = torch.randperm(n_users, generator=self.generator)
        bs = self.config.batch_size
        return [perm[i:i + bs] for i in range(0, n_users, bs)]

    def _training_state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "updates": self.updates,
            "generator": self.generator.get_state(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "history": self.history,
            "best_score": None if self._best is None else self._best[0],
            "best_state": None if self._best is None else self._best[1],
        }

    def save(self, path: str | os.PathLike, *, with_training_state: bool = True) -> Path:
        """Write config + weights (+ optimizer / epoch state for resuming) to one file."""
        payload = self._payload()
        if with_training_state:
            payload["training"] = self._training_state()
        return save_checkpoint(path, payload)

    def _restore_training(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.updates = int(state["updates"])
        self.generator.set_state(state["generator"])
        for name, opt in self.optimizers.items():
            if name in state["optimizers"]:
                opt.load_state_dict(state["optimizers"][name])
        self.history = list(state["history"])
        if state.get("best_state") is not None:
            self._best = (float(state["best_score"]), state["best_state"])

    def fit(self, train: Any, valid: Any = None, *, checkpoint: str | os.PathLike | None = None,
            resume: bool = False, progress: bool = True, select_metric: str = "ndcg@100",
            max_epochs: int | None = None) -> TrainableCF:
        """Train on the full histories of the training users (all stages of the paper).

        Args:
            train: ``(N, M)`` binary sparse matrix of training users.
            valid: optional ``(fold_in, target)`` of validation users; evaluated after every
                epoch, and the weights of the best `select_metric` are kept (Liang et al.).
            checkpoint: file to write after every epoch (config, weights, optimizer state).
            resume: continue from `checkpoint` (or from the state of a loaded checkpoint).
            progress: show tqdm progress bars.
            select_metric: validation metric for model selection.
            max_epochs: stop after this many epochs in total (for tests and time budgets).
        """
        train = check_interactions(train, self.num_items, "train", allow_empty_rows=False)
        if train.shape[0] == 0:
            raise ValueError("train has no users")
        if valid is not None:
            valid = _held_out(valid, None)
        if resume:
            if checkpoint is not None and Path(checkpoint).is_file():
                payload = read_checkpoint(checkpoint)
                self.load_state_dict(payload["state_dict"])
                self._resume_state = payload.get("training")
            if self._resume_state is not None:
                self._restore_training(self._resume_state)
                self._resume_state = None
        self.train()
        start_epoch = self.epoch
        stages = self._stages()
        total = sum(s.epochs for s in stages)
        done = 0
        bar = tqdm(total=total, initial=min(self.epoch, total), disable=not progress,
                   desc=type(self).__name__, unit="epoch")
        try:
            for stage in stages:
                for e in range(stage.epochs):
                    global_epoch = done + e
                    if global_epoch < self.epoch:
                        continue
                    if max_epochs is not None and global_epoch >= max_epochs:
                        return self._finish(stage, bar)
                    start = time.perf_counter()
                    self.train()
                    stats = stage.run(train, e)
                    record: dict[str, Any] = {"epoch": global_epoch + 1, "stage": stage.name,
                                              "seconds": time.perf_counter() - start, **stats}
                    if valid is not None:
                        res = self.evaluate(valid[0], valid[1])
                        record.update({f"valid_{k}": v.mean for k, v in res.items()})
                        value = res[select_metric].mean if select_metric in res else math.nan
                        if (stage.select_best and not math.isnan(value)
                                and (self._best is None or value > self._best[0])):
                            self._best = (value, copy.deepcopy(
                                {k: v.detach().clone() for k, v in self.state_dict().items()}))
                    self.history.append(record)
                    self.epoch = global_epoch + 1
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in record.items()
                                     if isinstance(v, float) and k != "seconds"}, refresh=False)
                    if checkpoint is not None:
                        self.save(checkpoint)
                done += stage.epochs
                # A stage finished before this call (resume) has had its best restored already.
                if stage.select_best and self._best is not None and start_epoch <= done:
                    self.load_state_dict(self._best[1])
        finally:
            bar.close()
        if checkpoint is not None:
            self.save(checkpoint)
        self.eval()
        return self

    def _finish(self, stage: Stage, bar: Any) -> TrainableCF:
        bar.close()
        self.eval()
        return self


def l2_penalty(modules: list[nn.Module]) -> Tensor:
    """Sum of squared weights (not biases) of the Linear layers in `modules`."""
    total = torch.zeros(())
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                total = total + layer.weight.pow(2).sum()
    return total

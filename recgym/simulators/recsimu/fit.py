"""Fitting RecSimu by Algorithm 1 of Zhao et al. (2020), with validation-based selection.

Stages: item embeddings (skip-gram over the training sessions), generator pre-training
on ``L_G^sup`` (eq. 11), discriminator pre-training on ``L_D^sup`` (eq. 8) with generated
items, then alternating ``d_steps`` discriminator updates on ``L_D`` (eq. 9) and
``g_steps`` generator updates on ``L_G`` (eq. 12), each mini-batch holding as many
generated as logged items. After every adversarial epoch the discriminator is scored on
the validation tuples (each session's second-to-last); the best epoch's weights are kept.

Under ``torchrun`` (``WORLD_SIZE > 1``) the adversarial and pre-training epochs are
data-parallel: each rank trains on its shard of every global mini-batch and gradients are
all-reduced, so the result matches one process (see :mod:`recgym.core.distributed`);
only rank 0 writes the checkpoint.

The paper's variants are options: RecSimu-1 (``per_feedback_fake=False``), RecSimu-2
(``beta=0``) and RecSimu-3 (``adversarial=False``: the generator is pre-trained only and
the discriminator is trained on logged and generated pairs with ``L_D^sup`` alone).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from recgym.core.checkpoint import read_checkpoint_file, save_checkpoint
from recgym.core.distributed import (
    DataParallel,
    init_data_parallel,
    local_rows,
    shard_share,
)
from recgym.core.random import isolated_global_rng
from recgym.simulators.metrics import f1_score, roc_auc
from recgym.simulators.recsimu.data import (
    BrowsingSequences,
    Tuples,
    TupleSplit,
    make_tuples,
    split_last_tuples,
)
from recgym.simulators.recsimu.embeddings import train_item_embeddings
from recgym.simulators.recsimu.model import (
    RecSimu,
    RecSimuConfig,
    discriminator_loss,
    generator_loss,
)


@dataclass
class RecSimuTraining:
    """Hyper-parameters of Algorithm 1 (paper: Adam, learning rate 0.001, batch 500).

    Attributes:
        alpha: weight of ``L_D^sup`` in ``L_D`` (eq. 9).
        beta: weight of ``L_G^sup`` in ``L_G`` (eq. 12); 0 gives RecSimu-2.
        lam: weight of the fake term of eq. 8 (the paper's best: 0.3).
        adversarial: False gives RecSimu-3.
        learning_rate: Adam step size for both networks.
        batch_size: logged tuples per mini-batch.
        generator_pretrain_epochs: epochs of line 3.
        discriminator_pretrain_epochs: epochs of line 5.
        adversarial_epochs: passes of lines 6-16 over the training tuples.
        d_steps: discriminator updates per mini-batch.
        g_steps: generator updates per mini-batch.
        embedding_epochs: skip-gram epochs for the item embeddings.
        seed: seeds initialisation, batching and embeddings.
    """

    alpha: float = 1.0
    beta: float = 1.0
    lam: float = 0.3
    adversarial: bool = True
    learning_rate: float = 1e-3
    batch_size: int = 500
    generator_pretrain_epochs: int = 5
    discriminator_pretrain_epochs: int = 5
    adversarial_epochs: int = 10
    d_steps: int = 1
    g_steps: int = 1
    embedding_epochs: int = 5
    seed: int = 0


@dataclass
class FeedbackMetrics:
    """F1 (binary for K = 2, else macro over classes) and AUC of positive (k >= 1) feedback."""

    f1: float
    auc: float


@dataclass
class RecSimuFit:
    """A fitted simulator with its data split and learning history."""

    model: RecSimu
    split: TupleSplit
    sequences: BrowsingSequences
    history: list[dict[str, float]] = field(default_factory=list)
    test: FeedbackMetrics | None = None


def _as_tensors(tuples: Tuples) -> dict[str, Tensor]:
    return {"items": torch.from_numpy(tuples.state_items),
            "feedback": torch.from_numpy(tuples.state_feedback),
            "action": torch.from_numpy(tuples.action),
            "target": torch.from_numpy(tuples.feedback)}


def _batches(size: int, batch_size: int, generator: torch.Generator):
    order = torch.randperm(size, generator=generator)
    for start in range(0, size, batch_size):
        yield order[start:start + batch_size]


@torch.no_grad()
def predict_feedback(model: RecSimu, tuples: Tuples, batch_size: int = 4096):
    """Predicted class (argmax of the real classes) and positive score per tuple."""
    data = _as_tensors(tuples)
    classes, scores = [], []
    model.eval()
    for start in range(0, len(tuples), batch_size):
        part = slice(start, start + batch_size)
        logits = model.logits(data["items"][part], data["feedback"][part], data["action"][part])
        classes.append(model.feedback_probabilities(logits).argmax(1))
        scores.append(model.positive_score(logits))
    return torch.cat(classes).numpy(), torch.cat(scores).numpy()


def feedback_metrics(labels: np.ndarray, classes: np.ndarray, scores: np.ndarray,
                     num_feedback: int) -> FeedbackMetrics:
    """F1 and AUC as reported in RecSimu's Figures 6-8."""
    average = "binary" if num_feedback == 2 else "macro"
    return FeedbackMetrics(f1_score(labels, classes, average=average),
                           roc_auc(labels >= 1, scores))


def start_states(tuples: Tuples, limit: int = 5000) -> dict[str, Tensor]:
    """States a simulated session may start from (the first ``limit`` tuples given)."""
    return {"start_items": torch.from_numpy(tuples.state_items[:limit].copy()),
            "start_feedback": torch.from_numpy(tuples.state_feedback[:limit].copy())}


@isolated_global_rng
def fit_recsimu(logs, *, config: RecSimuConfig | None = None,
                training: RecSimuTraining | None = None,
                item_vectors: Tensor | None = None, checkpoint: str | Path | None = None,
                resume: bool = False, progress: bool = True,
                parallel: DataParallel | None = None, **config_kwargs) -> RecSimuFit:
    """Fit RecSimu on a log (a ``LogDataset`` or a frame in the log schema).

    Args:
        logs: page views with ``session_id``, ``step``, ``slate``, ``click`` and
            ``feedback`` (see :mod:`recgym.simulators.recsimu.data`).
        config: architecture; by default built from the data and ``config_kwargs``.
        training: hyper-parameters of Algorithm 1.
        item_vectors: given item embeddings ``(num_items, |E|)`` in (-1, 1); by default
            learned by skip-gram on the training sessions.
        checkpoint: model file, rewritten (atomically) with the best weights so far after
            every epoch; the resumable training state goes beside it (``.trainer``).
        resume: continue from the training state beside ``checkpoint`` if it exists
            (after an interruption, or with more epochs).
        progress: progress bars.
        parallel: data-parallel group; by default joined from ``torchrun``'s variables
            when ``WORLD_SIZE > 1``, else None (one process).
        **config_kwargs: :class:`RecSimuConfig` fields when ``config`` is None
            (e.g. ``state_length=10``).
    """
    training = training or RecSimuTraining()
    parallel = parallel or init_data_parallel()
    if parallel is not None and not parallel.is_main:
        progress = False
    sequences = BrowsingSequences.from_logs(logs)
    if config is None:
        config = RecSimuConfig(num_items=sequences.num_items,
                               num_feedback=sequences.num_feedback, **config_kwargs)
    if config.num_items < sequences.num_items or config.num_feedback < sequences.num_feedback:
        raise ValueError(f"the log has {sequences.num_items} items and {sequences.num_feedback}"
                         f" feedback classes; the config allows {config.num_items} and "
                         f"{config.num_feedback}")
    split = split_last_tuples(make_tuples(sequences, config.state_length))
    if len(split.train) == 0 or len(split.valid) == 0:
        raise ValueError(f"no session is longer than state_length + 2 = "
                         f"{config.state_length + 2} page views; lower state_length")
    model, history = train_recsimu(split, [s for s in sequences.sessions() if len(s) > 1],
                                   config, training, item_vectors=item_vectors,
                                   checkpoint=checkpoint, resume=resume, progress=progress,
                                   parallel=parallel)
    classes, scores = predict_feedback(model, split.test)
    return RecSimuFit(model, split, sequences, history,
                      feedback_metrics(split.test.feedback, classes, scores,
                                       config.num_feedback))


@isolated_global_rng
def train_recsimu(split: TupleSplit, sessions: list[np.ndarray], config: RecSimuConfig,
                  training: RecSimuTraining, *, item_vectors: Tensor | None = None,
                  checkpoint: str | Path | None = None, resume: bool = False,
                  progress: bool = True, parallel: DataParallel | None = None
                  ) -> tuple[RecSimu, list[dict[str, float]]]:
    """Algorithm 1 on given training and validation tuples; the best-validation-AUC model.

    :func:`fit_recsimu` reads a log as browsing sequences; a caller that reads logs
    another way (e.g. every shown item of a slate) builds its own tuples and comes here.

    Args:
        split: the tuples (``test`` only gives the checkpoint's start states).
        sessions: item-id sequences for the skip-gram embeddings (when not given).
        config: the architecture.
        training: hyper-parameters of Algorithm 1.
        item_vectors: given item embeddings, as in :func:`fit_recsimu`.
        checkpoint: model file rewritten after every epoch, as in :func:`fit_recsimu`.
        resume: continue from the training state beside ``checkpoint``.
        progress: progress bars.
        parallel: data-parallel group (None: one process).

    Returns:
        The model with its best weights, and the per-epoch history.
    """
    torch.manual_seed(training.seed)
    generator = torch.Generator().manual_seed(training.seed)
    path = Path(checkpoint) if checkpoint is not None else None
    state_path = trainer_path(path) if path is not None else None
    saved = None
    if resume and state_path is not None and state_path.exists():
        saved = read_checkpoint_file(state_path)
        item_vectors = saved["state_dict"]["item_vectors"]
    if item_vectors is None:
        item_vectors = train_item_embeddings(sessions, config.num_items, dim=config.item_dim,
                                             epochs=training.embedding_epochs,
                                             seed=training.seed, progress=progress)
    model = RecSimu(config, item_vectors)
    trainer = _Trainer(model, training, split, generator, progress, parallel)
    if saved is not None:
        trainer.restore(saved)

    def save() -> None:
        if path is not None and (parallel is None or parallel.is_main):
            save_checkpoint(state_path, trainer.training_state())
            save_checkpoint(path, trainer.best_model())

    trainer.run(save)
    save()  # also when a resumed run had nothing left to do: record the final settings
    model.load_state_dict(trainer.best_state)
    return model, trainer.history


def trainer_path(checkpoint: Path) -> Path:
    """Where the resumable training state of a checkpoint lives (beside it)."""
    return checkpoint.with_name(checkpoint.name + ".trainer")


class _Trainer:
    """Algorithm 1 as a resumable sequence of epochs."""

    STAGES = ("generator", "discriminator", "adversarial")

    def __init__(self, model: RecSimu, training: RecSimuTraining, split: TupleSplit,
                 generator: torch.Generator, progress: bool,
                 parallel: DataParallel | None = None) -> None:
        self.model, self.training, self.split = model, training, split
        self.parallel = parallel
        self.random = generator
        self.progress = progress
        self.data = _as_tensors(split.train)
        self.g_optimizer = torch.optim.Adam(model.generator.parameters(),
                                            lr=training.learning_rate)
        self.d_optimizer = torch.optim.Adam(model.discriminator.parameters(),
                                            lr=training.learning_rate)
        self.epochs = {"generator": training.generator_pretrain_epochs,
                       "discriminator": training.discriminator_pretrain_epochs,
                       "adversarial": training.adversarial_epochs}
        self.done = dict.fromkeys(self.STAGES, 0)
        self.history: list[dict[str, float]] = []
        self.best_auc = -1.0
        self.best_state = copy.deepcopy(model.state_dict())

    def best_model(self) -> dict:
        """The model with the best validation weights, start states and hyper-parameters."""
        best = self.model.checkpoint(training=asdict(self.training),
                                     **start_states(self.split.test))
        best["state_dict"] = self.best_state
        return best

    def training_state(self) -> dict:
        """Current weights, optimisers, random state and progress: enough to resume."""
        return {"state_dict": self.model.state_dict(), "done": dict(self.done),
                "best_auc": self.best_auc, "best_state": self.best_state,
                "g_optimizer": self.g_optimizer.state_dict(),
                "d_optimizer": self.d_optimizer.state_dict(),
                "random": self.random.get_state(), "history": self.history}

    def restore(self, checkpoint: dict) -> None:
        """Continue where a state written by :meth:`training_state` stopped."""
        if "done" not in checkpoint:
            raise ValueError("not a RecSimu training state (expected the .trainer file)")
        self.model.load_state_dict(checkpoint["state_dict"])
        self.g_optimizer.load_state_dict(checkpoint["g_optimizer"])
        self.d_optimizer.load_state_dict(checkpoint["d_optimizer"])
        self.random.set_state(checkpoint["random"])
        self.done = dict(checkpoint["done"])
        self.best_auc = float(checkpoint["best_auc"])
        self.best_state = checkpoint["best_state"]
        self.history = list(checkpoint["history"])

    def run(self, save) -> None:
        """Every remaining epoch of every stage, saving after each."""
        for stage in self.STAGES:
            while self.done[stage] < self.epochs[stage]:
                losses = self._epoch(stage)
                self.done[stage] += 1
                record = {"stage": stage, "epoch": self.done[stage], **losses}
                if stage != "generator":
                    metrics = self._validate()
                    record.update(valid_f1=metrics.f1, valid_auc=metrics.auc)
                    if metrics.auc > self.best_auc:
                        self.best_auc = metrics.auc
                        self.best_state = copy.deepcopy(self.model.state_dict())
                self.history.append(record)
                save()

    def _validate(self) -> FeedbackMetrics:
        classes, scores = predict_feedback(self.model, self.split.valid)
        self.model.train()
        return feedback_metrics(self.split.valid.feedback, classes, scores,
                                self.model.config.num_feedback)

    def _epoch(self, stage: str) -> dict[str, float]:
        model, training, data = self.model, self.training, self.data
        k = model.config.num_feedback
        discriminator = model.discriminator
        adversarial = stage == "adversarial" and training.adversarial
        model.train()
        totals = {"loss_d": 0.0, "loss_g": 0.0}
        batches = list(_batches(len(data["action"]), training.batch_size, self.random))
        for index in tqdm(batches, desc=f"RecSimu {stage}", disable=not self.progress,
                          leave=False):
            total = len(index)
            rows = local_rows(self.parallel, total)
            index = index[rows]
            items = model.embed(data["items"][index])
            feedback = data["feedback"][index]
            logged = model.embed(data["action"][index])
            target = data["target"][index]
            if stage == "generator" or adversarial:
                # the discriminator's state encoding does not depend on the item judged
                with torch.no_grad():
                    encoding = discriminator.encoder(items, feedback) if adversarial else None
                for _ in range(training.g_steps if adversarial else 1):
                    generated = model.generator(items, feedback)
                    fake_logits = discriminator.logits_from_encoding(encoding, generated) \
                        if adversarial else None
                    loss = generator_loss(fake_logits, generated, logged, num_feedback=k,
                                          beta=training.beta if adversarial else 1.0,
                                          adversarial=adversarial)
                    self.g_optimizer.zero_grad()
                    loss.backward()
                    self._sync(model.generator, rows, total)
                    self.g_optimizer.step()
                    totals["loss_g"] += shard_share(loss.item(), rows, total)
            if stage != "generator":
                with torch.no_grad():
                    generated = model.generator(items, feedback)
                for _ in range(training.d_steps if adversarial else 1):
                    encoding = discriminator.encoder(items, feedback)
                    real_logits = discriminator.logits_from_encoding(encoding, logged)
                    fake_logits = discriminator.logits_from_encoding(encoding, generated)
                    loss = discriminator_loss(real_logits, fake_logits, target, num_feedback=k,
                                              alpha=training.alpha if adversarial else 1.0,
                                              lam=training.lam, adversarial=adversarial)
                    self.d_optimizer.zero_grad()
                    loss.backward()
                    self._sync(discriminator, rows, total)
                    self.d_optimizer.step()
                    totals["loss_d"] += shard_share(loss.item(), rows, total)
        if self.parallel is not None:
            totals = self.parallel.sum(totals)
        return {name: value / max(len(batches), 1) for name, value in totals.items()}

    def _sync(self, module: torch.nn.Module, rows: slice, total: int) -> None:
        """All-reduce ``module``'s gradients to the global-batch mean (data-parallel runs)."""
        if self.parallel is not None:
            self.parallel.sync_gradients(module.parameters(), rows, total)

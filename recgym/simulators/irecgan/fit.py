"""Maximum-likelihood fitting of IRecGAN's user model U on logs (eq. 3).

Sessions are the log's ``session_id`` groups in ``step`` order; a page view's click is
its ``click`` (-1: the user ended the session, ``c_end``) and its reward the ``reward``
column (default: 1 for a click). A share of the sessions is held out for validation:
the epoch with the best held-out log-likelihood per page view is kept. The model file
is rewritten after every epoch; the resumable training state lives beside it.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from recgym.core.checkpoint import read_checkpoint_file, save_checkpoint
from recgym.core.random import isolated_global_rng
from recgym.data import LogDataset
from recgym.simulators.irecgan.model import UserBehaviorModel, UserModelConfig


@dataclass
class UserModelTraining:
    """Hyper-parameters of the MLE fit (paper: lambda_p = 1; Adam)."""

    reward_weight: float = 1.0
    learning_rate: float = 1e-3
    batch_size: int = 64
    epochs: int = 10
    valid_fraction: float = 0.1
    seed: int = 0


@dataclass
class SessionTensors:
    """Sessions padded to a common length.

    ``slates`` is ``(S, T, k)``; ``positions`` (clicked slate position, ``k`` for
    ``c_end``), ``clicked``, ``rewards`` and ``mask`` are ``(S, T)``; ``lengths`` ``(S,)``.
    """

    slates: torch.Tensor
    positions: torch.Tensor
    clicked: torch.Tensor
    rewards: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor

    @classmethod
    def from_logs(cls, logs: LogDataset | pd.DataFrame) -> SessionTensors:
        """Pad every session of a log to the longest one."""
        frame = logs.logs if isinstance(logs, LogDataset) else logs
        frame = frame.sort_values(["session_id", "step"], kind="stable")
        slates = np.stack(frame["slate"].to_numpy()).astype(np.int64)
        click = frame["click"].to_numpy(np.int64)
        k = slates.shape[1]
        hit = slates == click[:, None]
        if ((click >= 0) & ~hit.any(1)).any():
            raise ValueError("a click is not in its slate; validate the log with LogDataset")
        position = np.where(click >= 0, hit.argmax(1), k)
        reward = frame["reward"].to_numpy(np.float32) if "reward" in frame.columns \
            else (click >= 0).astype(np.float32)
        sessions = frame["session_id"].to_numpy()
        starts = np.flatnonzero(np.r_[True, sessions[1:] != sessions[:-1]])
        lengths = np.diff(np.r_[starts, len(frame)])
        index = np.repeat(np.arange(len(starts)), lengths)
        step = np.arange(len(frame)) - np.repeat(starts, lengths)
        shape = (len(starts), int(lengths.max()))

        def pad(values: np.ndarray, fill) -> torch.Tensor:
            out = np.full(shape + values.shape[1:], fill, dtype=values.dtype)
            out[index, step] = values
            return torch.from_numpy(out)

        return cls(pad(slates, 0), pad(position, k), pad(np.maximum(click, 0), 0),
                   pad(reward, 0.0), pad(np.ones(len(frame), bool), False),
                   torch.from_numpy(lengths))

    def subset(self, index: torch.Tensor) -> SessionTensors:
        """Sessions ``index``, trimmed to their longest length."""
        length = int(self.lengths[index].max())
        return SessionTensors(self.slates[index, :length], self.positions[index, :length],
                              self.clicked[index, :length], self.rewards[index, :length],
                              self.mask[index, :length], self.lengths[index])


@dataclass
class UserModelFit:
    """A fitted U with its learning history (held-out log-likelihood per page view)."""

    model: UserBehaviorModel
    history: list[dict[str, float]] = field(default_factory=list)


def _mean_log_likelihood(model: UserBehaviorModel, data: SessionTensors,
                         reward_weight: float, batch_size: int = 256) -> float:
    total = 0.0
    with torch.no_grad():
        for index in torch.arange(len(data.lengths)).split(batch_size):
            part = data.subset(index)
            total += float(model.log_likelihood(part.slates, part.positions, part.clicked,
                                                part.rewards, part.mask, reward_weight).sum())
    return total / float(data.mask.sum())


@isolated_global_rng
def fit_user_model(logs, *, config: UserModelConfig | None = None,
                   training: UserModelTraining | None = None,
                   checkpoint: str | Path | None = None, resume: bool = False,
                   progress: bool = True, **config_kwargs) -> UserModelFit:
    """Fit U by maximum likelihood (eq. 3) on a log.

    Args:
        logs: a ``LogDataset`` or a frame in the log schema (``reward`` optional).
        config: architecture; by default from the data and ``config_kwargs``.
        training: hyper-parameters.
        checkpoint: model file rewritten after every epoch (best weights so far); the
            training state goes beside it (``.trainer``).
        resume: continue from that training state if it exists.
        progress: progress bars.
        **config_kwargs: :class:`UserModelConfig` fields (e.g. ``hidden_size=64``).
    """
    training = training or UserModelTraining()
    dataset = logs if isinstance(logs, LogDataset) else LogDataset(logs)
    data = SessionTensors.from_logs(dataset)
    num_items = dataset.num_items
    config = config or UserModelConfig(num_items=num_items, **config_kwargs)
    if config.num_items < num_items:
        raise ValueError(f"the log has {num_items} items, the config {config.num_items}")
    generator = torch.Generator().manual_seed(training.seed)
    order = torch.randperm(len(data.lengths), generator=generator)
    held_out = max(1, int(training.valid_fraction * len(order)))
    valid, train = data.subset(order[:held_out]), order[held_out:]
    torch.manual_seed(training.seed)
    model = UserBehaviorModel(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=training.learning_rate)
    history: list[dict[str, float]] = []
    best_score, best_state = -float("inf"), copy.deepcopy(model.state_dict())
    path = Path(checkpoint) if checkpoint is not None else None
    state_path = path.with_name(path.name + ".trainer") if path is not None else None
    if resume and state_path is not None and state_path.exists():
        saved = read_checkpoint_file(state_path)
        model.load_state_dict(saved["state_dict"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["random"])
        history, best_score, best_state = saved["history"], saved["best_score"], \
            saved["best_state"]
    for epoch in range(len(history), training.epochs):
        model.train()
        batches = train[torch.randperm(len(train), generator=generator)].split(
            training.batch_size)
        for index in tqdm(batches, desc=f"U epoch {epoch + 1}", disable=not progress,
                          leave=False):
            part = data.subset(index)
            loss = -model.log_likelihood(part.slates, part.positions, part.clicked,
                                         part.rewards, part.mask,
                                         training.reward_weight).sum() / part.mask.sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        score = _mean_log_likelihood(model, valid, training.reward_weight)
        history.append({"epoch": epoch + 1, "valid_log_likelihood": score})
        if score > best_score:
            best_score, best_state = score, copy.deepcopy(model.state_dict())
        if path is not None:
            save_checkpoint(state_path, {"state_dict": model.state_dict(),
                                         "optimizer": optimizer.state_dict(),
                                         "random": generator.get_state(), "history": history,
                                         "best_score": best_score, "best_state": best_state})
            best = model.checkpoint(training=asdict(training))
            best["state_dict"] = best_state
            save_checkpoint(path, best)
    model.load_state_dict(best_state)
    return UserModelFit(model.eval(), history)

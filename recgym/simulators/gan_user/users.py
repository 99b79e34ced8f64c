"""Batched users of a fitted GAN user model: the ``UserSimulator`` behind ``GANUserModel-v0``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from recgym.core import validation
from recgym.core.checkpoint import CheckpointError
from recgym.core.policy import repeated_positions
from recgym.core.simulator import Randomness, State, Step
from recgym.simulators.checkpoints import CheckpointUsers
from recgym.simulators.gan_user.model import GANUserModel, features_of


class GANUsers(CheckpointUsers):
    """Batched users of a fitted GAN user model (implements ``UserSimulator``).

    Args:
        model: the fitted user model.
        features: item features ``(n_items, d)``.
        display_sets: logged display sets ``(D, K)`` to draw each step's pool from; None
            draws ``pool_size`` items uniformly from the catalogue (with replacement).
        start_histories: logged click histories ``(S, m)`` (-1: none) a session may start
            from; None starts with no history.
        slate_size: items shown per step ``k``.
        pool_size: candidates per step ``K`` when ``display_sets`` is None.
        device: where the simulation runs.
    """

    checkpoint_kind = "gan-user"
    default_checkpoint = "gan-user-ml-latest-small.pt"
    fit_command = "recgym fit gan-user"

    def __init__(self, model: GANUserModel, features: Tensor, *,
                 display_sets: Tensor | None = None, start_histories: Tensor | None = None,
                 slate_size: int = 5, pool_size: int = 40,
                 device: torch.device | str = "cpu") -> None:
        config = model.config
        if features.ndim != 2 or features.shape[1] != config.feature_dim:
            raise ValueError(f"features must have shape (n_items, {config.feature_dim}) for "
                             f"this model, got {tuple(features.shape)}")
        self.device = validation.device(device)
        pool_size = validation.integer("pool_size", pool_size, minimum=1)
        self.model = model.to(self.device).eval()
        self.features = features.float().to(self.device)
        self.num_items = len(features)
        self.display_sets = None if display_sets is None else display_sets.long().to(self.device)
        self.num_candidates = pool_size if display_sets is None else display_sets.shape[1]
        slate_size = validation.integer("slate_size", slate_size, minimum=1,
                                        maximum=self.num_candidates)
        for name, ids in (("display_sets", self.display_sets), ("start_histories",
                                                                start_histories)):
            if ids is not None and (int(ids.max()) >= self.num_items or int(ids.min()) < -1):
                raise ValueError(f"{name} hold item ids outside the catalogue of "
                                 f"{self.num_items} items: is the checkpoint from another one?")
        if start_histories is not None and start_histories.shape[1] != config.history:
            raise ValueError(f"start histories must have {config.history} columns (m)")
        self.start_histories = None if start_histories is None else \
            start_histories.long().to(self.device)
        self.slate_size = slate_size
        self.history_length = config.history

    def _pools(self, batch: int, rng: Randomness) -> Tensor:
        if self.display_sets is not None:
            pick = (rng.uniform(1)[:, 0] * len(self.display_sets)).long()
            return self.display_sets.index_select(0, pick.clamp(max=len(self.display_sets) - 1))
        draws = rng.uniform(self.num_candidates) * self.num_items
        return draws.long().clamp(max=self.num_items - 1)

    @torch.no_grad()
    def reset(self, batch_size: int, rng: Randomness) -> State:
        """A logged history (or none) and a first candidate pool."""
        if self.start_histories is None:
            history = torch.full((batch_size, self.history_length), -1, dtype=torch.int64,
                                 device=self.device)
        else:
            pick = (rng.uniform(1)[:, 0] * len(self.start_histories)).long()
            history = self.start_histories.index_select(
                0, pick.clamp(max=len(self.start_histories) - 1))
        return {"history": history, "pool": self._pools(batch_size, rng)}

    def _history_features(self, history: Tensor) -> Tensor:
        return features_of(history, self.features)

    @torch.no_grad()
    def step(self, state: State, slate: Tensor, rng: Randomness) -> Step:
        """The user's choice among the shown items and no click, its reward, the next pool."""
        pool, history = state["pool"], state["history"]
        shown = pool.gather(1, slate)
        repeated = repeated_positions(slate)
        model_state = self.model.state(self._history_features(history))
        logits = self.model.choice_logits(model_state, F.embedding(shown, self.features),
                                          shown=~repeated)
        cumulative = self.model.best_response(logits).cumsum(1)
        choice = (cumulative[:, :-1] <= rng.uniform(1)).sum(1)
        rewards = logits / self.model.config.eta
        reward = rewards.gather(1, choice[:, None])[:, 0]
        clicked_any = choice < slate.shape[1]
        item = shown.gather(1, choice.clamp(max=slate.shape[1] - 1)[:, None])[:, 0]
        shifted = torch.cat([history[:, 1:], item[:, None]], dim=1)
        return Step(
            state={"history": torch.where(clicked_any[:, None], shifted, history),
                   "pool": self._pools(len(slate), rng)},
            reward=reward.float(),
            clicked=torch.where(clicked_any, item, -1),
            terminated=torch.zeros_like(clicked_any),
        )

    def observe(self, state: State) -> dict[str, Tensor]:
        """Features of the last ``m`` clicks (zeros: none) and of the pool, flattened; the ids.

        The ids (``clicks``, -1: none, and ``candidate_ids``) are for id-based policies such
        as a CF model; the env shows them only when built with ``observe_ids=True``.
        """
        return {"history": self._history_features(state["history"]).flatten(1),
                "candidates": F.embedding(state["pool"], self.features).flatten(1),
                "clicks": state["history"], "candidate_ids": state["pool"]}

    def observation_spaces(self) -> dict[str, gym.Space]:
        """Single-user spaces of the observation keys."""
        d = self.features.shape[1]
        low = min(float(self.features.min()), 0.0)  # zeros stand for "no click yet"
        high = max(float(self.features.max()), 0.0)
        last = self.num_items - 1
        return {"history": gym.spaces.Box(low, high, (self.history_length * d,), np.float32),
                "candidates": gym.spaces.Box(low, high, (self.num_candidates * d,), np.float32),
                "clicks": gym.spaces.Box(-1, last, (self.history_length,), np.int64),
                "candidate_ids": gym.spaces.Box(0, last, (self.num_candidates,), np.int64)}

    @classmethod
    def from_loaded(cls, loaded: dict, **kwargs) -> GANUsers:
        """The model, item features, display sets and start histories of a fitted checkpoint."""
        model = GANUserModel.from_checkpoint(loaded)
        if "features" not in loaded:
            raise CheckpointError("this GAN user-model checkpoint holds no item features: refit "
                                  f"it with `{cls.fit_command}`")
        return cls(model, loaded["features"], display_sets=loaded.get("display_sets"),
                   start_histories=loaded.get("start_histories"), **kwargs)



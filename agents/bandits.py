"""LinUCB with hybrid linear models (Li et al., WWW 2010, Algorithm 2), batched, for slates.

The expected click of arm ``a`` for user context ``x`` is ``z^T beta + x^T theta_a``: a part
shared by all arms (``beta``, on user-item features ``z``) and a part of the arm's own
(``theta_a``, on the user features ``x``). Arms are chosen by the upper confidence bound
``z^T beta + x^T theta_a + alpha sqrt(s)`` with
``s = (z - w)^T A_0^{-1} (z - w) + x^T A_a^{-1} x``, ``w = B_a^T A_a^{-1} x`` (the
variance terms of Algorithm 2, grouped); a slate is the ``k`` candidates of highest bound.
This is the baseline of Chen et al. (2019, sec. 6.3) on the GAN user-model env.

Readings chosen here (the observation carries item features but no item ids):

* An arm is a distinct item feature vector: items with identical features look the same
  to any agent of this env, so they share ``theta_a``.
* User features ``x = [u, 1]``, with ``u`` the mean features of the user's clicked
  history (zeros before any click); shared features ``z = [f_a, f_a * u]`` (item features
  and their element-wise interaction with ``u``).
* Every shown item is one observation: reward 1 if it was clicked, 0 otherwise. A batch
  of users updates the model at once (the per-arm sums are added before the Schur
  complement ``A_0`` is refreshed, which equals sequential updates of the same data).
"""

from __future__ import annotations

import torch
from torch import Tensor
from tqdm.auto import tqdm

from recgym.core.batch import SimulationBatch
from recgym.core.env import RecVectorEnv
from recgym.core.simulator import UserSimulator


class HybridLinUCB:
    """Slate LinUCB (hybrid model) over the ``history`` / ``candidates`` observations.

    Args:
        feature_dim: ``d``, item feature size.
        history: ``m``, clicked items in the observation's history.
        slate_size: ``k``.
        alpha: width of the confidence bound.
        device: where the statistics live.
    """

    def __init__(self, feature_dim: int, history: int, slate_size: int, *, alpha: float = 1.0,
                 device: torch.device | str = "cpu") -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.feature_dim = feature_dim
        self.history_length = history
        self.slate_size = slate_size
        self.alpha = alpha
        self.device = torch.device(device)
        self.name = "LinUCB (hybrid)"
        d = feature_dim
        self.user_dim, self.shared_dim = d + 1, 2 * d
        self.a0 = torch.eye(self.shared_dim, dtype=torch.float64, device=self.device)
        self.b0 = torch.zeros(self.shared_dim, dtype=torch.float64, device=self.device)
        self.arm_index: dict[bytes, int] = {}
        self.arm_a = torch.empty(0, self.user_dim, self.user_dim, dtype=torch.float64,
                                 device=self.device)
        self.arm_b = torch.empty(0, self.user_dim, self.shared_dim, dtype=torch.float64,
                                 device=self.device)
        self.arm_reward = torch.empty(0, self.user_dim, dtype=torch.float64, device=self.device)

    @property
    def num_arms(self) -> int:
        """Distinct item feature vectors seen so far."""
        return len(self.arm_index)

    def _features(self, observation: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """User features ``x`` ``(B, d+1)``, shared ``z`` ``(B, K, 2d)``, items ``(B, K, d)``."""
        d, m = self.feature_dim, self.history_length
        history = torch.as_tensor(observation["history"], device=self.device).double()
        candidates = torch.as_tensor(observation["candidates"], device=self.device).double()
        if history.ndim != 2 or history.shape[1] != m * d or candidates.ndim != 2 or \
                candidates.shape[1] % d or candidates.shape[1] < self.slate_size * d:
            raise ValueError(f"observation 'history' must be (B, {m * d}) and 'candidates' "
                             f"(B, K*{d}) with K >= {self.slate_size}, got "
                             f"{tuple(history.shape)} and {tuple(candidates.shape)}")
        history = history.view(len(history), m, d)
        items = candidates.view(len(candidates), -1, d)
        clicked = (history != 0).any(-1, keepdim=True)
        mean = (history * clicked).sum(1) / clicked.sum(1).clamp_min(1)
        user = torch.cat([mean, torch.ones_like(mean[:, :1])], dim=1)
        shared = torch.cat([items, items * mean[:, None, :]], dim=-1)
        return user, shared, items

    def _arms(self, items: Tensor) -> Tensor:
        """Arm index of every item ``(B, K)``, registering new feature vectors."""
        unique, inverse = torch.unique(items.reshape(-1, items.shape[-1]), dim=0,
                                       return_inverse=True)
        ids = []
        for row in unique.cpu().numpy():
            key = row.tobytes()
            if key not in self.arm_index:
                self.arm_index[key] = len(self.arm_index)
            ids.append(self.arm_index[key])
        grow = self.num_arms - len(self.arm_a)
        if grow > 0:
            eye = torch.eye(self.user_dim, dtype=torch.float64, device=self.device)
            self.arm_a = torch.cat([self.arm_a, eye.expand(grow, -1, -1)])
            self.arm_b = torch.cat([self.arm_b, self.arm_b.new_zeros(grow, self.user_dim,
                                                                     self.shared_dim)])
            self.arm_reward = torch.cat([self.arm_reward,
                                         self.arm_reward.new_zeros(grow, self.user_dim)])
        return torch.tensor(ids, device=self.device)[inverse].view(items.shape[:2])

    def scores(self, observation: dict[str, Tensor]) -> Tensor:
        """Upper confidence bounds of every candidate, ``(B, K)``."""
        user, shared, items = self._features(observation)
        arms = self._arms(items)
        used, local = torch.unique(arms, return_inverse=True)
        a_inv = torch.linalg.inv(self.arm_a[used])
        a0_inv = torch.linalg.inv(self.a0)
        beta = a0_inv @ self.b0
        theta = (a_inv @ (self.arm_reward[used] - self.arm_b[used] @ beta)[..., None])[..., 0]
        a_inv_x = (a_inv[local] @ user[:, None, :, None])[..., 0]  # (B, K, d+1)
        w = (self.arm_b[used][local].transpose(-1, -2) @ a_inv_x[..., None])[..., 0]
        gap = shared - w
        variance = ((gap @ a0_inv) * gap).sum(-1) + (a_inv_x * user[:, None, :]).sum(-1)
        mean = shared @ beta + (theta[local] * user[:, None, :]).sum(-1)
        return (mean + self.alpha * variance.clamp_min(0).sqrt()).float()

    @torch.no_grad()
    def act(self, observation: dict[str, Tensor]) -> Tensor:
        """The ``k`` candidates of highest upper confidence bound: positions ``(B, k)``."""
        slate = self.scores(observation).topk(self.slate_size, dim=1).indices
        device = observation["candidates"].device if isinstance(observation["candidates"],
                                                                Tensor) else self.device
        return slate.to(device)

    @torch.no_grad()
    def update(self, observation: dict[str, Tensor], slate: Tensor, clicked_position: Tensor
               ) -> None:
        """Learn from one step of a batch: shown positions ``(B, k)``, clicked one ``(B,)``.

        ``clicked_position`` holds the slate column that was clicked, or -1 for none.
        """
        user, shared, items = self._features(observation)
        slate = slate.to(self.device)
        shown_items = items.gather(1, slate[..., None].expand(-1, -1, items.shape[-1]))
        arms = self._arms(shown_items).flatten()
        z = shared.gather(1, slate[..., None].expand(-1, -1, shared.shape[-1])).flatten(0, 1)
        x = user.repeat_interleave(slate.shape[1], dim=0)
        reward = (torch.arange(slate.shape[1], device=self.device)[None, :]
                  == clicked_position.to(self.device)[:, None]).double().flatten()
        touched, local = torch.unique(arms, return_inverse=True)

        def schur_terms() -> tuple[Tensor, Tensor]:
            a_inv = torch.linalg.inv(self.arm_a[touched])
            b = self.arm_b[touched]
            left = b.transpose(-1, -2) @ a_inv
            return (left @ b).sum(0), (left @ self.arm_reward[touched][..., None]).sum((0, 2))

        old_a, old_b = schur_terms()
        self.a0 += old_a
        self.b0 += old_b
        self.arm_a[touched] += torch.zeros_like(self.arm_a[touched]).index_add_(
            0, local, x[:, :, None] * x[:, None, :])
        self.arm_b[touched] += torch.zeros_like(self.arm_b[touched]).index_add_(
            0, local, x[:, :, None] * z[:, None, :])
        self.arm_reward[touched] += torch.zeros_like(self.arm_reward[touched]).index_add_(
            0, local, reward[:, None] * x)
        new_a, new_b = schur_terms()
        self.a0 += z.T @ z - new_a
        self.b0 += z.T @ reward - new_b

    def fit(self, env: UserSimulator | RecVectorEnv, iterations: int = 100,
            num_users: int = 512, horizon: int = 10, seed: int = 0,
            progress: bool = False) -> list[dict[str, float]]:
        """Interact with ``num_users`` simulated users for ``iterations`` steps, learning online.

        Returns:
            Per-iteration click rate and mean reward.
        """
        simulator = getattr(env, "simulator", env)
        batch = SimulationBatch(simulator, num_users, max_episode_steps=horizon,
                                device=self.device)
        batch.seed(torch.arange(num_users) + seed * num_users)
        batch.reset()
        log = []
        for iteration in tqdm(range(iterations), desc=self.name, disable=not progress):
            observation = batch.observe()
            slate = self.act(observation)
            reward, clicked, terminated, truncated, _ = batch.step(slate)
            position = _clicked_position(simulator, observation, slate, clicked)
            self.update(observation, slate, position)
            ended = terminated | truncated
            if bool(ended.any()):
                batch.reset(ended)
            log.append({"iteration": iteration, "reward": float(reward.mean()),
                        "ctr": float((clicked >= 0).float().mean())})
        return log


def _clicked_position(simulator: UserSimulator, observation: dict[str, Tensor], slate: Tensor,
                      clicked: Tensor) -> Tensor:
    """Which slate column was clicked (-1: none), by matching the clicked item's features."""
    features = getattr(simulator, "features", None)
    if features is None:
        raise ValueError("LinUCB.fit needs a simulator with item 'features' (e.g. GANUsers) "
                         "to tell which shown item was clicked")
    d = features.shape[1]
    items = torch.as_tensor(observation["candidates"]).view(len(slate), -1, d)
    shown_features = items.gather(1, slate[..., None].expand(-1, -1, d))
    clicked_features = features[clicked.clamp_min(0)].to(shown_features.device)
    match = (shown_features == clicked_features[:, None, :]).all(-1)
    position = match.float().argmax(1)
    return torch.where((clicked >= 0) & match.any(1), position, -1)

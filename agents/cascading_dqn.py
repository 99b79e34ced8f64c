r"""Cascading DQN of Chen et al. (ICML 2019, sec. 5) and its Table 3 variants.

A recommender shows ``k`` of the ``K`` candidates. Instead of maximising ``Q(s, A)`` over
all ``K choose k`` slates, ``k`` networks ``Q^j(s, a_1, ..., a_j)`` are applied in a
cascade (eq. 8, Algorithm 1): ``a*_j = argmax_{a not yet chosen} Q^j(s, a*_1..a*_{j-1}, a)``,
so a selection costs ``O(k K)`` network evaluations. Each ``Q^j`` is one hidden layer over
``[s, f_{a_1}, ..., f_{a_j}]`` (eq. 9); all of them regress on the shared target
``y = r + gamma Q^k(s', a*_{1:k})`` (eq. 11), which softly enforces the consistency
``Q^j(s, a*_{1:j}) = Q^k(s, a*_{1:k})`` of eq. 10. Training uses experience replay,
epsilon-greedy exploration and a target network, on a whole batch of simulated users.

Variants (sec. 6.2):

* ``GAN-CDQN``: ``variant="cascading"``, ``reward="learned"`` (the user model's reward).
* ``GAN-RWD1``: the same cascade trained with ``reward="click"``: +1 for a click, -1 for
  no click (the paper's "±1 reward").
* ``GAN-GDQN``: ``variant="additive"``, ``Q(s, A) = sum_j Q(s, a_j)`` (He et al. 2016), one
  per-item network; its argmax is the top ``k`` items.
* ``GAN-Greedy``: :class:`GreedyPolicy` on a fitted user model, the ``k`` candidates with
  the highest learned reward (hence click probability); on the logistic-regression click
  model (``recgym.simulators.gan_user.baselines.LogisticClickModel``) it is the W&D-LR
  row of Table 3 without the deep part.
* ``DQN-Off``: :meth:`CascadingDQN.fit_offline`, the cascade fitted on logged page views
  alone (:func:`logged_transitions`), with no user model.

Readings chosen where the paper is silent:

* The state ``s`` is the agent's own position-weighting embedding (eq. 4,
  ``vec[ELU(F W + B)]`` of the last ``m`` clicked items' features, zeros for none),
  shared by the ``k`` networks and learnt with them (ELU, as in the user model). The
  hidden layer of each ``Q^j`` uses ReLU (eq. 9 leaves ``sigma`` open; ReLU is the
  cheaper of the two the paper names, and selection evaluates it ``k K`` times per user).
* The hidden layer of eq. 9 is split as ``L_j [s; f_1..f_{j-1}] + L'_j f_a``, the same
  linear map, so that the prefix term is computed once per user and only the item term per
  candidate: this is what keeps a selection linear in ``K``.
* The maximisation in the target uses the target network's own cascade (plain DQN, no
  double-Q). Truncation at the horizon is not a terminal state (bootstrapped).
* Exploration is per position: with probability ``epsilon`` the ``j``-th item is drawn
  uniformly among the candidates not chosen yet.
* Algorithm 1 first removes the items the user already clicked (``I = A \ s``). The ids
  come from the ``clicks`` / ``candidate_ids`` observation keys (``observe_ids=True``;
  the simulator always provides them to :meth:`CascadingDQN.fit`), so only the last
  ``m`` clicks are known; without the keys nothing is removed. Where fewer than ``k``
  unclicked candidates remain, nothing is removed for that user.

Agents normally import only ``recgym.core``; this module also reads the GAN user model's
page views (for the offline variant), as ``agents/irecgan.py`` does for its user model.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from recgym.core.batch import SimulationBatch
from recgym.core.checkpoint import (
    check_checkpoint,
    checkpoint_payload,
    config_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from recgym.core.env import RecVectorEnv
from recgym.core.random import isolated_global_rng
from recgym.core.simulator import UserSimulator
from recgym.simulators.gan_user.fit import PageViews

VARIANTS = ("cascading", "additive")
REWARDS = ("learned", "click")


@dataclass
class CascadingDQNConfig:
    """Architecture of the Q-networks.

    Attributes:
        feature_dim: ``d``, item feature size.
        history: ``m``, clicked items in the observation's history.
        slate_size: ``k``.
        variant: ``"cascading"`` (CDQN, eq. 9) or ``"additive"`` (GDQN).
        reward: what the agent maximises: ``"learned"`` (the env's reward) or ``"click"``
            (+1 click, -1 none: GAN-RWD1).
        position_columns: ``n`` of the state embedding (eq. 4).
        hidden: ``l``, width of each Q-network's hidden layer.
    """

    feature_dim: int
    history: int = 10
    slate_size: int = 5
    variant: str = "cascading"
    reward: str = "learned"
    position_columns: int = 4
    hidden: int = 128

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {self.reward!r}")
        for name in ("feature_dim", "history", "slate_size", "position_columns", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class CascadingQNetworks(nn.Module):
    """The state embedding and the ``k`` (cascading) or one (additive) Q-networks."""

    def __init__(self, config: CascadingDQNConfig) -> None:
        super().__init__()
        self.config = config
        d, n, hidden = config.feature_dim, config.position_columns, config.hidden
        self.position_weights = nn.Parameter(torch.randn(config.history, n) * 0.1)  # W
        self.position_bias = nn.Parameter(torch.zeros(d, n))  # B
        heads = config.slate_size if config.variant == "cascading" else 1
        # L_j split into its columns for [s; f_{a_1..a_{j-1}}] and for f_{a_j}, plus c_j
        self.prefix = nn.ModuleList(nn.Linear(d * n + d * j, hidden) for j in range(heads))
        self.item = nn.Linear(d, heads * hidden, bias=False)  # the f_{a_j} columns of every L_j
        self.out = nn.Parameter(torch.randn(heads, hidden) / hidden ** 0.5)  # q_j

    def state(self, history: Tensor) -> Tensor:
        """``s = vec[ELU(F W + B)]`` from clicked-item features ``(B, m, d)`` (eq. 4)."""
        return F.elu(history.transpose(1, 2) @ self.position_weights
                     + self.position_bias).flatten(1)

    def item_terms(self, items: Tensor, j: int | None = None) -> Tensor:
        """``L'_j f_a`` of items ``(B, N, d)``: ``(B, N, heads, l)``; ``(B, N, 1, l)`` for one j."""
        weight = self.item.weight
        if j is not None:
            hidden = self.config.hidden
            weight = weight[j * hidden:(j + 1) * hidden]
        return F.linear(items, weight).unflatten(-1, (-1, self.config.hidden))

    def head(self, j: int, state: Tensor, chosen: Tensor, item_terms: Tensor) -> Tensor:
        """``Q^{j+1}(s, chosen, a)`` for every item ``a`` of ``item_terms``.

        Args:
            j: 0-based network index.
            state: ``(B, dn)``.
            chosen: features of the items chosen before, ``(B, j, d)``.
            item_terms: :meth:`item_terms` of the items, ``(B, N, heads, l)`` (or
                ``(B, N, 1, l)`` of network ``j`` alone).

        Returns:
            ``(B, N)``.
        """
        prefix = self.prefix[j](torch.cat([state, chosen.flatten(1)], dim=1))
        terms = item_terms[:, :, 0] if item_terms.shape[2] == 1 else item_terms[:, :, j]
        hidden = F.relu(prefix[:, None, :] + terms)
        return hidden @ self.out[j]

    def slate_values(self, state: Tensor, candidates: Tensor, slate: Tensor) -> Tensor:
        """Q-values along given slates (positions ``(B, k)``): ``(B, k)``.

        Cascading: column ``j`` is ``Q^{j+1}(s, a_1..a_{j+1})``. Additive: the per-item
        ``Q(s, a_j)``, whose sum is ``Q(s, A)``.
        """
        features = _gather_items(candidates, slate)
        terms = self.item_terms(features)
        if self.config.variant == "additive":
            return self.head(0, state, features[:, :0], terms)
        return torch.cat([self.head(j, state, features[:, :j], terms[:, j:j + 1])
                          for j in range(slate.shape[1])], dim=1)

    def select(self, state: Tensor, candidates: Tensor, epsilon: float = 0.0,
               generator: torch.Generator | None = None, excluded: Tensor | None = None
               ) -> tuple[Tensor, Tensor]:
        """Algorithm 1, batched: the slate (positions ``(B, k)``) and its Q-values ``(B, k)``.

        Each position takes the best candidate not chosen yet under its network (under the
        one per-item network for the additive variant); with probability ``epsilon`` it
        takes a uniformly random one instead. ``excluded`` ``(B, K)`` marks candidates
        never to choose (already clicked), ignored for users left with fewer than ``k``.
        """
        batch, size = candidates.shape[:2]
        k = self.config.slate_size
        taken = torch.zeros(batch, size, dtype=torch.bool, device=candidates.device)
        if excluded is not None:
            taken = _removable(excluded, k)
        rows = torch.arange(batch, device=candidates.device)
        shared = None
        if self.config.variant == "additive":  # Q(s, a) does not depend on the prefix
            shared = self.head(0, state, candidates[:, :0], self.item_terms(candidates, 0))
        positions, values = [], []
        for j in range(k):
            if shared is None:
                chosen = _gather_items(candidates, torch.stack(positions, 1)) if positions \
                    else candidates[:, :0]
                scores = self.head(j, state, chosen, self.item_terms(candidates, j))
            else:
                scores = shared
            scores = scores.masked_fill(taken, -float("inf"))
            pick = scores.argmax(1)
            if epsilon > 0:
                keys = torch.rand(batch, size, generator=generator, device=candidates.device)
                random_pick = keys.masked_fill(taken, -1.0).argmax(1)
                explore = torch.rand(batch, generator=generator,
                                     device=candidates.device) < epsilon
                pick = torch.where(explore, random_pick, pick)
            positions.append(pick)
            values.append(scores[rows, pick])
            taken[rows, pick] = True
        return torch.stack(positions, 1), torch.stack(values, 1)


def _gather_items(candidates: Tensor, positions: Tensor) -> Tensor:
    """Features ``(B, j, d)`` of the candidates at ``positions`` ``(B, j)``."""
    return candidates.gather(1, positions[..., None].expand(-1, -1, candidates.shape[-1]))


def clicked_candidates(observation: dict[str, Tensor]) -> Tensor | None:
    """Bool ``(B, K)``: pool items among the user's last ``m`` clicks; None without ids.

    Reads the ``clicks`` (-1: none) and ``candidate_ids`` keys (``observe_ids=True``).
    """
    if "clicks" not in observation or "candidate_ids" not in observation:
        return None
    clicks = torch.as_tensor(observation["clicks"])
    pool = torch.as_tensor(observation["candidate_ids"], device=clicks.device)
    return (pool[:, :, None] == clicks[:, None, :]).any(-1)


def top_k_positions(scores: Tensor, k: int, excluded: Tensor | None = None) -> Tensor:
    """The ``k`` best-scored positions ``(B, k)``, skipping ``excluded`` ones where possible."""
    if excluded is not None:
        scores = scores.masked_fill(_removable(excluded.to(scores.device), k), -float("inf"))
    return scores.topk(k, dim=1).indices


def _removable(excluded: Tensor, k: int) -> Tensor:
    """``excluded`` for users who keep at least ``k`` other candidates, False elsewhere."""
    return excluded & ((~excluded).sum(1, keepdim=True) >= k)


@dataclass
class CDQNTraining:
    """Hyper-parameters of cascading Q-learning against a batched simulator.

    Attributes:
        iterations: env steps; each shows a slate to all ``num_users`` users.
        num_users: users simulated together (each restarts when its session ends).
        horizon: session length (the env's ``max_episode_steps``).
        gamma: discount of eq. 11.
        learning_rate: Adam step size.
        batch_size: transitions per gradient step.
        updates_per_iteration: gradient steps after each env step.
        buffer_size: replay capacity in transitions.
        warmup: transitions collected before learning starts.
        epsilon_start: exploration at the first iteration.
        epsilon_end: exploration after ``epsilon_decay`` of the iterations.
        epsilon_decay: fraction of iterations over which epsilon decays linearly.
        target_update: gradient steps between copies into the target network.
        grad_clip: max gradient norm.
        seed: seeds the networks, the users' random streams, exploration and replay.
        progress: show a progress bar.
    """

    iterations: int = 300
    num_users: int = 512
    horizon: int = 10
    gamma: float = 0.9
    learning_rate: float = 1e-3
    batch_size: int = 512
    updates_per_iteration: int = 2
    buffer_size: int = 50_000
    warmup: int = 2048
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_decay: float = 0.5
    target_update: int = 50
    grad_clip: float = 10.0
    seed: int = 0
    progress: bool = False

    def epsilon(self, iteration: int) -> float:
        """Linearly decayed exploration rate at ``iteration``."""
        done = min(iteration / max(self.epsilon_decay * self.iterations, 1.0), 1.0)
        return self.epsilon_start + done * (self.epsilon_end - self.epsilon_start)


class ReplayBuffer:
    """Ring buffer of transitions ``(history, candidates, slate, reward, next ..., done)``."""

    def __init__(self, capacity: int, device: torch.device) -> None:
        self.capacity = capacity
        self.device = device
        self.data: dict[str, Tensor] = {}
        self.size = 0
        self.cursor = 0

    def add(self, **batch: Tensor) -> None:
        """Append a batch of transitions (all tensors with the same leading size)."""
        count = len(next(iter(batch.values())))
        if not self.data:
            self.data = {key: torch.empty((self.capacity, *value.shape[1:]), dtype=value.dtype,
                                          device=self.device) for key, value in batch.items()}
        index = (self.cursor + torch.arange(count, device=self.device)) % self.capacity
        for key, value in batch.items():
            self.data[key][index] = value.to(self.device)
        self.cursor = (self.cursor + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def sample(self, count: int, generator: torch.Generator) -> dict[str, Tensor]:
        """``count`` transitions drawn uniformly with replacement."""
        index = torch.randint(self.size, (count,), generator=generator, device=self.device)
        return {key: value[index] for key, value in self.data.items()}


def _transitions(observation: dict[str, Tensor], slate: Tensor, reward: Tensor,
                 next_observation: dict[str, Tensor], terminated: Tensor) -> dict[str, Tensor]:
    """A replay batch: features, slate, reward, next features (and next ids, for Alg. 1)."""
    batch = {"history": observation["history"], "candidates": observation["candidates"],
             "slate": slate, "reward": reward.float(), "done": terminated.float()}
    for key in ("history", "candidates", "clicks", "candidate_ids"):
        if key in next_observation:
            batch[f"next_{key}"] = next_observation[key]
    return batch


def logged_transitions(views: PageViews, features: Tensor, slate_size: int, *,
                       seed: int = 0) -> dict[str, Tensor]:
    """Replay transitions from logged page views, for :meth:`CascadingDQN.fit_offline`.

    A log shows a display set and one click (or none), not a ``k``-item slate, so each page
    view becomes one slate of ``k`` displayed items: for a random half of the page views
    with a click it holds the clicked item and ``k - 1`` others (reward +1, the state
    advances with the click), otherwise ``k`` items without it (reward -1, the state stays:
    the counterfactual reading that a user shown none of her choice clicks nothing). The
    next candidate pool is the user's next logged display set; the last page view of a
    session is terminal. ``views`` must be in session order, as ``PageViews.from_logs``
    returns them.
    """
    views_count, pool = views.display.shape
    if slate_size > pool - 1:
        raise ValueError(f"slate_size {slate_size} needs display sets of more than "
                         f"{slate_size} items; these have {pool}")
    generator = torch.Generator().manual_seed(seed)
    clicked = views.choice < pool
    positive = clicked & (torch.rand(views_count, generator=generator) < 0.5)
    # random order of the display set with the clicked item moved first (positives) or last
    keys = torch.rand(views_count, pool, generator=generator)
    rows = torch.arange(views_count)
    choice = views.choice.clamp(max=pool - 1)
    keys[rows[clicked], choice[clicked]] = torch.where(positive[clicked], -1.0, 2.0)
    slate = keys.argsort(1)[:, :slate_size]
    click_ids = views.display[rows, choice]
    shifted = torch.cat([views.history[:, 1:], click_ids[:, None]], dim=1)
    next_history = torch.where(positive[:, None], shifted, views.history)
    # the logged continuation: the next row of the same session advanced by the logged click
    logged_next = torch.where(clicked[:, None], shifted, views.history)
    same_user = torch.from_numpy(views.user[1:] == views.user[:-1])
    continues = torch.zeros(views_count, dtype=torch.bool)
    continues[:-1] = same_user & (views.history[1:] == logged_next[:-1]).all(1)
    next_display = views.display.roll(-1, dims=0)
    next_display[~continues] = views.display[~continues]

    def flat(ids: Tensor) -> Tensor:
        return (features[ids.clamp_min(0)] * (ids >= 0)[..., None]).flatten(1)

    return {"history": flat(views.history), "candidates": flat(views.display), "slate": slate,
            "reward": positive.float() * 2.0 - 1.0, "done": (~continues).float(),
            "next_history": flat(next_history), "next_candidates": flat(next_display),
            "next_clicks": next_history, "next_candidate_ids": next_display}


class CascadingDQN:
    """Cascading (or additive) deep Q-network recommender; a recgym Policy.

    Acts on the ``history`` ``(B, m d)`` and ``candidates`` ``(B, K d)`` observations of
    ``GANUserModel-v0`` and returns pool positions ``(B, k)``. ``K`` may differ between
    calls (the networks never see it). See the module docstring for the variants.

    Args:
        config: architecture.
        seed: seeds the initial weights.
        device: where the networks live.
    """

    @isolated_global_rng
    def __init__(self, config: CascadingDQNConfig, *, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        self.config = config
        self.slate_size = config.slate_size
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self.network = CascadingQNetworks(config).to(self.device)
        self.history: list[dict[str, float]] = []

    @property
    def name(self) -> str:
        """The paper's name of this variant (GAN-CDQN, GAN-RWD1, GAN-GDQN)."""
        if self.config.variant == "additive":
            return "GAN-GDQN" if self.config.reward == "learned" else "GAN-GDQN-RWD1"
        return "GAN-CDQN" if self.config.reward == "learned" else "GAN-RWD1"

    def _split(self, observation: dict[str, Tensor]
               ) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(B, m, d)`` history, ``(B, K, d)`` candidates (shape-checked), clicked mask."""
        config = self.config
        d = config.feature_dim
        missing = [key for key in ("history", "candidates") if key not in observation]
        if missing:
            raise KeyError(f"observation lacks {missing}: CascadingDQN needs the 'history' and "
                           "'candidates' keys of GANUserModel-v0")
        history = torch.as_tensor(observation["history"], device=self.device).float()
        candidates = torch.as_tensor(observation["candidates"], device=self.device).float()
        if history.ndim != 2 or history.shape[1] != config.history * d:
            raise ValueError(
                f"observation 'history' must have shape (B, m*d) = (B, {config.history * d}) "
                f"for this agent (m={config.history}, d={d}), got {tuple(history.shape)}; "
                "build the agent with the env's history length and item feature size")
        if candidates.ndim != 2 or candidates.shape[1] % d or candidates.shape[1] < \
                config.slate_size * d:
            raise ValueError(
                f"observation 'candidates' must have shape (B, K*d) with d={d} and "
                f"K >= slate_size={config.slate_size}, got {tuple(candidates.shape)}; was "
                "the agent built for another env (item feature size)?")
        excluded = clicked_candidates(observation)
        return (history.view(len(history), config.history, d),
                candidates.view(len(candidates), -1, d),
                None if excluded is None else excluded.to(self.device))

    def _greedy(self, history: Tensor, candidates: Tensor, excluded: Tensor | None
                ) -> tuple[Tensor, Tensor]:
        """Algorithm 1 in chunks of users, so that large pools fit in memory."""
        chunk = max(1, 2**20 // (candidates.shape[1] * self.config.hidden))
        masks = [None] * len(history.split(chunk)) if excluded is None else excluded.split(chunk)
        parts = [self.network.select(self.network.state(h), c, excluded=mask)
                 for h, c, mask in zip(history.split(chunk), candidates.split(chunk), masks,
                                       strict=True)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    @torch.no_grad()
    def act(self, observation: dict[str, Tensor]) -> Tensor:
        """Greedy slates (Algorithm 1): pool positions, int64 ``(B, k)``.

        Already clicked items are skipped when the observation has the ids
        (``observe_ids=True``).
        """
        slate, _ = self._greedy(*self._split(observation))
        device = observation["candidates"].device if isinstance(observation["candidates"],
                                                                Tensor) else self.device
        return slate.to(device)

    @torch.no_grad()
    def q_values(self, observation: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """The greedy slate and its Q-values ``(B, k)``: ``Q^j(s, a*_{1:j})`` per column.

        For the cascading variant the columns should agree (eq. 10, Figure 5); for the
        additive one they are the per-item terms of the sum.
        """
        return self._greedy(*self._split(observation))

    @isolated_global_rng
    def fit(self, env: UserSimulator | RecVectorEnv,
            training: CDQNTraining | None = None) -> list[dict[str, float]]:
        """Cascading Q-learning (eq. 11) against a batched user simulator.

        Args:
            env: a simulator with ``history`` / ``candidates`` observations (e.g.
                ``recgym.envs.gan_user.GANUsers``) or a recgym vector env over one (as
                ``gym.make_vec("GANUserModel-v0", ...)`` returns; its simulator is used).
            training: hyper-parameters.

        Returns:
            Per-iteration log (mean reward, click rate, loss, epsilon), also appended to
            ``self.history``.
        """
        training = training or CDQNTraining()
        simulator = getattr(env, "simulator", env)
        if simulator.slate_size != self.config.slate_size:
            raise ValueError(f"the env shows {simulator.slate_size} items per slate but this "
                             f"agent was built for slate_size={self.config.slate_size}")
        torch.manual_seed(training.seed)
        generator = torch.Generator(self.device).manual_seed(training.seed)
        batch = SimulationBatch(simulator, training.num_users,
                                max_episode_steps=training.horizon, device=self.device)
        batch.seed(torch.arange(training.num_users) + training.seed * training.num_users)
        batch.reset()
        learner = _QLearner(self, training)
        replay = ReplayBuffer(training.buffer_size, self.device)
        log: list[dict[str, float]] = []
        observation = batch.observe()
        for iteration in tqdm(range(training.iterations), desc=self.name,
                              disable=not training.progress):
            epsilon = training.epsilon(iteration)
            history, candidates, excluded = self._split(observation)
            with torch.no_grad():
                slate, _ = self.network.select(self.network.state(history), candidates,
                                               epsilon, generator, excluded)
            reward, clicked, terminated, truncated, _ = batch.step(slate)
            next_observation = batch.observe()
            learned = reward if self.config.reward == "learned" else \
                (clicked >= 0).float() * 2.0 - 1.0
            replay.add(**_transitions(observation, slate, learned, next_observation,
                                      terminated))
            ended = terminated | truncated
            if bool(ended.any()):
                batch.reset(ended)
                next_observation = batch.observe()
            observation = next_observation
            losses = []
            if replay.size >= training.warmup:
                for _ in range(training.updates_per_iteration):
                    losses.append(learner.step(replay.sample(training.batch_size, generator)))
            log.append({"iteration": iteration, "epsilon": epsilon,
                        "reward": float(reward.mean()),
                        "ctr": float((clicked >= 0).float().mean()),
                        "loss": sum(losses) / len(losses) if losses else float("nan")})
        self.history.extend(log)
        return log

    @isolated_global_rng
    def fit_offline(self, transitions: dict[str, Tensor],
                    training: CDQNTraining | None = None) -> list[dict[str, float]]:
        """DQN-Off: cascading Q-learning (eq. 11) on logged transitions alone, no simulator.

        Args:
            transitions: as :func:`logged_transitions` returns (rewards +-1 per click).
            training: hyper-parameters; ``iterations * updates_per_iteration`` gradient
                steps on mini-batches drawn uniformly from ``transitions`` (the exploration
                and user settings are unused).

        Returns:
            Per-iteration log (mean loss), also appended to ``self.history``.
        """
        training = training or CDQNTraining()
        if self.config.reward != "click":
            raise ValueError("logged page views hold clicks, not a learned reward: build the "
                             "agent with reward='click' to fit it offline")
        torch.manual_seed(training.seed)
        generator = torch.Generator(self.device).manual_seed(training.seed)
        data = {key: value.to(self.device) for key, value in transitions.items()}
        learner = _QLearner(self, training)
        log: list[dict[str, float]] = []
        for iteration in tqdm(range(training.iterations), desc="DQN-Off",
                              disable=not training.progress):
            losses = []
            for _ in range(training.updates_per_iteration):
                index = torch.randint(len(data["reward"]), (training.batch_size,),
                                      generator=generator, device=self.device)
                losses.append(learner.step({key: value[index] for key, value in data.items()}))
            log.append({"iteration": iteration, "loss": sum(losses) / len(losses)})
        self.history.extend(log)
        return log

    def _update(self, sample: dict[str, Tensor], target: CascadingQNetworks,
                optimizer: torch.optim.Optimizer, training: CDQNTraining) -> float:
        """One gradient step on ``sum_j (y - Q^j)^2`` with the shared target of eq. 11."""
        history, candidates, _ = self._split(sample)
        next_history, next_candidates, next_excluded = self._split(
            {key[len("next_"):]: value for key, value in sample.items()
             if key.startswith("next_")})
        with torch.no_grad():
            _, next_values = target.select(target.state(next_history), next_candidates,
                                           excluded=next_excluded)
            next_value = next_values[:, -1] if self.config.variant == "cascading" \
                else next_values.sum(1)
            y = sample["reward"] + training.gamma * (1.0 - sample["done"]) * next_value
        values = self.network.slate_values(self.network.state(history), candidates,
                                           sample["slate"])
        if self.config.variant == "cascading":
            loss = (y[:, None] - values).pow(2).mean(0).sum()
        else:
            loss = (y - values.sum(1)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.network.parameters(), training.grad_clip)
        optimizer.step()
        return loss.item()

    def checkpoint(self) -> dict:
        """Config, weights and training log (loadable with ``weights_only=True``)."""
        return checkpoint_payload("cascading-dqn", asdict(self.config),
                                  self.network.state_dict(), history=self.history)

    def save(self, path) -> None:
        """Write :meth:`checkpoint` to ``path`` atomically."""
        save_checkpoint(path, self.checkpoint())

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, *,
                        device: torch.device | str = "cpu") -> CascadingDQN:
        """Rebuild an agent from :meth:`checkpoint`; refuses other checkpoints."""
        check_checkpoint(checkpoint, "cascading-dqn")
        agent = cls(config_from_checkpoint(CascadingDQNConfig, checkpoint), device=device)
        agent.network.load_state_dict(checkpoint["state_dict"])
        agent.history = [dict(row) for row in checkpoint["history"]]
        return agent

    @classmethod
    def load(cls, path, *, device: torch.device | str = "cpu") -> CascadingDQN:
        """Load a file written by :meth:`save` (never unpickles arbitrary objects)."""
        return cls.from_checkpoint(load_checkpoint(path, "cascading-dqn"), device=device)


class _QLearner:
    """An agent's optimiser and target network (re-copied every ``target_update`` steps)."""

    def __init__(self, agent: CascadingDQN, training: CDQNTraining) -> None:
        self.agent = agent
        self.training = training
        self.target = copy.deepcopy(agent.network)
        self.optimizer = torch.optim.Adam(agent.network.parameters(), lr=training.learning_rate)
        self.steps = 0

    def step(self, sample: dict[str, Tensor]) -> float:
        """One gradient step on ``sample`` (:meth:`CascadingDQN._update`); its loss."""
        loss = self.agent._update(sample, self.target, self.optimizer, self.training)
        self.steps += 1
        if self.steps % self.training.target_update == 0:
            self.target.load_state_dict(self.agent.network.state_dict())
        return loss


class ClickScorer(Protocol):
    """A click model that ranks candidates: the GAN user model or the LR click model."""

    feature_dim: int

    def item_scores(self, history: Tensor, candidates: Tensor) -> Tensor:
        """Scores ``(B, K)`` of candidates ``(B, K, d)`` after clicks ``(B, m, d)``."""

    def parameters(self) -> Iterator[nn.Parameter]:
        """The model's weights (where they live tells the device)."""


@dataclass
class GreedyPolicy:
    """The ``k`` candidates a fitted click model scores highest (Table 3's greedy rows).

    On a GAN user model (GAN-Greedy) the score is the learned reward; the click
    probabilities are ``softmax(eta r)`` over the shown items, so these are also the
    ``k`` likeliest clicks. On the logistic-regression click model it is the W&D-LR row
    without the deep part. Already clicked items are skipped when the observation has the
    ids. The model is one fitted on training users; the policy never sees the test model.

    Args:
        model: a fitted scorer (:class:`~recgym.simulators.gan_user.model.GANUserModel`,
            :class:`~recgym.simulators.gan_user.baselines.LogisticClickModel`).
        slate_size: ``k``.
        name: label for tables.
    """

    model: ClickScorer
    slate_size: int
    name: str = field(default="GAN-Greedy")

    @torch.no_grad()
    def act(self, observation: dict[str, Tensor]) -> Tensor:
        """Top-``k`` pool positions by score, int64 ``(B, k)``."""
        d = self.model.feature_dim
        history = torch.as_tensor(observation["history"])
        candidates = torch.as_tensor(observation["candidates"])
        if history.shape[-1] % d or candidates.shape[-1] % d:
            raise ValueError(f"observation sizes {tuple(history.shape)} / "
                             f"{tuple(candidates.shape)} are not multiples of the model's "
                             f"item feature size d={d}")
        device = next(self.model.parameters()).device
        scores = self.model.item_scores(history.to(device).view(len(history), -1, d),
                                        candidates.to(device).view(len(candidates), -1, d))
        return top_k_positions(scores, self.slate_size,
                               clicked_candidates(observation)).to(candidates.device)

"""Target and logging policies on logged data: rebuilt observations and action probabilities.

Off-policy estimators ask two questions of a policy at every logged page view: what did
it see (the observation the env would have given it), and how likely was it to show the
logged slate, as a whole, at each position, and as a top-``j`` prefix. This module
answers both for every recgym :class:`~recgym.core.policy.Policy`:

* :func:`observations_from_logs` rebuilds the observation of each logged row exactly as
  :meth:`recgym.envs.synthetic_mdp.SyntheticMDP.observe` produced it: ``clicks`` = the
  last ``history_length`` clicked items of the session before this step, oldest first,
  padded with ``num_items``; ``true_state`` copied from the log when it is there.
* :func:`policy_probabilities` returns :class:`SlateProbabilities`. The reference
  policies (uniform random, pi_max, pi_mix of IRecGAN sec. 7.1) get exact closed forms;
  deterministic policies get indicators of ``act``; stable-baselines3 ``MultiDiscrete``
  models get their per-position categorical probabilities; any other policy may define
  ``slate_probability`` (and optionally ``position_probability`` and
  ``prefix_probability``). A policy that can give none of these raises
  :class:`TargetProbabilityError`, which says which estimators remain usable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from recgym.core.policy import RandomPolicy, SB3Policy

CHUNK_ROWS = 65_536


class TargetProbabilityError(ValueError):
    """A policy cannot give the probability of a logged slate (or of its positions)."""


@dataclass
class SlateProbabilities:
    """A policy's probabilities of the logged slates.

    Attributes:
        slate: float64 ``(n,)``, probability of the whole ordered slate.
        position: float64 ``(n, k)``, marginal probability that the logged item at
            position ``j`` is shown at position ``j``; None if the policy cannot say.
        prefix: float64 ``(n, k)``, probability of the logged top-``(j+1)`` prefix;
            None if the policy cannot say.
        inclusion: float64 ``(n, k)``, probability that the logged item at position ``j``
            is anywhere in the policy's slate (expected count for policies that may repeat
            items); None if the policy cannot say.
        why_not: why ``position`` / ``prefix`` are missing (empty when present).
    """

    slate: np.ndarray
    position: np.ndarray | None = None
    prefix: np.ndarray | None = None
    inclusion: np.ndarray | None = None
    why_not: str = ""


def _sorted_order(session: np.ndarray, step: np.ndarray) -> np.ndarray:
    return np.lexsort((step, session))


def observations_from_logs(logs: pd.DataFrame, num_items: int, history_length: int = 10
                           ) -> dict[str, np.ndarray]:
    """What the env showed the policy at each logged row, rebuilt from the log.

    Args:
        logs: DataFrame with ``session_id``, ``step`` and ``click`` (item id or -1), and
            optionally ``true_state``; any row order.
        num_items: catalogue size ``n`` (the padding id of an empty history slot).
        history_length: how many recent clicks the env observes.

    Returns:
        ``{"clicks": int64 (rows, history_length)}`` (plus ``"true_state": int64 (rows,)``
        when the log has it), aligned with the rows of ``logs``.
    """
    if history_length < 1:
        raise ValueError(f"history_length must be >= 1, got {history_length}")
    rows = len(logs)
    order = _sorted_order(logs["session_id"].to_numpy(), logs["step"].to_numpy())
    session = logs["session_id"].to_numpy()[order]
    click = logs["click"].to_numpy().astype(np.int64)[order]
    clicked = click >= 0
    # Clicks strictly before each row, counted over the whole sorted log; a session's
    # own clicks are those counted since its first row.
    before = np.cumsum(clicked) - clicked
    starts = np.r_[True, session[1:] != session[:-1]] if rows else np.zeros(0, bool)
    session_start = np.maximum.accumulate(np.where(starts, np.arange(rows), 0)) if rows \
        else np.zeros(0, np.int64)
    first = before[session_start]
    click_items = np.r_[click[clicked], num_items]  # sentinel for padding
    slot = before[:, None] - history_length + np.arange(history_length)[None, :]
    valid = slot >= first[:, None]
    history = np.where(valid, click_items[np.where(valid, slot, len(click_items) - 1)], num_items)
    out_clicks = np.empty((rows, history_length), np.int64)
    out_clicks[order] = history
    observation = {"clicks": out_clicks}
    if "true_state" in logs.columns:
        observation["true_state"] = logs["true_state"].to_numpy().astype(np.int64)
    return observation


def _chunks(observation: dict[str, np.ndarray], slates: np.ndarray, rows: int = CHUNK_ROWS):
    total = len(slates)
    for start in range(0, total, rows):
        stop = min(start + rows, total)
        obs = {key: torch.from_numpy(np.ascontiguousarray(value[start:stop]))
               for key, value in observation.items()}
        yield start, stop, obs, torch.from_numpy(np.ascontiguousarray(slates[start:stop]))


def act_on_logs(policy, observation: dict[str, np.ndarray], rows: int | None = None
                ) -> np.ndarray:
    """``policy.act`` on every logged observation (in chunks), int64 ``(rows, k)``."""
    total = len(next(iter(observation.values()))) if rows is None else rows
    slates = []
    with torch.no_grad():
        for _, _, obs, _ in _chunks(observation, np.zeros((total, 0), np.int64)):
            slates.append(torch.as_tensor(policy.act(obs)).to(torch.int64).cpu().numpy())
    k = getattr(policy, "slate_size", 0)
    return np.concatenate(slates) if slates else np.zeros((0, k), np.int64)


def is_deterministic(policy) -> bool:
    """Whether ``policy.act`` is a function of the observation (no sampling).

    True for pi_max and for objects with a true ``deterministic`` attribute (e.g.
    :class:`~recgym.core.policy.SB3Policy` acting greedily).
    """
    from recgym.simulators.synthetic_mdp import MaxRewardPolicy

    if isinstance(policy, MaxRewardPolicy):
        return True
    return bool(getattr(policy, "deterministic", False))


def _distinct_prefix(slates: np.ndarray) -> np.ndarray:
    """Bool ``(n, k)``: items ``0..j`` of the slate are pairwise distinct."""
    k = slates.shape[1]
    repeated = np.zeros(slates.shape, bool)
    for j in range(1, k):
        repeated[:, j] = (slates[:, :j] == slates[:, j:j + 1]).any(1)
    return np.cumsum(repeated, axis=1) == 0


def _falling_factorials(n: int, k: int) -> np.ndarray:
    """``[n, n(n-1), ..., n(n-1)...(n-k+1)]`` as float64."""
    return np.cumprod(np.arange(n, n - k, -1, dtype=np.float64))


def _random_probabilities(policy: RandomPolicy, slates: np.ndarray) -> SlateProbabilities:
    k = slates.shape[1]
    distinct = _distinct_prefix(slates)
    prefix = distinct / _falling_factorials(policy.num_items, k)[None, :]
    position = np.full(slates.shape, 1.0 / policy.num_items)
    return SlateProbabilities(slate=prefix[:, -1].copy(), position=position, prefix=prefix,
                              inclusion=position * k)


def _mix_probabilities(policy, observation: dict[str, np.ndarray], slates: np.ndarray
                       ) -> SlateProbabilities:
    """pi_mix: top-k with probability p, else k distinct uniform items of the reward band."""
    if "true_state" not in observation:
        raise TargetProbabilityError("MixRewardPolicy reads the true state: the log needs a "
                                     "true_state column")
    rewards = policy.rewards.numpy()
    ranking = np.argsort(-rewards, axis=1, kind="stable")  # (m, n), same ties as torch stable
    state = observation["true_state"]
    n_items = rewards.shape[1]
    rank = np.empty_like(ranking)
    rank[np.arange(len(ranking))[:, None], ranking] = np.arange(n_items)[None, :]
    slate_rank = rank[state[:, None], slates]  # (rows, k)
    k = slates.shape[1]
    top = policy.top_probability
    start, stop = policy.band_ranks
    band = stop - start
    is_top_at = slate_rank == np.arange(k)[None, :]
    in_band = (slate_rank >= start) & (slate_rank < stop)
    top_prefix = np.cumprod(is_top_at, axis=1)
    band_prefix = np.cumprod(in_band, axis=1) * _distinct_prefix(slates)
    prefix = top * top_prefix + (1 - top) * band_prefix / _falling_factorials(band, k)[None, :]
    position = top * is_top_at + (1 - top) * in_band / band
    inclusion = top * (slate_rank < k) + (1 - top) * in_band * k / band
    return SlateProbabilities(slate=prefix[:, -1].copy(), position=position, prefix=prefix,
                              inclusion=inclusion)


def _indicator_probabilities(policy, observation, slates) -> SlateProbabilities:
    chosen = act_on_logs(policy, observation, rows=len(slates))
    if chosen.shape != slates.shape:
        raise TargetProbabilityError(f"policy.act returned slates of shape {chosen.shape} for "
                                     f"logged slates of shape {slates.shape}")
    same = (chosen == slates).astype(np.float64)
    prefix = np.cumprod(same, axis=1)
    inclusion = (slates[:, :, None] == chosen[:, None, :]).sum(2).astype(np.float64)
    return SlateProbabilities(slate=prefix[:, -1].copy(), position=same, prefix=prefix,
                              inclusion=inclusion)


def _sb3_sampling_probabilities(policy: SB3Policy, observation, slates) -> SlateProbabilities:
    import gymnasium as gym

    from recgym.core.env import to_numpy_observation

    space = policy.model.action_space
    if not isinstance(space, gym.spaces.MultiDiscrete):
        raise TargetProbabilityError(
            f"SB3Policy(deterministic=False) over a {type(space).__name__} action space samples "
            "Gaussian scores and takes their top-k: no closed-form slate probability. Use "
            "deterministic=True, or the estimators that need only act(): dm, sim")
    parts, inclusion_parts = [], []
    with torch.no_grad():
        for _, _, obs, slate in _chunks(observation, slates):
            obs_tensor, _ = policy.model.policy.obs_to_tensor(
                to_numpy_observation(obs, policy.observation_keys))
            dist = policy.model.policy.get_distribution(obs_tensor).distribution
            every = torch.stack([d.probs.cpu().gather(1, slate) for d in dist], 1).double()
            parts.append(torch.diagonal(every, dim1=1, dim2=2).numpy())  # (B, k)
            inclusion_parts.append(every.sum(1).numpy())
    position = np.concatenate(parts) if parts else np.zeros(slates.shape)
    inclusion = np.concatenate(inclusion_parts) if parts else np.zeros(slates.shape)
    prefix = np.cumprod(position, axis=1)
    return SlateProbabilities(slate=prefix[:, -1].copy(), position=position, prefix=prefix,
                              inclusion=inclusion)


def policy_probabilities(policy, observation: dict[str, np.ndarray], slates: np.ndarray, *,
                         deterministic: bool | None = None) -> SlateProbabilities:
    """A policy's probability of each logged slate, of its positions and of its prefixes.

    Args:
        policy: any recgym Policy.
        observation: rebuilt observations (:func:`observations_from_logs`), arrays with
            ``rows`` leading entries.
        slates: int64 ``(rows, k)`` logged slates.
        deterministic: declare that ``policy.act`` does not sample (then probabilities are
            indicators of ``act``); None reads :func:`is_deterministic`.

    Raises:
        TargetProbabilityError: the policy gives no slate probabilities; the message says
            why and which estimators remain usable.
    """
    from recgym.simulators.synthetic_mdp import MaxRewardPolicy, MixRewardPolicy

    slates = np.asarray(slates, dtype=np.int64)
    if slates.ndim != 2:
        raise ValueError(f"slates must be (rows, k), got shape {slates.shape}")
    if type(policy) is RandomPolicy:
        return _random_probabilities(policy, slates)
    if type(policy) is MixRewardPolicy:
        return _mix_probabilities(policy, observation, slates)
    if type(policy) is MaxRewardPolicy:
        return _indicator_probabilities(policy, observation, slates)
    if deterministic is None:
        deterministic = is_deterministic(policy)
    if deterministic:
        return _indicator_probabilities(policy, observation, slates)
    if isinstance(policy, SB3Policy):
        return _sb3_sampling_probabilities(policy, observation, slates)
    if not hasattr(policy, "slate_probability"):
        raise TargetProbabilityError(
            f"{type(policy).__name__} has no slate_probability method and is not declared "
            "deterministic, so the probability of a logged slate is unknown. Either give it "
            "slate_probability(observation, slate) -> float64 (B,), or pass "
            "deterministic=True if act() never samples. Without probabilities only the "
            "estimators that need act() alone remain usable: dm and sim")
    slate_p, position, prefix = [], [], []
    has_position = hasattr(policy, "position_probability")
    has_prefix = hasattr(policy, "prefix_probability")
    with torch.no_grad():
        for _, _, obs, slate in _chunks(observation, slates):
            slate_p.append(torch.as_tensor(policy.slate_probability(obs, slate)).double().numpy())
            if has_position:
                position.append(torch.as_tensor(
                    policy.position_probability(obs, slate)).double().numpy())
            if has_prefix:
                prefix.append(torch.as_tensor(
                    policy.prefix_probability(obs, slate)).double().numpy())
    why = ("" if has_position and has_prefix else
           f"{type(policy).__name__} gives whole-slate probabilities only (no "
           "position_probability / prefix_probability methods): iips, pi and rips need them")
    empty = np.zeros(slates.shape)
    return SlateProbabilities(
        slate=np.concatenate(slate_p) if slate_p else np.zeros(0),
        position=(np.concatenate(position) if position else empty) if has_position else None,
        prefix=(np.concatenate(prefix) if prefix else empty) if has_prefix else None,
        why_not=why)


def falling_factorial(n: int, k: int) -> float:
    """``n (n-1) ... (n-k+1)``: the number of ordered ``k``-slates of distinct items."""
    return float(math.perm(n, k))


def sample_target_slates(policy, observation: dict[str, np.ndarray], samples: int
                         ) -> list[np.ndarray]:
    """``samples`` draws of ``policy.act`` on every logged observation (one if deterministic)."""
    draws = 1 if is_deterministic(policy) else samples
    return [act_on_logs(policy, observation) for _ in range(draws)]


def as_tensor_observation(observation: dict[str, np.ndarray]) -> dict[str, Tensor]:
    """Numpy observations to torch tensors (no copy)."""
    return {key: torch.from_numpy(np.ascontiguousarray(v)) for key, v in observation.items()}

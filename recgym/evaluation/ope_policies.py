"""Target and logging policies on logged data: rebuilt observations and action probabilities.

Off-policy estimators ask two questions of a policy at every logged page view: what did
it see (the observation the env would have given it), and how likely was it to show the
logged slate, as a whole, at each position, and as a top-``j`` prefix. This module
answers both for every recgym :class:`~recgym.core.policy.Policy`:

* :func:`observations_from_logs` rebuilds the observation of each logged row exactly as
  :meth:`recgym.envs.synthetic_mdp.SyntheticMDP.observe` produced it: ``clicks`` = the
  last ``history_length`` clicked items of the session before this step, oldest first,
  padded with ``num_items``; ``true_state`` copied from the log when it is there.
* :func:`policy_probabilities` returns :class:`SlateProbabilities` from what the policy
  declares (see :mod:`recgym.core.policy`): deterministic policies get indicators of
  ``act``; policies with ``slate_probabilities`` give their own closed forms (the uniform
  random policy, pi_mix of IRecGAN sec. 7.1, sampling stable-baselines3 ``MultiDiscrete``
  models); any other policy may define ``slate_probability`` (and optionally
  ``position_probability`` and ``prefix_probability``). A policy that can give none of
  these raises :class:`TargetProbabilityError`, which says which estimators remain usable.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from recgym.core.policy import SlateProbabilities, TargetProbabilityError

__all__ = ["SlateProbabilities", "TargetProbabilityError", "act_on_logs", "as_tensor_observation",
           "falling_factorial", "is_deterministic", "observations_from_logs",
           "policy_probabilities", "sample_target_slates"]

CHUNK_ROWS = 65_536


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

    True for objects with a true ``deterministic`` attribute (pi_max,
    :class:`~recgym.core.policy.SB3Policy` acting greedily).
    """
    return bool(getattr(policy, "deterministic", False))


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
    slates = np.asarray(slates, dtype=np.int64)
    if slates.ndim != 2:
        raise ValueError(f"slates must be (rows, k), got shape {slates.shape}")
    if deterministic is None:
        deterministic = is_deterministic(policy)
    if deterministic:
        return _indicator_probabilities(policy, observation, slates)
    if hasattr(policy, "slate_probabilities"):
        return policy.slate_probabilities(observation, slates)
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

"""Target and logging policies on logged data: rebuilt observations and action probabilities.

Off-policy estimators ask two questions of a policy at every logged page view: what did
it see (the observation the env would have given it), and how likely was it to show the
logged slate, as a whole, at each position, and as a top-``j`` prefix. This module
answers both for every recgym :class:`~recgym.core.policy.Policy`:

* :func:`observations_from_logs` rebuilds the observation of each logged row exactly as
  :meth:`recgym.envs.synthetic_mdp.SyntheticMDP.observe` produced it: ``clicks`` = the
  last ``history_length`` clicked items of the session before this step, oldest first,
  padded with ``num_items``; ``true_state`` copied from the log when it is there. A policy
  that declares ``observation_spaces`` (an SB3 model) gets those keys instead, RecSimu's
  ``recent_items`` / ``feedback`` window included (:func:`shown_windows_from_logs`).
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

__all__ = ["REBUILDABLE_KEYS", "SlateProbabilities", "TargetProbabilityError", "act_on_logs",
           "as_policy", "as_tensor_observation", "falling_factorial", "is_deterministic",
           "is_sb3_model", "observation_spaces_of", "observations_from_logs",
           "policy_probabilities", "sample_target_slates", "shown_windows_from_logs"]

CHUNK_ROWS = 65_536


def _sorted_order(session: np.ndarray, step: np.ndarray) -> np.ndarray:
    return np.lexsort((step, session))


def observations_from_logs(logs: pd.DataFrame, num_items: int, history_length: int = 10, *,
                           spaces: dict | None = None) -> dict[str, np.ndarray]:
    """What the env showed the policy at each logged row, rebuilt from the log.

    Args:
        logs: DataFrame with ``session_id``, ``step``, ``slate`` and ``click`` (item id or
            -1), and optionally ``true_state`` and ``feedback``; any row order.
        num_items: catalogue size ``n`` (the padding id of an empty history slot).
        history_length: how many recent clicks the env observes.
        spaces: the single-user observation space of each key a policy reads (e.g.
            ``SB3Policy.observation_spaces``); None: ``clicks`` and, when logged,
            ``true_state``. Keys that can be rebuilt: ``clicks`` (length and padding id
            from its space), ``true_state`` (copied from the log), and RecSimu's
            ``recent_items`` / ``feedback`` (see :func:`shown_windows_from_logs`).

    Returns:
        ``{"clicks": int64 (rows, history_length)}`` (plus ``"true_state": int64 (rows,)``
        when the log has it), or one array per key of ``spaces``, aligned with the rows of
        ``logs``.

    Raises:
        ValueError: a key of ``spaces`` cannot be rebuilt from a log (the message names it).
    """
    if spaces is not None:
        return _observations_for_spaces(logs, spaces)
    if history_length < 1:
        raise ValueError(f"history_length must be >= 1, got {history_length}")
    observation = {"clicks": _click_history(logs, num_items, history_length)}
    if "true_state" in logs.columns:
        observation["true_state"] = logs["true_state"].to_numpy().astype(np.int64)
    return observation


def _session_layout(logs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Sorting order of the rows and, in sorted order, the first row of each row's session."""
    rows = len(logs)
    order = _sorted_order(logs["session_id"].to_numpy(), logs["step"].to_numpy())
    session = logs["session_id"].to_numpy()[order]
    starts = np.r_[True, session[1:] != session[:-1]] if rows else np.zeros(0, bool)
    session_start = np.maximum.accumulate(np.where(starts, np.arange(rows), 0)) if rows \
        else np.zeros(0, np.int64)
    return order, session_start


def _click_history(logs: pd.DataFrame, pad: int, history_length: int) -> np.ndarray:
    """Last ``history_length`` clicks of the session before each row, padded with ``pad``."""
    rows = len(logs)
    order, session_start = _session_layout(logs)
    click = logs["click"].to_numpy().astype(np.int64)[order]
    clicked = click >= 0
    # Clicks strictly before each row, counted over the whole sorted log; a session's
    # own clicks are those counted since its first row.
    before = np.cumsum(clicked) - clicked
    first = before[session_start]
    click_items = np.r_[click[clicked], pad]  # sentinel for padding
    slot = before[:, None] - history_length + np.arange(history_length)[None, :]
    valid = slot >= first[:, None]
    history = np.where(valid, click_items[np.where(valid, slot, len(click_items) - 1)], pad)
    out_clicks = np.empty((rows, history_length), np.int64)
    out_clicks[order] = history
    return out_clicks


def shown_windows_from_logs(logs: pd.DataFrame, state_length: int, num_feedback: int, *,
                            pad_item: int = 0, pad_feedback: int = 0
                            ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """RecSimu's observation at each logged row: the last shown items and their feedback.

    RecSimu-v0 appends every shown item to its window with that item's feedback class. From
    a log, the shown items are the slates of the session's earlier rows; the clicked item
    gets the row's ``feedback`` class (default 1) and the other items class 0. The env's
    start window (a logged state of its training data) is not in the log: slots before the
    session's first row hold ``pad_item`` with feedback ``pad_feedback``.

    Returns:
        ``{"recent_items": int64 (rows, N), "feedback": int64 (rows, N)}`` and a bool
        ``(rows,)`` mask of the rows whose window holds padding.
    """
    rows = len(logs)
    order, session_start = _session_layout(logs)
    slates = np.stack(logs["slate"].to_numpy()).astype(np.int64)[order] if rows \
        else np.zeros((0, 1), np.int64)
    k = slates.shape[1]
    click = logs["click"].to_numpy().astype(np.int64)[order]
    if "feedback" in logs.columns:
        positive = logs["feedback"].to_numpy().astype(np.int64)[order]
    else:
        positive = np.ones(rows, np.int64)
    positive = np.clip(positive, 0, num_feedback - 1)
    on_click = (slates == click[:, None]) & (click[:, None] >= 0)
    on_click &= np.cumsum(on_click, axis=1) == 1  # a repeated item is shown once
    feedback = np.where(on_click, positive[:, None], 0)
    items = np.r_[slates.reshape(-1), pad_item]
    classes = np.r_[feedback.reshape(-1), pad_feedback]
    before = np.arange(rows) * k
    first = before[session_start]
    slot = before[:, None] - state_length + np.arange(state_length)[None, :]
    valid = slot >= first[:, None]
    index = np.where(valid, slot, len(items) - 1)
    out = {"recent_items": np.empty((rows, state_length), np.int64),
           "feedback": np.empty((rows, state_length), np.int64)}
    out["recent_items"][order] = items[index]
    out["feedback"][order] = classes[index]
    padded = np.empty(rows, bool)
    padded[order] = ~valid.all(1) if rows else np.zeros(0, bool)
    return out, padded


REBUILDABLE_KEYS = ("clicks", "true_state", "recent_items", "feedback")
"""Observation keys :func:`observations_from_logs` can rebuild from a log."""


def _observations_for_spaces(logs: pd.DataFrame, spaces: dict) -> dict[str, np.ndarray]:
    unknown = [key for key in spaces if key not in REBUILDABLE_KEYS]
    if unknown:
        raise ValueError(f"observation key {unknown[0]!r} cannot be rebuilt from a log (it "
                         f"holds slates and clicks); keys that can: {list(REBUILDABLE_KEYS)}")
    observation: dict[str, np.ndarray] = {}
    for key, space in spaces.items():
        nvec = np.asarray(getattr(space, "nvec", [0])).reshape(-1)
        if key == "clicks":
            # the model's own "none yet" id is its largest value (n in 0 .. n)
            observation[key] = _click_history(logs, int(nvec.max()) - 1, int(nvec.size))
        elif key == "true_state":
            if "true_state" not in logs.columns:
                raise ValueError("the policy observes true_state but the log has no "
                                 "true_state column")
            observation[key] = logs["true_state"].to_numpy().astype(np.int64)
    if "recent_items" in spaces or "feedback" in spaces:
        space = spaces.get("recent_items", spaces.get("feedback"))
        length = int(np.prod(space.shape))
        feedback_space = spaces.get("feedback")
        classes = int(np.max(feedback_space.nvec)) if feedback_space is not None else 2
        windows, _ = shown_windows_from_logs(logs, length, classes)
        observation.update({key: windows[key] for key in ("recent_items", "feedback")
                            if key in spaces})
    return observation


def observation_spaces_of(policy) -> dict | None:
    """The observation spaces a policy declares it reads (``observation_spaces``), or None."""
    spaces = getattr(policy, "observation_spaces", None)
    if callable(spaces):
        spaces = spaces()
    return dict(spaces) if spaces else None


def is_sb3_model(candidate) -> bool:
    """A stable-baselines3 model (``BaseAlgorithm``), by what it has, not by import."""
    return all(hasattr(candidate, name) for name in
               ("predict", "policy", "observation_space", "action_space")) \
        and not hasattr(candidate, "act")


def as_policy(policy, *, slate_size: int | None = None, deterministic: bool | None = None):
    """A recgym Policy for ``policy``: itself, or a stable-baselines3 model wrapped.

    A raw SB3 model (``PPO.load(path)`` or one that has just learned) becomes
    :meth:`SB3Policy.from_model <recgym.core.policy.SB3Policy.from_model>`, greedy unless
    ``deterministic=False``; its observation keys and spaces come from the model.

    Raises:
        TypeError: neither a Policy (``act``) nor an SB3 model.
    """
    if hasattr(policy, "act"):
        return policy
    if is_sb3_model(policy):
        from recgym.core.policy import SB3Policy

        action = policy.action_space
        size = None if hasattr(action, "nvec") or hasattr(action, "n") else slate_size
        return SB3Policy.from_model(policy, slate_size=size,
                                    deterministic=deterministic is not False)
    raise TypeError(f"a policy must have act(observation) -> slates (a recgym Policy) or be "
                    f"a stable-baselines3 model; got {type(policy).__name__}")


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

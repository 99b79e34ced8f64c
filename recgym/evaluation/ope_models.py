"""Models fitted on logs for off-policy evaluation: reward models and a count-based simulator.

* :class:`ItemClickModel` is the direct method's default reward model: the click rate of
  each item in each context (a discrete log column, e.g. the synthetic MDP's
  ``true_state``), shrunk towards the item's overall rate, and a slate's expected reward
  is the sum of its distinct items' rates (capped at 1: a page has one click at most).
  It ignores how a slate's items compete for the click, which is exactly the kind of
  model error that biases DM when the target shows slates unlike the logged ones.
* :class:`SyntheticRewardModel` is the exact expected reward of the synthetic MDP
  (``sum r(a|s)^2 / sum r(a|s)`` over the slate's distinct items): the "perfect reward
  model" of the unbiasedness checks.
* :class:`CountClickSimulator` is a tabular user simulator fitted by counting: the same
  click rates, transitions ``P(s' | s, clicked item)`` and session continuation rates.
  The ``sim`` estimator rolls a target policy out in it (or in any ``UserSimulator`` a
  user passes, such as a learned simulator) and reports the roll-out's clicks per page
  view.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from recgym.core.simulator import Randomness, State, Step
from recgym.data.slates import first_occurrence


def contexts_from_logs(logs: pd.DataFrame, column: str | None) -> tuple[np.ndarray, int]:
    """Integer context of each row (``column`` codes) and the number of contexts.

    A non-negative integer column is used as is (so ``true_state`` codes stay states);
    anything else is factorised. No column (None, or absent): one context for all rows.
    """
    if column is None or column not in logs.columns:
        return np.zeros(len(logs), np.int64), 1
    values = logs[column].to_numpy()
    if np.issubdtype(values.dtype, np.integer) and (len(values) == 0 or values.min() >= 0):
        values = values.astype(np.int64)
        return values, int(values.max()) + 1 if len(values) else 1
    codes, uniques = pd.factorize(logs[column])
    return codes.astype(np.int64), max(len(uniques), 1)


@dataclass
class ItemClickModel:
    """Per (context, item) click rates, fitted by counting; slate value = sum of rates.

    Attributes:
        rates: float64 ``(num_contexts, num_items)``, smoothed click rate of an item when
            shown in a context.
    """

    rates: np.ndarray

    @classmethod
    def fit(cls, contexts: np.ndarray, slates: np.ndarray, position_reward: np.ndarray,
            num_contexts: int, num_items: int, *, prior_strength: float = 1.0,
            weights: np.ndarray | None = None,
            first: np.ndarray | None = None) -> ItemClickModel:
        """Count shows and rewards of every (context, item).

        Args:
            contexts: int ``(n,)`` in ``[0, num_contexts)``.
            slates: int ``(n, k)`` item ids.
            position_reward: float ``(n, k)``, reward credited to each position.
            num_contexts: number of contexts.
            num_items: catalogue size.
            prior_strength: pseudo-shows at the item's overall rate (shrinkage).
            weights: float ``(n,)`` row weights (bootstrap counts), default ones.
            first: ``first_occurrence(slates)`` if already computed.
        """
        n, k = slates.shape
        row_weight = np.ones(n) if weights is None else np.asarray(weights, np.float64)
        first = first_occurrence(slates) if first is None else first
        shown = first * row_weight[:, None]
        cell = (contexts[:, None] * num_items + slates).ravel()
        size = num_contexts * num_items
        shows = np.bincount(cell, weights=shown.ravel(), minlength=size).reshape(
            num_contexts, num_items)
        clicks = np.bincount(cell, weights=(position_reward * row_weight[:, None]).ravel(),
                             minlength=size).reshape(num_contexts, num_items)
        overall = clicks.sum() / max(shows.sum(), 1e-12)
        item_rate = (clicks.sum(0) + prior_strength * overall) / (shows.sum(0) + prior_strength)
        rates = (clicks + prior_strength * item_rate[None, :]) / (shows + prior_strength)
        return cls(np.clip(rates, 0.0, 1.0))

    def predict(self, contexts: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """Expected reward of each slate, float64 ``(n,)``."""
        values = self.rates[contexts[:, None], slates] * first_occurrence(slates)
        return np.minimum(values.sum(1), 1.0)


@dataclass
class SyntheticRewardModel:
    """The synthetic MDP's exact expected click of a slate in a state (context = true state).

    Attributes:
        rewards: float64 ``(m, n)``, the world's ``r(item | state)``.
    """

    rewards: np.ndarray

    @classmethod
    def from_world(cls, world) -> SyntheticRewardModel:
        """From a :class:`~recgym.envs.synthetic_mdp.SyntheticWorld`."""
        return cls(world.rewards.double().numpy())

    def predict(self, contexts: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """``sum r^2 / sum r`` over each slate's distinct items, float64 ``(n,)``."""
        r = self.rewards[contexts[:, None], slates] * first_occurrence(slates)
        total = r.sum(1)
        return np.divide((r * r).sum(1), total, out=np.zeros_like(total), where=total > 0)


class CountClickSimulator:
    """A tabular user simulator fitted by counting on logs (implements ``UserSimulator``).

    State: the context (``true_state`` in synthetic logs; one context if the log has
    none) and the click history. A step credits each distinct shown item with its
    fitted click rate, draws at most one click, moves to ``s' ~ P(. | s, clicked item)``
    after a click, and ends the session with the fitted probability of no further page
    view after a click / a no-click in ``s``.

    Per-item rates are marginal rates of the logged slates: a slate of items that each
    did well in the logs can sum above 1. The page's click probability is then capped at
    ``max_click``, the click rate the logs show on their page views of highest predicted
    total (:meth:`fit`), and the items share it in proportion to their rates. Rescaling
    to a certain click (``max_click = 1``) would make a session under such a slate never
    end, and the simulator's value of good policies unbounded.

    Args:
        rates: float64 ``(m, n)`` click rates.
        transition: float64 ``(m, n, m)``, ``P(s' | s, item)``.
        start: float64 ``(m,)``, distribution of the first context.
        continue_prob: float64 ``(m, 2)``, probability of another page view after a
            no-click (column 0) or a click (column 1).
        slate_size: ``k``.
        history_length: clicks observed.
        max_click: highest click probability of a page, in (0, 1].
    """

    def __init__(self, rates: np.ndarray, transition: np.ndarray, start: np.ndarray,
                 continue_prob: np.ndarray, slate_size: int, history_length: int = 10,
                 max_click: float = 1.0) -> None:
        if not 0.0 < max_click <= 1.0:
            raise ValueError(f"max_click must be in (0, 1], got {max_click}")
        self.num_states, self.num_items = rates.shape
        self.slate_size = slate_size
        self.history_length = history_length
        self.rates = torch.as_tensor(rates, dtype=torch.float64)
        self.cumulative_transition = torch.as_tensor(transition, dtype=torch.float64).cumsum(-1)
        self.cumulative_transition = self.cumulative_transition.reshape(-1, self.num_states)
        self.cumulative_start = torch.as_tensor(start, dtype=torch.float64).cumsum(0)
        self.continue_prob = torch.as_tensor(continue_prob, dtype=torch.float64)
        self.max_click = float(max_click)

    @classmethod
    def fit(cls, logs: pd.DataFrame, num_items: int, *, context_column: str | None = "true_state",
            history_length: int = 10, prior_strength: float = 1.0,
            session_weights: dict | None = None,
            ceiling_quantile: float = 0.9) -> CountClickSimulator:
        """Count click rates, transitions, starts and continuations in ``logs``.

        ``max_click`` is the (weighted) click rate of the logged page views whose rates
        sum at or above their ``ceiling_quantile`` quantile: what the logs say the best
        pages they show achieve.

        Args:
            logs: a log with ``session_id``, ``step``, ``slate``, ``click`` (and ``reward``).
            num_items: catalogue size.
            context_column: integer state column (None: a single context).
            history_length: clicks the simulated users expose.
            prior_strength: shrinkage pseudo-counts.
            session_weights: ``{session_id: weight}`` (bootstrap), default all 1.
            ceiling_quantile: which page views set ``max_click`` (the top 10% by default).
        """
        logs = logs.sort_values(["session_id", "step"], kind="stable")
        contexts, m = contexts_from_logs(logs, context_column)
        slates = np.stack(logs["slate"].to_numpy()).astype(np.int64)
        click = logs["click"].to_numpy().astype(np.int64)
        session = logs["session_id"].to_numpy()
        weight = (np.ones(len(logs)) if session_weights is None else
                  pd.Series(session).map(session_weights).fillna(0).to_numpy(np.float64))
        position_reward = (slates == click[:, None]) & (click[:, None] >= 0)
        position_reward = (position_reward & first_occurrence(slates)).astype(np.float64)
        rates = ItemClickModel.fit(contexts, slates, position_reward, m, num_items,
                                   prior_strength=prior_strength, weights=weight).rates
        totals = (rates[contexts[:, None], slates] * first_occurrence(slates)).sum(1)
        top = (totals >= np.quantile(totals, ceiling_quantile)) if len(totals) else totals > 0
        max_click = ((weight[top] * (click[top] >= 0)).sum() + 0.5) / (weight[top].sum() + 1.0)
        same_next = np.r_[session[1:] == session[:-1], False]
        clicked = click >= 0
        from_click = same_next & clicked
        src = contexts[from_click] * num_items + click[from_click]
        dst = contexts[np.flatnonzero(from_click) + 1]
        w = weight[from_click]
        counts = np.bincount(src * m + dst, weights=w, minlength=m * num_items * m).reshape(
            m, num_items, m)
        by_state = counts.sum(1) + 1.0 / m  # backoff P(s' | s), never empty
        by_state /= by_state.sum(1, keepdims=True)
        transition = (counts + prior_strength * by_state[:, None, :]) / (
            counts.sum(2, keepdims=True) + prior_strength)
        first_rows = np.r_[True, session[1:] != session[:-1]] if len(session) else np.zeros(0, bool)
        start = np.bincount(contexts[first_rows], weights=weight[first_rows], minlength=m)
        start = start / start.sum() if start.sum() > 0 else np.full(m, 1.0 / m)
        key = contexts * 2 + clicked
        total = np.bincount(key, weights=weight, minlength=2 * m).reshape(m, 2)
        more = np.bincount(key, weights=weight * same_next, minlength=2 * m).reshape(m, 2)
        overall = (more.sum(0) + 0.5) / (total.sum(0) + 1.0)
        continue_prob = (more + prior_strength * overall[None, :]) / (total + prior_strength)
        return cls(rates, transition, start, continue_prob, slates.shape[1], history_length,
                   max_click=float(max_click))

    @property
    def no_click(self) -> int:
        """Padding id of an empty history slot."""
        return self.num_items

    def reset(self, batch_size: int, rng: Randomness) -> State:
        """Draw each session's first context."""
        u = rng.uniform(1).double()
        state = torch.searchsorted(self.cumulative_start, u.contiguous(), right=True).squeeze(1)
        return {"state": state.clamp(max=self.num_states - 1),
                "history": torch.full((batch_size, self.history_length), self.no_click,
                                      dtype=torch.int64)}

    def click_probabilities(self, contexts: Tensor, slate: Tensor) -> Tensor:
        """``P(click slate[j])`` for each position in each context, float64 ``(B, k)``.

        Repeated items count once; the page's total is capped at ``max_click``.
        """
        first = torch.from_numpy(first_occurrence(slate.cpu().numpy()))
        rate = self.rates[contexts[:, None], slate] * first
        total = rate.sum(1, keepdim=True)
        return torch.where(total > self.max_click, rate * (self.max_click / total), rate)

    def step(self, state: State, slate: Tensor, rng: Randomness) -> Step:
        """At most one click by the fitted rates, then transition and continuation."""
        current, history = state["state"], state["history"]
        rate = self.click_probabilities(current, slate)
        u = rng.uniform(3).double()
        position = torch.searchsorted(rate.cumsum(1), u[:, :1].contiguous(), right=True)
        position = position.squeeze(1)
        success = position < self.slate_size
        item = slate.gather(1, position.clamp(max=self.slate_size - 1)[:, None]).squeeze(1)
        rows = self.cumulative_transition.index_select(0, current * self.num_items + item)
        next_state = torch.searchsorted(rows, u[:, 1:2].contiguous(), right=True).squeeze(1)
        next_state = next_state.clamp(max=self.num_states - 1)
        keep_going = u[:, 2] < self.continue_prob[current, success.long()]
        next_history = torch.cat([history[:, 1:], item[:, None]], dim=1)
        return Step(
            state={"state": torch.where(success, next_state, current),
                   "history": torch.where(success[:, None], next_history, history)},
            reward=success.to(torch.float32),
            clicked=torch.where(success, item, -1),
            terminated=~keep_going,
        )

    def observe(self, state: State) -> dict[str, Tensor]:
        """Recent clicks and the (fitted) context, under the synthetic MDP's keys."""
        return {"clicks": state["history"], "true_state": state["state"]}

    def observation_spaces(self) -> dict[str, gym.Space]:
        """Single-user spaces of the observation keys (those of the synthetic MDP)."""
        from recgym.simulators.synthetic_mdp import observation_spaces

        return observation_spaces(self.history_length, self.num_items, self.num_states)

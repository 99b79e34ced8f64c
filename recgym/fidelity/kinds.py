"""Simulator kinds: fit a user simulator on any log in the schema, by name.

A kind is a factory ``fit(logs, info, **options) -> UserSimulator``; ``info`` is a
:class:`~recgym.fidelity.worlds.WorldInfo` (catalogue and slate size, nothing of the
truth). Every fitted simulator here also implements ``page_view_probabilities(logs)``:
the probability of each held-out page view's outcome given the session so far (the
click on each slate position, then none), for calibration and likelihood.

| kind | what it is | reads ``true_state`` |
|---|---|---|
| ``irecgan`` | IRecGAN's user model U (LSTM, eq. 1-3), fitted as ``recgym fit irecgan-user`` | no |
| ``count`` | the OPE count simulator, one context: per-item click rates, capped page click | no |
| ``count-privileged`` | the OPE count simulator with the hidden state as its context | yes |
| ``item-rate`` | per-item click rates as choice weights beside a fitted no-click weight | no |
| ``logistic`` | conditional-logit click on item + last click, constant continuation | no |
| ``choice-continuation`` | latent-state choice model + separate continuation model | no |
| ``gan-user-pw``, ``-lstm`` | GAN user model (position weights / LSTM), ``fit gan-user`` | no |
| ``recsimu`` | RecSimu's discriminator judging each shown item, Algorithm 1 | no |

The paper kinds (``gan-user-*``, ``recsimu``: :mod:`recgym.fidelity.paper_kinds`) model
what is clicked, not when a user leaves: they end a session at a page without a click.

``count-privileged`` is a reference, not a deployable simulator: real logs have no
hidden state. The others see what a recommender sees: slates, clicks and their order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from recgym.core.policy import repeated_positions
from recgym.core.simulator import State, UserSimulator
from recgym.data.slates import first_occurrence, logged_slates, outcomes, sorted_logs
from recgym.evaluation.ope_models import CountClickSimulator, ItemClickModel
from recgym.fidelity.history import (
    HistoryUsers,
    NoClickEndsUsers,
    continuation_after_click,
    last_clicks,
)
from recgym.fidelity.worlds import WorldInfo
from recgym.simulators import choice_continuation
from recgym.simulators.irecgan import IRecGANUsers
from recgym.simulators.synthetic_mdp import SyntheticMDP

LOG_COLUMNS = ("session_id", "step", "slate", "click")
REQUIRED_COLUMNS = {
    "irecgan": LOG_COLUMNS,
    "count": LOG_COLUMNS,
    "count-privileged": (*LOG_COLUMNS, "true_state"),
    "item-rate": LOG_COLUMNS,
    "logistic": LOG_COLUMNS,
    "choice-continuation": LOG_COLUMNS,
    "gan-user-pw": LOG_COLUMNS,
    "gan-user-lstm": LOG_COLUMNS,
    "recsimu": LOG_COLUMNS,
}
PRIVILEGED_KINDS = ("count-privileged",)


def true_page_view_probabilities(world: SyntheticMDP, logs: pd.DataFrame) -> np.ndarray:
    """The world's exact outcome probabilities of logged page views (reads ``true_state``)."""
    state = {"state": torch.from_numpy(logs["true_state"].to_numpy(np.int64).copy())}
    clicks = world.click_probabilities(state, torch.as_tensor(logged_slates(logs))).double().numpy()
    return np.concatenate([clicks, 1.0 - clicks.sum(1, keepdims=True)], axis=1)


class ItemRateUsers(NoClickEndsUsers):
    """Per-item click rates as choice weights, beside a no-click weight fitted on the logs.

    ``P(click a | slate) = c_a / (w_0 + sum_{b in slate} c_b)``, where ``c_a`` is the
    item's click rate when shown (smoothed counts) and ``w_0`` the one number for which the
    predicted no-click share of the logged pages equals the observed one. No click ends
    the session (the logs' structure); after a click the session goes on with the logged
    share of clicked pages that had a next page.

    Attributes:
        rates: float64 ``(n,)``.
        no_click_weight: ``w_0``.
        continue_after_click: constant.
    """

    def __init__(self, rates: np.ndarray, no_click_weight: float, continue_after_click: float,
                 slate_size: int, history_length: int) -> None:
        super().__init__(len(rates), slate_size, history_length)
        self.rates = torch.as_tensor(rates, dtype=torch.float64)
        self.no_click_weight = float(no_click_weight)
        self.continue_after_click = float(continue_after_click)

    @classmethod
    def fit(cls, logs: pd.DataFrame, info: WorldInfo, *, prior_strength: float = 1.0
            ) -> ItemRateUsers:
        """Count rates, solve for ``w_0`` (bisection on its log), count continuations."""
        logs = sorted_logs(logs)
        slates = logged_slates(logs)
        first = first_occurrence(slates)
        outcome = outcomes(logs)
        position_reward = (np.arange(slates.shape[1])[None, :] == outcome[:, None]) * 1.0
        rates = ItemClickModel.fit(np.zeros(len(logs), np.int64), slates, position_reward, 1,
                                   info.num_items, prior_strength=prior_strength,
                                   first=first).rates[0]
        page_total = (rates[slates] * first).sum(1)
        no_click_share = float((outcome == slates.shape[1]).mean())
        low, high = -20.0, 20.0
        for _ in range(100):
            middle = (low + high) / 2
            w0 = np.exp(middle)
            low, high = ((middle, high) if (w0 / (w0 + page_total)).mean() < no_click_share
                         else (low, middle))
        return cls(rates, float(np.exp((low + high) / 2)), continuation_after_click(logs),
                   info.slate_size, info.history_length)

    def outcome_probabilities(self, last_click: Tensor, slate: Tensor) -> Tensor:
        """Choice among the distinct shown items and the no-click option."""
        weight = self.rates[slate].masked_fill(repeated_positions(slate), 0.0)
        weight = torch.cat([weight, torch.full_like(weight[:, :1], self.no_click_weight)], 1)
        return weight / weight.sum(1, keepdim=True)


class LogisticUsers(HistoryUsers):
    """A conditional-logit click model with a constant continuation rate.

    ``P(click a | slate, last click l) = exp(z_a) / (1 + sum_b exp(z_b))`` with
    ``z_a = bias_a + pair_{l, a}`` (no click has logit 0), fitted by maximum likelihood
    with an L2 penalty on the pair terms. The session goes on after any page with one
    constant probability, the logged share of pages that had a next page: the model
    knows what is clicked, not that a no-click ends a session.

    Attributes:
        bias: float64 ``(n,)``.
        pair: float64 ``(n + 1, n)``; row ``n``: no click yet.
        continue_rate: constant.
    """

    def __init__(self, bias: Tensor, pair: Tensor, continue_rate: float, slate_size: int,
                 history_length: int) -> None:
        super().__init__(len(bias), slate_size, history_length)
        self.bias = bias.double()
        self.pair = pair.double()
        self.continue_rate = float(continue_rate)

    @classmethod
    def fit(cls, logs: pd.DataFrame, info: WorldInfo, *, l2: float = 1e-3,
            max_iter: int = 200) -> LogisticUsers:
        """L-BFGS on the mean negative log-likelihood of the page views' outcomes."""
        logs = sorted_logs(logs)
        n = info.num_items
        slates = torch.as_tensor(logged_slates(logs))
        outcome = torch.as_tensor(outcomes(logs))
        last = torch.as_tensor(last_clicks(logs, n))
        repeated = repeated_positions(slates)
        bias = torch.zeros(n, dtype=torch.float64, requires_grad=True)
        pair = torch.zeros(n + 1, n, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([bias, pair], max_iter=max_iter,
                                      line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            optimizer.zero_grad()
            logits = (bias[slates] + pair[last[:, None], slates]).masked_fill(repeated, -1e9)
            logits = torch.cat([logits, torch.zeros_like(logits[:, :1])], 1)
            loss = torch.nn.functional.cross_entropy(logits, outcome) + l2 * pair.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        session = logs["session_id"].to_numpy()
        has_next = np.r_[session[1:] == session[:-1], False]
        continue_rate = (has_next.sum() + 0.5) / (len(has_next) + 1.0)
        return cls(bias.detach(), pair.detach(), continue_rate, info.slate_size,
                   info.history_length)

    def outcome_probabilities(self, last_click: Tensor, slate: Tensor) -> Tensor:
        """Softmax over the distinct shown items' logits and the no-click logit 0."""
        logits = self.bias[slate] + self.pair[last_click[:, None], slate]
        logits = logits.masked_fill(repeated_positions(slate), -float("inf"))
        return torch.softmax(torch.cat([logits, torch.zeros_like(logits[:, :1])], 1), dim=1)

    def continue_probability(self, clicked: Tensor) -> Tensor:
        """The same rate whatever the outcome."""
        return torch.full(clicked.shape, self.continue_rate, dtype=torch.float64)


class CountUsers(CountClickSimulator):
    """The OPE count simulator, with held-out outcome probabilities.

    With ``context_column = None`` it has one context and exposes only ``clicks``; with
    ``"true_state"`` it is the privileged reference (its context is the hidden state).
    """

    context_column: str | None = None

    def page_view_probabilities(self, logs: pd.DataFrame) -> np.ndarray:
        """Capped click rates of each logged page's items in its context, then no click."""
        contexts = (np.zeros(len(logs), np.int64) if self.context_column is None
                    else logs[self.context_column].to_numpy(np.int64))
        contexts = np.clip(contexts, 0, self.num_states - 1)
        clicks = self.click_probabilities(torch.as_tensor(contexts),
                                          torch.as_tensor(logged_slates(logs))).numpy()
        return np.concatenate([clicks, 1.0 - clicks.sum(1, keepdims=True)], axis=1)

    def observe(self, state: State) -> dict[str, Tensor]:
        """Recent clicks, plus the context when it is the (privileged) hidden state."""
        if self.context_column is None:
            return {"clicks": state["history"]}
        return super().observe(state)

    def observation_spaces(self) -> dict[str, gym.Space]:
        """Single-user spaces of the observed keys."""
        spaces = super().observation_spaces()
        return spaces if self.context_column is not None else {"clicks": spaces["clicks"]}


class IRecGANKindUsers(IRecGANUsers):
    """Users of a fitted IRecGAN U, with held-out outcome probabilities."""

    @torch.no_grad()
    def page_view_probabilities(self, logs: pd.DataFrame, batch_size: int = 256) -> np.ndarray:
        """Eq. 1 softmax of each logged page, the RNN fed the session's clicks so far."""
        from recgym.simulators.irecgan.fit import SessionTensors

        data = SessionTensors.from_logs(logs)
        model, parts = self.model, []
        for index in torch.arange(len(data.lengths)).split(batch_size):
            part = data.subset(index)
            previous = torch.cat([torch.full_like(part.clicked[:, :1], model.start_token),
                                  part.clicked[:, :-1]], dim=1)
            states, _ = model.states(previous.to(self.device))
            logits = model.click_logits(states, part.slates.to(self.device))
            parts.append(torch.softmax(logits, -1)[part.mask.to(self.device)].double().cpu())
        return torch.cat(parts).numpy()


def fit_irecgan(logs: pd.DataFrame, info: WorldInfo, *, hidden_size: int = 256,
                embedding_dim: int = 50, num_layers: int = 2, epochs: int = 10,
                batch_size: int = 64, progress: bool = False) -> IRecGANKindUsers:
    """U by maximum likelihood (eq. 3), as ``recgym fit irecgan-user`` does.

    The defaults are the shipped ``IRecGAN-v0`` user's (hidden 256, 10 epochs, the epoch
    of best held-out likelihood kept); only the log schema columns reach the fit.
    """
    from recgym.data import LogDataset
    from recgym.simulators.irecgan.fit import UserModelTraining, fit_user_model
    from recgym.simulators.irecgan.model import UserModelConfig

    columns = [c for c in (*LOG_COLUMNS, "reward") if c in logs.columns]
    dataset = LogDataset(logs[columns], num_items=info.num_items)
    config = UserModelConfig(num_items=info.num_items, embedding_dim=embedding_dim,
                             hidden_size=hidden_size, num_layers=num_layers)
    training = UserModelTraining(epochs=epochs, batch_size=batch_size, seed=info.seed)
    result = fit_user_model(dataset, config=config, training=training, progress=progress)
    return IRecGANKindUsers(result.model, slate_size=info.slate_size,
                            history_length=info.history_length)


def _fit_count(logs: pd.DataFrame, info: WorldInfo, context_column: str | None,
               prior_strength: float) -> CountUsers:
    simulator = CountUsers.fit(logs, info.num_items, context_column=context_column,
                               history_length=info.history_length,
                               prior_strength=prior_strength)
    simulator.context_column = context_column
    return simulator


def fit_count(logs: pd.DataFrame, info: WorldInfo, *, prior_strength: float = 1.0) -> CountUsers:
    """The OPE count simulator with a single context (reads no hidden state)."""
    return _fit_count(logs, info, None, prior_strength)


def fit_count_privileged(logs: pd.DataFrame, info: WorldInfo, *,
                         prior_strength: float = 1.0) -> CountUsers:
    """The OPE count simulator on the hidden state (privileged reference)."""
    return _fit_count(logs, info, "true_state", prior_strength)


def fit_choice_continuation(logs: pd.DataFrame, info: WorldInfo, **options
                            ) -> UserSimulator:
    """The choice-continuation users fitted on ``logs``.

    ``options``: fields of :class:`~recgym.simulators.choice_continuation.ChoiceContinuationConfig`.
    """
    return choice_continuation.fit_choice_continuation(
        logs, info.num_items, info.slate_size, history_length=info.history_length,
        seed=info.seed, config=choice_continuation.ChoiceContinuationConfig(**options))


def fit_item_rate(logs: pd.DataFrame, info: WorldInfo, *,
                  prior_strength: float = 1.0) -> ItemRateUsers:
    """:class:`ItemRateUsers` fitted on ``logs``."""
    return ItemRateUsers.fit(logs, info, prior_strength=prior_strength)


def fit_logistic(logs: pd.DataFrame, info: WorldInfo, *, l2: float = 1e-3,
                 max_iter: int = 200) -> LogisticUsers:
    """:class:`LogisticUsers` fitted on ``logs``."""
    return LogisticUsers.fit(logs, info, l2=l2, max_iter=max_iter)


def fit_gan_user_pw(logs: pd.DataFrame, info: WorldInfo, **options) -> UserSimulator:
    """GAN-PW: :func:`recgym.fidelity.paper_kinds.fit_gan_user_kind` (options passed on)."""
    from recgym.fidelity.paper_kinds import fit_gan_user_kind

    return fit_gan_user_kind(logs, info, state="pw", **options)


def fit_gan_user_lstm(logs: pd.DataFrame, info: WorldInfo, **options) -> UserSimulator:
    """GAN-LSTM: :func:`recgym.fidelity.paper_kinds.fit_gan_user_kind` (options passed on)."""
    from recgym.fidelity.paper_kinds import fit_gan_user_kind

    return fit_gan_user_kind(logs, info, state="lstm", **options)


def fit_recsimu(logs: pd.DataFrame, info: WorldInfo, **options) -> UserSimulator:
    """:func:`recgym.fidelity.paper_kinds.fit_recsimu_kind` (options passed on)."""
    from recgym.fidelity.paper_kinds import fit_recsimu_kind

    return fit_recsimu_kind(logs, info, **options)


KINDS: dict[str, Callable[..., UserSimulator]] = {
    "irecgan": fit_irecgan,
    "count": fit_count,
    "count-privileged": fit_count_privileged,
    "item-rate": fit_item_rate,
    "logistic": fit_logistic,
    "choice-continuation": fit_choice_continuation,
    "gan-user-pw": fit_gan_user_pw,
    "gan-user-lstm": fit_gan_user_lstm,
    "recsimu": fit_recsimu,
}


def check_logs(kind: str, logs: pd.DataFrame, info: WorldInfo) -> None:
    """Raise ``ValueError`` naming what a kind cannot fit on in ``logs``."""
    if kind not in KINDS:
        raise ValueError(f"unknown simulator kind {kind!r}; choose one of {tuple(KINDS)}")
    if not isinstance(logs, pd.DataFrame) or len(logs) == 0:
        raise ValueError(f"kind {kind!r} needs a non-empty log DataFrame, got "
                         f"{type(logs).__name__}")
    missing = [c for c in REQUIRED_COLUMNS[kind] if c not in logs.columns]
    if missing:
        raise ValueError(f"kind {kind!r} needs log columns {list(REQUIRED_COLUMNS[kind])}; "
                         f"the log lacks {missing}")
    width = {len(s) for s in logs["slate"].head(1000)}
    if width != {info.slate_size}:
        raise ValueError(f"kind {kind!r}: the log's slates hold {sorted(width)} items, the world "
                         f"shows slate_size={info.slate_size}")


def get_kind(name: str, **options) -> Callable[[pd.DataFrame, WorldInfo], UserSimulator]:
    """The factory ``fit(logs, info)`` of a kind, with ``options`` bound (e.g. ``epochs=1``)."""
    if name not in KINDS:
        raise ValueError(f"unknown simulator kind {name!r}; choose one of {tuple(KINDS)}")
    fit = functools.partial(KINDS[name], **options)
    fit.kind = name  # type: ignore[attr-defined]
    return fit

"""The choice-continuation model: its probabilities and the likelihood of logged sessions.

Plain torch: :func:`log_choice` and :func:`continue_logit` are the page outcome and
continuation probabilities in every latent state, shared by the fit and the simulation
(:mod:`~recgym.simulators.choice_continuation.users`); :func:`forward` is the
log-likelihood of logged sessions (the forward algorithm over the latent paths), which the
fit maximises and the users' ``page_view_probabilities`` read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.nn import functional

from recgym.core.policy import repeated_positions
from recgym.data.slates import logged_slates, outcomes, sorted_logs

PARAMETER_NAMES = frozenset({"start", "attraction", "acceptance", "transition", "continue_type",
                             "continue_state", "continue_item"})
"""The fitted parameters the users need (the fit's optional ``logging`` is not kept)."""


class LoggedSessions:
    """Logged sessions as page tensors ordered for the forward pass, split by step.

    Sessions are sorted by length, longest first, so at step ``t`` the sessions still
    running are the first ``len(rows[t])`` of them; every per-step tensor (``slates``,
    ``repeated``, ``outcome``, ``item``, ``has_next``) is built once, for every likelihood
    evaluation of the fit.
    """

    def __init__(self, logs: pd.DataFrame, num_items: int) -> None:
        logs = sorted_logs(logs)
        slates = logged_slates(logs)
        k = slates.shape[1]
        click = logs["click"].to_numpy(np.int64)
        outcome = outcomes(logs)
        codes, _ = pd.factorize(logs["session_id"].to_numpy())
        starts = np.r_[0, np.flatnonzero(np.diff(codes)) + 1]
        lengths = np.diff(np.r_[starts, len(codes)])
        has_next = np.r_[codes[1:] == codes[:-1], False]
        order = np.argsort(-lengths, kind="stable")
        running = [(lengths > t).sum() for t in range(lengths.max())]
        # page rows of step t, sessions in the sorted order (only the running ones)
        self.rows = [starts[order[:count]] + t for t, count in enumerate(running)]
        item = np.where(outcome < k, click, num_items)

        def by_step(values: np.ndarray) -> list[Tensor]:
            return [torch.as_tensor(values[rows]) for rows in self.rows]

        self.slates = by_step(slates)
        self.repeated = [repeated_positions(slate)[:, None, :] for slate in self.slates]
        self.outcome = by_step(outcome)
        self.item = by_step(item)
        self.has_next = by_step(has_next)
        self.num_pages = len(logs)
        self.any_no_click = bool((outcome == k).any())


def log_choice(p: dict[str, Tensor], slate: Tensor, repeated: Tensor | None = None) -> Tensor:
    """``log P(outcome | z, slate)`` for every latent state, float64 ``(B, K, k + 1)``.

    ``repeated``: ``repeated_positions(slate)[:, None]`` if already computed.
    """
    if repeated is None:
        repeated = repeated_positions(slate)[:, None, :]
    attraction = p["attraction"][:, slate].permute(1, 0, 2).masked_fill(repeated, -1e30)
    acceptance = p["acceptance"][:, slate].permute(1, 0, 2)
    normaliser = torch.logsumexp(attraction, -1, keepdim=True)
    click = attraction + functional.logsigmoid(acceptance) - normaliser
    none = torch.logsumexp(attraction + functional.logsigmoid(-acceptance), -1,
                           keepdim=True) - normaliser
    return torch.cat([click, none], -1)


def continue_logit(p: dict[str, Tensor], item: Tensor, num_items: int) -> Tensor:
    """Logit of a next page after the outcome (``item``; ``num_items``: none), ``(B, K)``."""
    clicked = (item < num_items).long()
    item_term = torch.where(clicked.bool(), p["continue_item"][item.clamp(max=num_items - 1)],
                            torch.zeros((), dtype=p["continue_item"].dtype))
    return (p["continue_type"][clicked][:, None] + p["continue_state"][:, clicked].T
            + item_term[:, None])


def forward(p: dict[str, Tensor], data: LoggedSessions, num_items: int,
            predictive: np.ndarray | None = None) -> Tensor:
    """Log-likelihood of the sessions (outcomes and session ends), by the forward algorithm.

    With ``p["logging"]`` (the ``logging_model`` option), the logged slates are also
    emissions of the latent state. With ``predictive``, also writes each page's outcome
    probabilities given the session so far into it (rows of the sorted log).
    """
    belief = torch.softmax(p["start"], 0).expand(len(data.rows[0]), -1)
    transition = torch.log_softmax(p["transition"], -1)
    logging = torch.log_softmax(p["logging"], -1) if "logging" in p else None
    total = torch.zeros((), dtype=torch.float64)
    for t, rows in enumerate(data.rows):
        slate, outcome, item = data.slates[t], data.outcome[t], data.item[t]
        belief = belief[:len(rows)]
        choice = log_choice(p, slate, data.repeated[t])
        if predictive is not None:
            predictive[rows] = (belief[:, :, None] * choice.exp()).sum(1).numpy()
        logit = continue_logit(p, item, num_items)
        went_on = data.has_next[t][:, None]
        emission = (choice.gather(2, outcome[:, None, None].expand(-1, choice.shape[1], 1))[..., 0]
                    + torch.where(went_on, functional.logsigmoid(logit),
                                  functional.logsigmoid(-logit)))
        if logging is not None:
            emission = emission + _slate_log_probability(logging, slate)
        joint = torch.log(belief.clamp(min=1e-300)) + emission
        normaliser = torch.logsumexp(joint, 1, keepdim=True)
        total = total + normaliser.sum()
        posterior = (joint - normaliser)
        # next belief: sum_z posterior(z) P(z' | z, item), in log space
        belief = torch.logsumexp(posterior[:, :, None] + transition[item], 1).exp()
    return total


def _slate_log_probability(logging: Tensor, slate: Tensor) -> Tensor:
    """``log P(slate | z)`` of the logging model, float64 ``(B, K)``.

    The slate's distinct items are independent draws from ``softmax(logging[z])`` (the
    order and the without-replacement normaliser are ignored: an aid to infer ``z``).
    """
    repeated = repeated_positions(slate)
    items = logging[:, slate].permute(1, 0, 2)  # (B, K, k)
    return items.masked_fill(repeated[:, None, :], 0.0).sum(-1)

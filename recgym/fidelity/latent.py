"""A latent-state user simulator with a choice model and a separate continuation model.

Kind ``choice-continuation`` (:func:`fit_choice_continuation`). The user is in one of
``K`` latent states ``z`` that no log shows (an input-output hidden Markov model over
sessions). On each page:

* **choice** (which shown item is clicked, or none): consider-then-accept. A shown item
  ``j`` is considered with probability proportional to its attraction ``exp(u[z, j])``,
  then accepted with probability ``sigmoid(v[z, j])``; a rejected candidate is a page
  without a click. ``P(click j) = exp(u_j) sigmoid(v_j) / sum_shown exp(u)`` over the
  distinct shown items, ``P(no click) = 1 - sum_j P(click j)``. When the logs have no
  page without a click, every candidate is accepted (``v`` is not fitted).
* **continuation** (leave or stay after the page), a model of its own:
  ``P(next page | z, outcome) = sigmoid(c[outcome type] + d[z, outcome type] + e[a])``,
  outcome type no click / click, ``e[a]`` a term per clicked item ``a``. It is fitted on
  the session ends in the logs (every logged page either has a next page or ends its
  session), jointly with the choice, by maximum likelihood.
* **transition**: after a click on ``a`` the state moves by ``P(z' | z, a) =
  softmax(w[a, z])``; after a page without a click by ``softmax(w[none, z])``.

Nothing here reads the hidden state of a world: the likelihood of each logged session
(slates, clicks, and whether a next page followed) is summed over the latent paths by the
forward algorithm, and the parameters maximise it with a Gaussian prior, by L-BFGS.

The prior is centred on the fit's own random draw (the *anchor*, also the start of the
optimisation), so fits with different seeds agree where the logs speak and keep their
different prior draws where they do not: an anchored ensemble (Pearce et al., 2018,
"Uncertainty in neural networks: approximately Bayesian ensembling"), used by
:func:`recgym.fidelity.score` with ``ensemble > 0`` to flag policies the logs do not
inform. Independent anchors average out over the many pairs a policy's value sums, so
members agree on any policy that leans on many unshown item-state pairs; option
``acceptance_offset_scale`` adds one offset per fit to every acceptance anchor, so each
member assumes its own level for those pairs (a randomized prior with a shared part).

Option ``logging_model``: when the logging policy chose its slates by the user's hidden
state (the synthetic worlds' ``max`` and ``mix`` loggers), the likelihood of the outcomes
given the slates prefers a wrong model: every logged item was good for the state it was
shown in, so "every shown item is good, whatever the state" explains the logged clicks
better than the true model does with a state it must guess from the clicks. With the
option, the fit also models which items the logs show in each latent state
(``P(slate | z) = prod_{j in slate} softmax(logging[z])_j``), so a logged slate is evidence
of the state in the fit, and the states the clicks alone cannot separate are identified.
The logging model is a fitting aid only: in simulation the policy's slate is an
intervention, not evidence, and the fitted users do not keep it.

In simulation each user's latent state is drawn (start distribution, then transitions);
the agent sees the click history only, like every non-privileged kind.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.nn import functional

from recgym.core.policy import repeated_positions
from recgym.core.simulator import Randomness, State, Step
from recgym.fidelity.history import ClickHistoryUsers, logged_slates, outcomes, sorted_logs
from recgym.fidelity.worlds import WorldInfo


class _Sessions:
    """Logged sessions as page tensors ordered for the forward pass.

    Sessions are sorted by length, longest first, so at step ``t`` the sessions still
    running are the first ``count[t]`` rows.
    """

    def __init__(self, logs: pd.DataFrame, num_items: int) -> None:
        logs = sorted_logs(logs)
        slates = logged_slates(logs)
        k = slates.shape[1]
        click = logs["click"].to_numpy(np.int64)
        outcome = outcomes(logs)
        session = logs["session_id"].to_numpy()
        codes, _ = pd.factorize(session)
        starts = np.r_[0, np.flatnonzero(np.diff(codes)) + 1]
        lengths = np.diff(np.r_[starts, len(codes)])
        has_next = np.r_[codes[1:] == codes[:-1], False]
        order = np.argsort(-lengths, kind="stable")
        self.lengths = lengths[order]
        self.count = np.array([(self.lengths > t).sum() for t in range(self.lengths.max())])
        # page rows of step t, sessions in the sorted order (only the running ones)
        self.rows = [starts[order[:c]] + t for t, c in enumerate(self.count)]
        self.slates = torch.as_tensor(slates)
        self.outcome = torch.as_tensor(outcome)
        self.item = torch.as_tensor(np.where(outcome < k, click, num_items))
        self.has_next = torch.as_tensor(has_next)
        self.num_pages = len(logs)
        self.any_no_click = bool((outcome == k).any())
        self.order_rows = np.concatenate(self.rows)  # page rows in forward-pass order


class ChoiceContinuationUsers(ClickHistoryUsers):
    """Users of a fitted latent-state choice + continuation model (see the module docstring).

    Attributes:
        start: float64 ``(K,)`` start-state logits.
        attraction: float64 ``(K, n)``.
        acceptance: float64 ``(K, n)`` (large when the logs have no non-click).
        transition: float64 ``(n + 1, K, K)`` logits; row ``n``: after no click.
        continue_type: float64 ``(2,)``: no click, click.
        continue_state: float64 ``(K, 2)``.
        continue_item: float64 ``(n,)``.
    """

    def __init__(self, parameters: dict[str, Tensor], slate_size: int,
                 history_length: int) -> None:
        self.parameters = {name: value.detach().double() for name, value in parameters.items()}
        self.num_latent, num_items = self.parameters["attraction"].shape
        super().__init__(num_items, slate_size, history_length)
        p = self.parameters
        self._start = torch.softmax(p["start"], 0)
        self._transition = torch.softmax(p["transition"], -1).cumsum(-1)

    # -- the model's probabilities, shared by the fit and the simulation

    @staticmethod
    def log_choice(p: dict[str, Tensor], slate: Tensor) -> Tensor:
        """``log P(outcome | z, slate)`` for every latent state, float64 ``(B, K, k + 1)``."""
        repeated = repeated_positions(slate)[:, None, :]
        attraction = p["attraction"][:, slate].permute(1, 0, 2).masked_fill(repeated, -1e30)
        acceptance = p["acceptance"][:, slate].permute(1, 0, 2)
        normaliser = torch.logsumexp(attraction, -1, keepdim=True)
        click = attraction + functional.logsigmoid(acceptance) - normaliser
        none = torch.logsumexp(attraction + functional.logsigmoid(-acceptance), -1,
                               keepdim=True) - normaliser
        return torch.cat([click, none], -1)

    @staticmethod
    def continue_logit(p: dict[str, Tensor], item: Tensor, num_items: int) -> Tensor:
        """Logit of a next page after the outcome (``item``; ``num_items``: none), ``(B, K)``."""
        clicked = (item < num_items).long()
        item_term = torch.where(clicked.bool(), p["continue_item"][item.clamp(max=num_items - 1)],
                                torch.zeros((), dtype=p["continue_item"].dtype))
        return (p["continue_type"][clicked][:, None] + p["continue_state"][:, clicked].T
                + item_term[:, None])

    # -- UserSimulator

    def reset(self, batch_size: int, rng: Randomness) -> State:
        """Latent start states drawn, empty click history."""
        u = rng.uniform(1)[:, 0].double()
        z = (self._start.cumsum(0)[None, :] <= u[:, None]).sum(1).clamp(max=self.num_latent - 1)
        return {"latent": z, "history": self.empty_history(batch_size)}

    def step(self, state: State, slate: Tensor, rng: Randomness) -> Step:
        """Draw the outcome in the latent state, whether the session goes on, the next state."""
        z, history = state["latent"], state["history"]
        batch = torch.arange(len(z))
        uniforms = rng.uniform(3).double()
        probabilities = self.log_choice(self.parameters, slate)[batch, z].exp()
        cumulative = probabilities.cumsum(1)
        position = (cumulative[:, :-1] <= uniforms[:, :1]).sum(1)
        clicked = position < self.slate_size
        item = slate.gather(1, position.clamp(max=self.slate_size - 1)[:, None])[:, 0]
        item = torch.where(clicked, item, self.num_items)
        logit = self.continue_logit(self.parameters, item, self.num_items)[batch, z]
        keep_going = uniforms[:, 1] < torch.sigmoid(logit)
        rows = self._transition[item, z]
        next_z = (rows[:, :-1] <= uniforms[:, 2:3]).sum(1)
        moved = torch.cat([history[:, 1:], item[:, None]], dim=1)
        return Step(state={"latent": next_z,
                           "history": torch.where(clicked[:, None], moved, history)},
                    reward=clicked.to(torch.float32),
                    clicked=torch.where(clicked, item, -1), terminated=~keep_going)

    @torch.no_grad()
    def page_view_probabilities(self, logs: pd.DataFrame) -> np.ndarray:
        """Outcome probabilities of each logged page given the session so far, ``(N, k + 1)``.

        Rows follow ``logs`` sorted by ``session_id``, ``step`` (as the other kinds).
        """
        data = _Sessions(logs, self.num_items)
        out = np.zeros((data.num_pages, self.slate_size + 1))
        _forward(self.parameters, data, self.num_items, predictive=out)
        return out


def _forward(p: dict[str, Tensor], data: _Sessions, num_items: int,
             predictive: np.ndarray | None = None) -> Tensor:
    """Log-likelihood of the sessions (outcomes and session ends), by the forward algorithm.

    With ``p["logging"]`` (the ``logging_model`` option), the logged slates are also
    emissions of the latent state. With ``predictive``, also writes each page's outcome
    probabilities given the session so far into it (rows of the sorted log).
    """
    belief = torch.softmax(p["start"], 0).expand(int(data.count[0]), -1)
    transition = torch.log_softmax(p["transition"], -1)
    logging = torch.log_softmax(p["logging"], -1) if "logging" in p else None
    total = torch.zeros((), dtype=torch.float64)
    for rows in data.rows:
        rows_t = torch.as_tensor(rows)
        belief = belief[:len(rows)]
        choice = ChoiceContinuationUsers.log_choice(p, data.slates[rows_t])
        outcome = data.outcome[rows_t]
        if predictive is not None:
            predictive[rows] = (belief[:, :, None] * choice.exp()).sum(1).numpy()
        item = data.item[rows_t]
        logit = ChoiceContinuationUsers.continue_logit(p, item, num_items)
        went_on = data.has_next[rows_t][:, None]
        emission = (choice.gather(2, outcome[:, None, None].expand(-1, choice.shape[1], 1))[..., 0]
                    + torch.where(went_on, functional.logsigmoid(logit),
                                  functional.logsigmoid(-logit)))
        if logging is not None:
            emission = emission + _slate_log_probability(logging, data.slates[rows_t])
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


def fit_choice_continuation(logs: pd.DataFrame, info: WorldInfo, *, num_latent: int = 10,
                            prior_scale: float = 2.0, max_iter: int = 300,
                            item_continuation: bool = True,
                            logging_model: bool = False,
                            acceptance_offset_scale: float = 0.0) -> ChoiceContinuationUsers:
    """:class:`ChoiceContinuationUsers` by maximum a-posteriori on ``logs``.

    Args:
        logs: sessions in the log schema (``session_id``, ``step``, ``slate``, ``click``).
        info: catalogue and slate size; ``info.seed`` draws the anchor (prior mean and
            start point).
        num_latent: ``K``, latent states (capacity).
        prior_scale: standard deviation of the Gaussian prior around the anchor, and of
            the anchor's own draw around 0.
        max_iter: L-BFGS iterations.
        item_continuation: fit the per-item continuation term ``e[a]``.
        logging_model: also fit which items the logs show in each latent state, so that
            the slates of a logger that reads the hidden state identify the latent state
            (see the module docstring); the fitted users do not keep it.
        acceptance_offset_scale: standard deviation of one offset shared by every
            acceptance anchor of the fit: each ensemble member assumes its own level for
            the item-state pairs the logs never show (a randomized prior with a shared
            part), so members disagree on policies that lean on such pairs.
    """
    n, k = info.num_items, info.slate_size
    data = _Sessions(logs, n)
    generator = torch.Generator().manual_seed(int(info.seed))
    shapes = {"start": (num_latent,), "attraction": (num_latent, n),
              "acceptance": (num_latent, n), "transition": (n + 1, num_latent, num_latent),
              "continue_type": (2,), "continue_state": (num_latent, 2),
              "continue_item": (n,)}
    if logging_model:
        shapes["logging"] = (num_latent, n)
    anchor = {name: prior_scale * torch.randn(shape, generator=generator, dtype=torch.float64)
              for name, shape in shapes.items()}
    anchor["continue_type"] = torch.zeros(2, dtype=torch.float64)
    if acceptance_offset_scale > 0:
        anchor["acceptance"] += acceptance_offset_scale * torch.randn(
            (), generator=generator, dtype=torch.float64)
    fitted = [name for name in shapes
              if (name != "acceptance" or data.any_no_click)
              and (name != "continue_item" or item_continuation)]
    fixed = {"acceptance": torch.full((num_latent, n), 30.0, dtype=torch.float64),
             "continue_item": torch.zeros(n, dtype=torch.float64)}
    variables = {name: anchor[name].clone().requires_grad_(True) for name in fitted}
    optimizer = torch.optim.LBFGS(list(variables.values()), max_iter=max_iter,
                                  line_search_fn="strong_wolfe", history_size=20)

    def parameters() -> dict[str, Tensor]:
        return {name: variables.get(name, fixed.get(name)) for name in shapes}

    def closure() -> Tensor:
        optimizer.zero_grad()
        penalty = sum(((variables[name] - anchor[name]) ** 2).sum() for name in fitted)
        loss = (-_forward(parameters(), data, n) + 0.5 * penalty / prior_scale ** 2) \
            / data.num_pages
        loss.backward()
        return loss

    optimizer.step(closure)
    return ChoiceContinuationUsers({name: value.detach() for name, value in
                                    parameters().items() if name != "logging"},
                                   k, info.history_length)

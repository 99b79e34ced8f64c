"""A latent-state user simulator with a choice model and a separate continuation model.

The improved user simulator of the fidelity instrument (kind ``choice-continuation``,
:func:`fit_choice_continuation`, ``recgym fit choice-continuation``). The user is in one of
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
inform, and by the ``sim`` off-policy estimator for its interval. Independent anchors
average out over the many pairs a policy's value sums, so members agree on any policy
that leans on many unshown item-state pairs; option ``acceptance_offset_scale`` adds one
offset per fit to every acceptance anchor, so each member assumes its own level for
those pairs (a randomized prior with a shared part).

Option ``logging_model`` (of :class:`ChoiceContinuationConfig`): when the logging policy
chose its slates by the user's hidden state (the synthetic worlds' ``max`` and ``mix``
loggers), the likelihood of the outcomes given the slates prefers a wrong model: every
logged item was good for the state it was shown in, so "every shown item is good,
whatever the state" explains the logged clicks better than the true model does with a
state it must guess from the clicks. With the option, the fit also models which items
the logs show in each latent state (``P(slate | z) = prod_{j in slate}
softmax(logging[z])_j``), so a logged slate is evidence of the state in the fit, and the
states the clicks alone cannot separate are identified. The logging model is a fitting
aid only: in simulation the policy's slate is an intervention, not evidence, and the
fitted users do not keep it.

In simulation each user's latent state is drawn (start distribution, then transitions);
the agent sees the click history only, like every non-privileged kind.
"""

from __future__ import annotations

from recgym.simulators.choice_continuation.fit import (
    ChoiceContinuationConfig,
    check_logs,
    fit_choice_continuation,
)
from recgym.simulators.choice_continuation.users import ChoiceContinuationUsers

__all__ = ["ChoiceContinuationConfig", "ChoiceContinuationUsers", "check_logs",
           "fit_choice_continuation"]

"""Off-policy estimators of a target policy's value from logged page views.

The estimand of every estimator here is the target policy's expected reward per page
view on the logged contexts, ``V(pi) = E_x E_{s ~ pi(x)} [r(x, s)]`` with ``x`` drawn as
in the log. The reward of a page view is its ``reward`` column (the click); for slate
estimators it is decomposed by position: the position-``j`` reward is the click on the
item shown at position ``j`` (``position_reward``), whose sum is the page reward.

Estimators (each a small frozen dataclass with a ``name``):

=============  =========================================================================
``dm``         direct method: mean of a reward model under the target (Dudik et al. 2011)
``ips``        inverse propensity scoring with whole-slate weights ``pi(s|x) / mu(s|x)``
``snips``      self-normalised IPS (Swaminathan & Joachims 2015): IPS / mean weight
``dr``         doubly robust: DM plus IPS-weighted residuals (Dudik et al. 2011)
``switch-dr``  DR, but DM alone where the weight exceeds ``tau`` (Wang et al. 2017)
``slate-ips``  standard slate IPS: position rewards times whole-slate weight
``iips``       independent IPS: position-``j`` reward times position-``j`` marginal weight
               (Li et al. 2018); unbiased if a position's reward depends only on its item
``rips``       reward-interaction IPS: position-``j`` reward times the weight of the top-``j``
               prefix (McInerney et al. 2020); unbiased under a cascade reward model
``pi``         pseudo-inverse (Swaminathan et al. 2017): page reward times
               ``q_pi^T Gamma_mu^+ 1_s``; unbiased for rewards additive over (position,
               item); closed forms for uniform logging without replacement and for
               logging with independent positions (see :class:`PseudoInverse`)
=============  =========================================================================

With one-item slates (``k = 1``) ``ips``, ``slate-ips``, ``iips``, ``rips`` and ``pi`` are
the same estimator. Every estimator is written as a ratio of per-row sums,
``sum_i a_i / sum_i b_i`` (``b_i = 1`` except for SNIPS), which is what the bootstrap in
:mod:`recgym.evaluation.ope` resamples.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np


class MissingInputError(ValueError):
    """An estimator needs an input array that was not given."""


_WHAT = {
    "reward": "the page-view reward (the click)",
    "position_reward": "the click at each slate position",
    "pscore": "the logging policy's probability of the logged slate (propensity column)",
    "target_prob": "the target policy's probability of the logged slate",
    "pscore_position": "the logging policy's marginal probability of each logged item at its "
                       "position",
    "target_position": "the target policy's marginal probability of each logged item at its "
                       "position",
    "target_inclusion": "the target policy's probability of showing each logged item "
                        "anywhere in its slate",
    "pscore_prefix": "the logging policy's probability of each logged top-j prefix",
    "target_prefix": "the target policy's probability of each logged top-j prefix",
    "reward_hat_logged": "the reward model's prediction for the logged slate",
    "reward_hat_target": "the reward model's expected prediction under the target policy",
    "session": "the session id of each row (bootstrap clusters)",
}


@dataclass
class OPEInputs:
    """Arrays an estimator reads, one entry per logged page view (``n`` rows, slates of ``k``).

    Attributes:
        reward: float ``(n,)``, reward of the page view (1 = click).
        position_reward: float ``(n, k)``, reward of each position (click on the item at
            position ``j``); rows sum to ``reward`` under the position decomposition.
        pscore: float ``(n,)`` in (0, 1], logging probability of the logged slate.
        target_prob: float ``(n,)`` in [0, 1], target probability of the logged slate.
        pscore_position: float ``(n, k)`` in (0, 1], logging marginal of the logged item at
            its position.
        target_position: float ``(n, k)`` in [0, 1], target marginal of the same.
        pscore_prefix: float ``(n, k)`` in (0, 1], logging probability of the logged
            top-``(j+1)`` prefix.
        target_prefix: float ``(n, k)`` in [0, 1], target probability of the same.
        target_inclusion: float ``(n, k)`` >= 0, target probability (expected count) of
            the logged item at position ``j`` anywhere in the target's slate.
        reward_hat_logged: float ``(n,)``, reward model at the logged slate.
        reward_hat_target: float ``(n,)``, reward model's expectation under the target.
        session: int ``(n,)``, session id of each row (bootstrap resamples sessions).

    Raises:
        ValueError: an array has the wrong shape, is not finite, or a probability is out of
            range; the message names the array and the expected shape.
    """

    reward: np.ndarray
    position_reward: np.ndarray | None = None
    pscore: np.ndarray | None = None
    target_prob: np.ndarray | None = None
    pscore_position: np.ndarray | None = None
    target_position: np.ndarray | None = None
    pscore_prefix: np.ndarray | None = None
    target_prefix: np.ndarray | None = None
    target_inclusion: np.ndarray | None = None
    reward_hat_logged: np.ndarray | None = None
    reward_hat_target: np.ndarray | None = None
    session: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.reward = _as_float("reward", self.reward, ndim=1)
        n = len(self.reward)
        if n == 0:
            raise ValueError("reward is empty: an estimate needs at least one logged page view")
        k = None
        for item in fields(self):
            name = item.name
            value = getattr(self, name)
            if name == "reward" or value is None:
                continue
            if name == "session":
                array = np.asarray(value)
                if array.shape != (n,):
                    raise ValueError(f"session must have shape (n,) = ({n},), got {array.shape}")
                self.session = array
                continue
            two_d = name in ("position_reward", "pscore_position", "target_position",
                             "pscore_prefix", "target_prefix", "target_inclusion")
            array = _as_float(name, value, ndim=2 if two_d else 1)
            if len(array) != n:
                shape = f"(n, k) = ({n}, k)" if two_d else f"(n,) = ({n},)"
                raise ValueError(f"{name} must have shape {shape} like reward, got {array.shape}")
            if two_d:
                if k is None:
                    k = array.shape[1]
                elif array.shape[1] != k:
                    raise ValueError(f"{name} has {array.shape[1]} positions, other (n, k) "
                                     f"arrays have k = {k}: shape must be ({n}, {k})")
            if name in ("pscore", "pscore_position", "pscore_prefix"):
                bad = ~((array > 0) & (array <= 1))
                if bad.any():
                    row = int(np.flatnonzero(bad.reshape(n, -1).any(1))[0])
                    raise ValueError(
                        f"{name} must be in (0, 1] (a logging policy gives every logged "
                        f"action positive probability); row {row} has "
                        f"{array[row]}; {int(bad.sum())} bad value(s)")
            if name in ("target_prob", "target_position", "target_prefix"):
                bad = ~((array >= 0) & (array <= 1))
                if bad.any():
                    row = int(np.flatnonzero(bad.reshape(n, -1).any(1))[0])
                    raise ValueError(f"{name} must be probabilities in [0, 1]; row {row} has "
                                     f"{array[row]}")
            if name == "target_inclusion" and (array < 0).any():
                raise ValueError("target_inclusion must be >= 0 (a probability or an "
                                 "expected count)")
            setattr(self, name, array)

    @property
    def num_rows(self) -> int:
        """Number of logged page views ``n``."""
        return len(self.reward)


def _as_float(name: str, value, ndim: int) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != ndim:
        expected = "(n,)" if ndim == 1 else "(n, k)"
        raise ValueError(f"{name} must have shape {expected}, got shape {array.shape}")
    if not np.isfinite(array).all():
        row = int(np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(1))[0])
        raise ValueError(f"{name} must be finite; row {row} holds {array[row]}")
    return array


@dataclass(frozen=True)
class Estimator:
    """Base class: an off-policy estimator with a name and the inputs it needs."""

    name: str = "estimator"
    requires: ClassVar[tuple[str, ...]] = ()

    def check(self, data: OPEInputs) -> None:
        """Raise :class:`MissingInputError` naming any required array that is missing."""
        missing = [field for field in self.requires if getattr(data, field) is None]
        if missing:
            detail = "; ".join(f"{m} ({_WHAT[m]})" for m in missing)
            raise MissingInputError(f"estimator {self.name!r} needs {detail}")

    def row_terms(self, data: OPEInputs) -> tuple[np.ndarray, np.ndarray | None]:
        """Per-row numerator ``(n,)`` and denominator ``(n,)`` (None: all ones)."""
        raise NotImplementedError

    def estimate(self, data: OPEInputs) -> float:
        """Point estimate of the target's value per page view."""
        self.check(data)
        numerator, denominator = self.row_terms(data)
        total = float(denominator.sum()) if denominator is not None else float(len(numerator))
        return float(numerator.sum() / total) if total > 0 else float("nan")


@dataclass(frozen=True)
class DirectMethod(Estimator):
    """Mean of the reward model under the target: ``mean_i q_hat(x_i, pi)``.

    Unbiased only if the reward model is; no propensities needed, so it is the one
    weight-free estimator (with ``sim``) a policy without probabilities can use.
    """

    name: str = "dm"
    requires: ClassVar[tuple[str, ...]] = ("reward_hat_target",)

    def row_terms(self, data: OPEInputs) -> tuple[np.ndarray, np.ndarray | None]:
        """``q_hat(x_i, pi)`` per row."""
        return data.reward_hat_target, None


@dataclass(frozen=True)
class InverseProbabilityWeighting(Estimator):
    """IPS: ``mean_i r_i * pi(s_i|x_i) / mu(s_i|x_i)``, whole-slate weights."""

    name: str = "ips"
    requires: ClassVar[tuple[str, ...]] = ("pscore", "target_prob")

    def row_terms(self, data: OPEInputs) -> tuple[np.ndarray, np.ndarray | None]:
        """``w_i r_i``."""
        return data.reward * (data.target_prob / data.pscore), None


@dataclass(frozen=True)
class SelfNormalizedIPS(Estimator):
    """SNIPS: ``sum_i w_i r_i / sum_i w_i``; biased, lower variance, equals IPS when mean w = 1."""

    name: str = "snips"
    requires: ClassVar[tuple[str, ...]] = ("pscore", "target_prob")

    def row_terms(self, data: OPEInputs) -> tuple[np.ndarray, np.ndarray | None]:
        """``w_i r_i`` over ``w_i``."""
        weight = data.target_prob / data.pscore
        return data.reward * weight, weight


@dataclass(frozen=True)
class DoublyRobust(Estimator):
    """DR: ``mean_i q_hat(x_i, pi) + w_i (r_i - q_hat(x_i, s_i))``.

    Unbiased if either the weights or the reward model are exact.
    """

    name: str = "dr"
    requires: ClassVar[tuple[str, ...]] = ("pscore", "target_prob", "reward_hat_logged",
                                           "reward_hat_target")

    def row_terms(self, data: OPEInputs) -> tuple[np.ndarray, np.ndarray | None]:
        """DM term plus weighted residual."""
        weight = data.target_prob / data.pscore
        return data.reward_hat_target + weight * (data.reward - data.reward_hat_logged), None


@dataclass(frozen=True)
class SwitchDoublyRobust(Estimator):
    """Switch-DR: the DR residual only where ``w_i <= tau``, the DM term everywhere.

    Args:
        tau: weight threshold; ``inf`` gives DR, 0 gives DM.
    """

    name: str = "switch-dr"
    tau: float = 100.0
    requires: ClassVar[tuple[str, ...]] = DoublyRobust.requires

    def __post_init__(self) -> None:
        if not self.tau >= 0:
            raise ValueError(f"tau must be >= 0, got {self.tau}")

    def row_terms(self, data: OPEInputs) -> tuple[np.ndarray, np.ndarray | None]:
        """DM term plus the weighted residual of rows with small weights."""
        weight = data.target_prob / data.pscore
        kept = np.where(weight <= self.tau, weight, 0.0)
        return data.reward_hat_target + kept * (data.reward - data.reward_hat_logged), None


@dataclass(frozen=True)
class SlateIPS(Estimator):
    """Standard slate IPS: ``mean_i (sum_j r_ij) pi(s_i|x_i) / mu(s_i|x_i)``.

    Unbiased for any reward, but the whole-slate weight can be astronomically large.
    """

    name: str = "slate-ips"
    requires: ClassVar[tuple[str, ...]] = ("position_reward", "pscore", "target_prob")

    def row_terms(self, data: OPEInputs) -> tuple[np.ndarray, np.ndarray | None]:
        """Position rewards summed, times the slate weight."""
        return data.position_reward.sum(1) * (data.target_prob / data.pscore), None


@dataclass(frozen=True)
class IndependentIPS(Estimator):
    """IIPS: ``mean_i sum_j r_ij pi_j(s_ij|x_i) / mu_j(s_ij|x_i)`` (position marginals)."""

    name: str = "iips"
    requires: ClassVar[tuple[str, ...]] = ("position_reward", "pscore_position",
                                           "target_position")

    def row_terms(self, data: OPEInputs) -> tuple[np.ndarray, np.ndarray | None]:
        """Position rewards times position weights, summed over positions."""
        weight = data.target_position / data.pscore_position
        return (data.position_reward * weight).sum(1), None


@dataclass(frozen=True)
class RewardInteractionIPS(Estimator):
    """RIPS: ``mean_i sum_j r_ij pi(s_i,1..j|x_i) / mu(s_i,1..j|x_i)`` (prefix weights)."""

    name: str = "rips"
    requires: ClassVar[tuple[str, ...]] = ("position_reward", "pscore_prefix", "target_prefix")

    def row_terms(self, data: OPEInputs) -> tuple[np.ndarray, np.ndarray | None]:
        """Position rewards times prefix weights, summed over positions."""
        weight = data.target_prefix / data.pscore_prefix
        return (data.position_reward * weight).sum(1), None


def uniform_pseudo_inverse_coefficients(num_items: int, slate_size: int
                                        ) -> tuple[float, float, float]:
    """Pseudo-inverse weight coefficients under uniform logging without replacement.

    Logging draws ordered ``k``-slates of distinct items out of ``n`` uniformly. For a
    deterministic target slate ``t`` the weight is
    ``alpha * #{j: s_j = t_j} + beta * #{(i, j), i != j: s_i = t_j} + gamma``; the
    coefficients solve ``E_mu[w(s) 1{s_i = a}] = 1{a = t_i}`` for every position ``i`` and
    item ``a`` (the three cases a = t_i, a = t_j for j != i, a outside t), which makes the
    estimate unbiased for every reward additive over (position, item): the
    ``q^T Gamma^+ 1_s`` of Swaminathan et al. (2017) for this logging policy.
    """
    m, k = float(num_items), float(slate_size)
    if num_items < 2:
        return m, 0.0, 0.0
    d = m - 1.0
    system = np.array([
        [1 + (k - 1) / d, (k - 1) * (k - 2) / d, 1.0],
        [(k - 2) / d, 1 + ((k - 1) + (k - 2) ** 2) / d, 1.0],
        [(k - 1) / d, (k - 1) ** 2 / d, 1.0],
    ])
    alpha, beta, gamma = np.linalg.lstsq(system, np.array([m, 0.0, 0.0]), rcond=None)[0]
    return float(alpha), float(beta), float(gamma)


@dataclass(frozen=True)
class PseudoInverse(Estimator):
    """PI (Swaminathan et al. 2017): page reward times ``q_pi^T Gamma_mu^+ 1_s``.

    Unbiased when the page reward is additive over (position, item) and the logging
    policy's slot-pair matrix ``Gamma_mu`` identifies it. Two logging families have a
    closed form here:

    * ``uniform_items=None`` (default): logging that fills positions independently; then
      the weight is ``sum_j pi_j(s_j|x) / mu_j(s_j|x) - (k - 1)``. For other logging
      policies this is an approximation (it ignores that a slate cannot repeat an item).
    * ``uniform_items=n``: uniform logging without replacement out of ``n`` items (the
      paper's main case); the weight is ``alpha * sum_j pi_j(s_j) + beta * (sum_j
      P_pi(s_j in slate) - sum_j pi_j(s_j)) + gamma`` with the coefficients of
      :func:`uniform_pseudo_inverse_coefficients`.
      ``evaluate`` chooses this form when the logging policy is uniformly random.

    Args:
        uniform_items: ``n`` for uniform logging without replacement, else None.
    """

    name: str = "pi"
    uniform_items: int | None = None
    requires: ClassVar[tuple[str, ...]] = ("pscore_position", "target_position")

    def check(self, data: OPEInputs) -> None:
        """Also require ``target_inclusion`` in the uniform form."""
        super().check(data)
        if self.uniform_items is not None and data.target_inclusion is None:
            raise MissingInputError(f"estimator {self.name!r} (uniform logging) needs "
                                    f"target_inclusion ({_WHAT['target_inclusion']})")

    def row_terms(self, data: OPEInputs) -> tuple[np.ndarray, np.ndarray | None]:
        """Page reward times the pseudo-inverse weight."""
        k = data.target_position.shape[1]
        if self.uniform_items is None:
            weight = data.target_position / data.pscore_position
            return data.reward * (weight.sum(1) - (k - 1)), None
        alpha, beta, gamma = uniform_pseudo_inverse_coefficients(self.uniform_items, k)
        same_slot = data.target_position.sum(1)
        other_slot = data.target_inclusion.sum(1) - same_slot
        return data.reward * (alpha * same_slot + beta * other_slot + gamma), None


ESTIMATORS: dict[str, type[Estimator]] = {
    "dm": DirectMethod,
    "ips": InverseProbabilityWeighting,
    "snips": SelfNormalizedIPS,
    "dr": DoublyRobust,
    "switch-dr": SwitchDoublyRobust,
    "slate-ips": SlateIPS,
    "iips": IndependentIPS,
    "rips": RewardInteractionIPS,
    "pi": PseudoInverse,
}
"""Every log-based estimator by name (``sim`` lives in :mod:`recgym.evaluation.ope_simulator`)."""

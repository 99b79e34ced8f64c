"""Offline policy evaluation: off-policy estimators and simulator roll-outs, side by side.

```python
from recgym.evaluation import ope
table = ope.evaluate(policy, logs, estimators=["dm", "ips", "snips", "dr", "slate-ips",
                                               "iips", "rips", "pi", "sim"])
```

returns one row per estimator with the estimate and a seeded bootstrap confidence
interval (sessions are resampled, since page views of one session are not independent).
Two estimands appear in the table, and the ``estimand`` column says which:

* ``logged contexts``: the log-based estimators (:mod:`recgym.evaluation.ope_estimators`)
  estimate the target's expected reward per page view on the contexts of the log. In a
  sequential problem those contexts were reached by the *logging* policy; the target,
  deployed, would reach others.
* ``on-policy``: ``sim`` rolls the target out in a user simulator fitted on the same
  logs (by default the choice-continuation users of
  :mod:`recgym.simulators.choice_continuation`, the fidelity instrument's best kind; the
  count-based :class:`~recgym.evaluation.ope_models.CountClickSimulator` with
  ``SimulatorRollout(kind="count")``; any fitted ``UserSimulator`` can be passed) and
  reports clicks per page view along its own trajectories, the quantity an on-line test
  measures.

Target policies are any recgym Policy or a stable-baselines3 model as trained (wrapped
by :func:`~recgym.evaluation.ope_policies.as_policy`, its observations rebuilt for the
spaces it was trained on: :func:`observation_for`); see
:func:`recgym.evaluation.ope_policies.policy_probabilities` for how their probabilities
of logged slates are obtained and what happens when they cannot be.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

from recgym.data import load_progress, save_figure, save_progress
from recgym.data.slates import first_occurrence, pick_sessions
from recgym.evaluation.ope_estimators import (
    ESTIMATORS,
    DirectMethod,
    DoublyRobust,
    Estimator,
    IndependentIPS,
    InverseProbabilityWeighting,
    MissingInputError,
    OPEInputs,
    PseudoInverse,
    RewardInteractionIPS,
    SelfNormalizedIPS,
    SlateIPS,
    SwitchDoublyRobust,
)
from recgym.evaluation.ope_models import (
    CountClickSimulator,
    ItemClickModel,
    SyntheticRewardModel,
    contexts_from_logs,
)
from recgym.evaluation.ope_policies import (
    SlateProbabilities,
    TargetProbabilityError,
    as_policy,
    is_sb3_model,
    observation_spaces_of,
    observations_from_logs,
    policy_probabilities,
    sample_target_slates,
    shown_windows_from_logs,
)
from recgym.evaluation.rollout import session_totals

__all__ = [
    "ALL_ESTIMATORS",
    "BootstrapProgress",
    "DirectMethod",
    "DoublyRobust",
    "Estimator",
    "IndependentIPS",
    "InverseProbabilityWeighting",
    "ItemClickModel",
    "CountClickSimulator",
    "LoggedData",
    "MissingInputError",
    "OPEInputs",
    "PseudoInverse",
    "RewardInteractionIPS",
    "SelfNormalizedIPS",
    "SimulatorRollout",
    "SlateIPS",
    "SlateProbabilities",
    "SwitchDoublyRobust",
    "SyntheticRewardModel",
    "TargetProbabilityError",
    "as_policy",
    "bootstrap_ratio",
    "build_inputs",
    "evaluate",
    "format_table",
    "make_estimator",
    "observation_for",
    "observations_from_logs",
    "plot_table",
    "possible_range",
    "policy_probabilities",
    "prepare_logs",
]

ALL_ESTIMATORS = (*ESTIMATORS, "sim")
"""Names ``evaluate`` accepts."""


def bootstrap_ratio(numerators: np.ndarray, denominators: np.ndarray, clusters: np.ndarray, *,
                    n_bootstrap: int = 200, alpha: float = 0.05, seed: int = 0,
                    block: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile bootstrap of ratio estimates ``sum a / sum b``, resampling clusters.

    Args:
        numerators: float ``(E, n)``, per-row numerators of ``E`` estimators.
        denominators: float ``(E, n)``, per-row denominators (ones for plain means).
        clusters: ``(n,)`` cluster (session) of each row; whole clusters are resampled.
        n_bootstrap: resamples.
        alpha: the interval covers ``1 - alpha``.
        seed: seeds the resampling (``numpy.random.default_rng``).
        block: resamples computed per matrix product (memory ``block * clusters``).

    Returns:
        ``(low, high, std_err)``, each float64 ``(E,)``.
    """
    numerators = np.atleast_2d(np.asarray(numerators, np.float64))
    denominators = np.atleast_2d(np.asarray(denominators, np.float64))
    if numerators.shape != denominators.shape:
        raise ValueError(f"numerators {numerators.shape} and denominators "
                         f"{denominators.shape} must have the same shape (E, n)")
    if len(clusters) != numerators.shape[1]:
        raise ValueError(f"clusters must have shape (n,) = ({numerators.shape[1]},), got "
                         f"{np.shape(clusters)}")
    if n_bootstrap < 2:
        raise ValueError(f"n_bootstrap must be >= 2, got {n_bootstrap}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    _, inverse = np.unique(clusters, return_inverse=True)
    n_clusters = int(inverse.max()) + 1
    num_c = np.stack([np.bincount(inverse, weights=row, minlength=n_clusters)
                      for row in numerators])
    den_c = np.stack([np.bincount(inverse, weights=row, minlength=n_clusters)
                      for row in denominators])
    rng = np.random.default_rng(seed)
    draws = np.full((n_bootstrap, len(num_c)), np.nan)
    for start in range(0, n_bootstrap, block):
        stop = min(start + block, n_bootstrap)
        counts = np.stack([np.bincount(rng.integers(0, n_clusters, n_clusters),
                                       minlength=n_clusters) for _ in range(start, stop)])
        counts = counts.astype(np.float64).T  # (C, b)
        with np.errstate(invalid="ignore", divide="ignore"):
            draws[start:stop] = ((num_c @ counts) / (den_c @ counts)).T
    with warnings.catch_warnings():  # an estimator with no weight mass has no interval
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(draws, [alpha / 2, 1 - alpha / 2], axis=0)
        return low, high, np.nanstd(draws, axis=0, ddof=1)


@dataclass
class LoggedData:
    """A log turned into arrays, with the observations a policy saw at each row.

    Attributes:
        logs: the log, sorted by session and step.
        slates: int64 ``(n, k)``.
        reward: float64 ``(n,)``.
        position_reward: float64 ``(n, k)``, the reward credited to the clicked position.
        observation: rebuilt observations (:func:`observations_from_logs`).
        contexts: int64 ``(n,)``, reward-model context of each row.
        num_contexts: number of contexts.
        num_items: catalogue size.
        history_length: clicks in the observation.
        context_column: the column the contexts come from (None: a single context).
        rebuilt: observations rebuilt for the spaces a policy declares, by key set.
    """

    logs: pd.DataFrame
    slates: np.ndarray
    reward: np.ndarray
    position_reward: np.ndarray
    observation: dict[str, np.ndarray]
    contexts: np.ndarray
    num_contexts: int
    num_items: int
    history_length: int
    context_column: str | None
    rebuilt: dict = field(default_factory=dict, repr=False)

    @property
    def session(self) -> np.ndarray:
        """Session id of each row, ``(n,)``."""
        return self.logs["session_id"].to_numpy()


def _read_logs(logs) -> tuple[pd.DataFrame, int | None]:
    from recgym.data import LogDataset

    if isinstance(logs, (str, os.PathLike)):
        logs = LogDataset.load(Path(logs))
    if isinstance(logs, LogDataset):
        return logs.logs, logs.num_items
    if not isinstance(logs, pd.DataFrame):
        raise TypeError(f"logs must be a DataFrame, a LogDataset or a path, got "
                        f"{type(logs).__name__}")
    return logs, None


def prepare_logs(logs, *, num_items: int | None = None, history_length: int = 10,
                 context_column: str | None = "true_state", validate: bool = True
                 ) -> LoggedData:
    """Check a log and turn it into the arrays the estimators read.

    Args:
        logs: a DataFrame in the recgym log schema, a ``LogDataset`` or a path to one.
        num_items: catalogue size (default: the dataset's, else highest item id + 1).
        history_length: clicks in the rebuilt observations.
        context_column: discrete column the reward model conditions on (``true_state`` in
            synthetic logs, e.g. ``position`` or a user feature in real ones); ignored if
            absent.
        validate: run recgym's log validation (``LogDataset``) on a DataFrame.
    """
    frame, dataset_items = _read_logs(logs)
    if validate and dataset_items is None:
        from recgym.data import LogDataset

        dataset = LogDataset(frame, num_items=num_items)
        frame, dataset_items = dataset.logs, dataset.num_items
    for column in ("session_id", "step", "slate", "click"):
        if column not in frame.columns:
            raise ValueError(f"logs need a {column!r} column (recgym log schema)")
    frame = frame.sort_values(["session_id", "step"], kind="stable").reset_index(drop=True)
    slates = np.stack(frame["slate"].to_numpy()).astype(np.int64)
    if num_items is None:
        num_items = dataset_items or int(slates.max()) + 1
    click = frame["click"].to_numpy().astype(np.int64)
    if "reward" in frame.columns:
        reward = frame["reward"].to_numpy().astype(np.float64)
    else:
        reward = (click >= 0).astype(np.float64)
    on_clicked = (slates == click[:, None]) & first_occurrence(slates)
    position_reward = on_clicked * reward[:, None]
    observation = observations_from_logs(frame, num_items, history_length)
    contexts, num_contexts = contexts_from_logs(frame, context_column)
    return LoggedData(frame, slates, reward, position_reward, observation, contexts,
                      num_contexts, num_items, history_length,
                      context_column if context_column in frame.columns else None)


def observation_for(policy, data: LoggedData) -> dict[str, np.ndarray]:
    """The logged observations as ``policy`` reads them.

    A policy that declares ``observation_spaces`` (e.g. :class:`~recgym.core.policy.
    SB3Policy`: the spaces its model was trained on) gets exactly those keys rebuilt
    (:func:`observations_from_logs`), on top of ``data.observation``; any other policy gets
    ``data.observation`` (``clicks`` and, when logged, ``true_state``).
    """
    spaces = observation_spaces_of(policy)
    if not spaces:
        return data.observation
    key = tuple(sorted((name, repr(space)) for name, space in spaces.items()))
    if key not in data.rebuilt:
        data.rebuilt[key] = {**data.observation,
                             **observations_from_logs(data.logs, data.num_items,
                                                      data.history_length, spaces=spaces)}
    return data.rebuilt[key]


def _observation_note(policy, data: LoggedData) -> str:
    """Says how many rows hold padding where the env's start window is not in the log."""
    spaces = observation_spaces_of(policy) or {}
    if not {"recent_items", "feedback"} & set(spaces):
        return ""
    space = spaces.get("recent_items", spaces.get("feedback"))
    _, padded = shown_windows_from_logs(data.logs, int(np.prod(space.shape)), 2)
    if not padded.any():
        return ""
    return (f"{int(padded.sum()):,} of {len(padded):,} page views are in the first "
            f"{int(np.prod(space.shape))} shown items of their session: the env's start window "
            "is not in the log, so their recent_items / feedback hold item 0 / feedback 0")


def possible_range(reward: np.ndarray) -> tuple[float, float]:
    """The possible range of the reward per page view, read from the logged rewards.

    Binary rewards (clicks) give ``[0, 1]``; others the logged minimum and maximum (with
    0 included: a page view without a click earns nothing).
    """
    reward = np.asarray(reward, np.float64)
    if reward.size == 0 or np.isin(reward, (0.0, 1.0)).all():
        return 0.0, 1.0
    return float(min(reward.min(), 0.0)), float(max(reward.max(), 0.0))


def _list_column(frame: pd.DataFrame, name: str, k: int) -> np.ndarray | None:
    if name not in frame.columns:
        return None
    array = np.stack(frame[name].to_numpy()).astype(np.float64)
    if array.shape != (len(frame), k):
        raise ValueError(f"column {name!r} must hold {k} probabilities per row, got "
                         f"shape {array.shape}")
    return array


def build_inputs(policy, data: LoggedData, *, logging_policy=None, reward_model=None,
                 deterministic: bool | None = None, n_target_samples: int = 8,
                 target_draws: list[np.ndarray] | None = None
                 ) -> tuple[OPEInputs, dict[str, str]]:
    """Every array the estimators may need, and why any is missing.

    Args:
        policy: the target policy.
        data: a prepared log.
        logging_policy: the policy that wrote the log, when known (gives per-position and
            prefix propensities, and slate propensities if the log has none).
        reward_model: has ``predict(contexts (n,), slates (n, k)) -> (n,)``; default an
            :class:`ItemClickModel` fitted on the log.
        deterministic: declare the target deterministic (see ``policy_probabilities``).
        n_target_samples: target slates drawn per row for the DM term of a stochastic
            target.
        target_draws: those draws, if already made (list of int ``(n, k)``).

    Returns:
        The inputs, and ``{array name: reason it is missing}``.
    """
    k = data.slates.shape[1]
    policy = as_policy(policy, slate_size=k, deterministic=deterministic)
    if logging_policy is not None:
        logging_policy = as_policy(logging_policy, slate_size=k)
    missing: dict[str, str] = {}
    arrays: dict[str, np.ndarray | None] = {}
    try:
        target = policy_probabilities(policy, observation_for(policy, data), data.slates,
                                      deterministic=deterministic)
    except (TargetProbabilityError, NotImplementedError) as error:
        target = None
        for name in ("target_prob", "target_position", "target_prefix", "target_inclusion"):
            missing[name] = str(error)
    if target is not None:
        arrays["target_prob"] = target.slate
        arrays["target_position"] = target.position
        arrays["target_prefix"] = target.prefix
        arrays["target_inclusion"] = target.inclusion
        for name, value in (("target_position", target.position),
                            ("target_prefix", target.prefix)):
            if value is None:
                missing[name] = target.why_not
        if target.inclusion is None:
            missing["target_inclusion"] = target.why_not or "the policy does not give it"
    logged = None
    if logging_policy is not None:
        logged = policy_probabilities(logging_policy, observation_for(logging_policy, data),
                                      data.slates)
    frame = data.logs
    pscore = frame["propensity"].to_numpy().astype(np.float64) if "propensity" in frame \
        else None
    if pscore is None and logged is not None:
        pscore = logged.slate
    position = _list_column(frame, "position_propensity", k)
    prefix = _list_column(frame, "prefix_propensity", k)
    if logged is not None:
        position = logged.position if position is None else position
        prefix = logged.prefix if prefix is None else prefix
    if k == 1 and pscore is not None:
        position = pscore[:, None] if position is None else position
        prefix = pscore[:, None] if prefix is None else prefix
    if pscore is None:
        missing["pscore"] = "the log has no propensity column and no logging_policy was given"
    no_marginals = ("the log has no position_propensity / prefix_propensity columns and no "
                    "logging_policy was given to compute them")
    if position is None:
        missing["pscore_position"] = no_marginals
    if prefix is None:
        missing["pscore_prefix"] = no_marginals
    arrays.update(pscore=pscore, pscore_position=position, pscore_prefix=prefix)
    if reward_model is None:
        reward_model = ItemClickModel.fit(data.contexts, data.slates, data.position_reward,
                                          data.num_contexts, data.num_items)
    arrays["reward_hat_logged"] = reward_model.predict(data.contexts, data.slates)
    draws = target_draws if target_draws is not None else sample_target_slates(
        policy, observation_for(policy, data), n_target_samples)
    for slates in draws:
        if slates.shape != data.slates.shape:
            raise ValueError(f"the target policy's slates have shape {slates.shape}, the "
                             f"logged ones {data.slates.shape}: slate sizes must match")
        if slates.size and (slates.min() < 0 or slates.max() >= data.num_items):
            raise ValueError(f"the target policy recommends item {int(slates.max())} but the "
                             f"log's catalogue has num_items = {data.num_items}; pass "
                             "num_items to cover the policy's items")
    arrays["reward_hat_target"] = np.mean([reward_model.predict(data.contexts, s)
                                           for s in draws], axis=0)
    inputs = OPEInputs(reward=data.reward, position_reward=data.position_reward,
                       session=data.session, **arrays)
    return inputs, missing


SIM_KINDS = ("choice-continuation", "count")
"""Simulators ``sim`` fits on the logs: the fidelity instrument's best kind, and the count one."""


@dataclass(frozen=True)
class SimulatorRollout:
    """``sim``: roll the target out in a user simulator fitted on the logs.

    By default the simulator is the choice-continuation users
    (:mod:`recgym.simulators.choice_continuation`), the kind that ranked policies best in
    the fidelity benchmark (``docs/fidelity.md``); ``kind="count"`` fits the tabular
    :class:`CountClickSimulator` instead, which conditions on the log's context column
    (in a synthetic log the hidden state: a privileged reference, not a deployable
    simulator). Its interval comes from refits on session resamples: the count
    simulator's are quantiles over ``n_refits`` refits; the choice-continuation's
    ``n_refits`` members are also anchored differently (an ensemble, see the simulator's
    docstring), and the interval spans the members' estimates widened by roll-out noise.

    Args:
        name: row name in the table.
        simulator: roll out in this fitted ``UserSimulator`` instead of fitting one; its
            interval then covers roll-out noise only.
        kind: ``"choice-continuation"`` or ``"count"``: what to fit on the logs.
        n_sessions: simulated sessions per roll-out.
        max_steps: sessions are cut after this many page views.
        n_refits: refits on resampled sessions for the interval (None: 10 for ``count``,
            2 for ``choice-continuation``, whose fit takes about a minute per 10,000
            sessions).
        prior_strength: shrinkage of the count simulator.
        fit_options: options of the choice-continuation fit
            (:class:`~recgym.simulators.choice_continuation.ChoiceContinuationConfig`).
    """

    name: str = "sim"
    simulator: object | None = None
    kind: str = "choice-continuation"
    n_sessions: int = 1000
    max_steps: int = 200
    n_refits: int | None = None
    prior_strength: float = 1.0
    fit_options: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in SIM_KINDS:
            raise ValueError(f"SimulatorRollout kind must be one of {SIM_KINDS}, got "
                             f"{self.kind!r}")
        refits = self.refits
        if self.n_sessions < 1 or self.max_steps < 1 or refits < 0:
            raise ValueError("SimulatorRollout needs n_sessions >= 1, max_steps >= 1 and "
                             f"n_refits >= 0; got {self.n_sessions}, {self.max_steps}, "
                             f"{refits}")
        if self.fit_options and self.kind != "choice-continuation":
            raise ValueError("SimulatorRollout fit_options configure the choice-continuation "
                             f"fit; kind={self.kind!r} takes prior_strength")

    @property
    def refits(self) -> int:
        """Refits for the interval (``n_refits`` or the kind's default)."""
        if self.n_refits is not None:
            return self.n_refits
        return 10 if self.kind == "count" else 2

    def offered_keys(self) -> set[str]:
        """Observation keys the simulator gives a policy."""
        if self.simulator is not None:
            return set(self.simulator.observation_spaces())
        return {"clicks", "true_state"} if self.kind == "count" else {"clicks"}

    def cannot_run(self, policy, data: LoggedData) -> str:
        """Why the target cannot act in this simulator (empty: it can).

        A policy that declares no ``observation_spaces`` is tried on one logged
        observation without the keys the simulator does not give (e.g. ``true_state``).
        """
        needs = observation_spaces_of(policy)
        if needs:
            absent = sorted(set(needs) - self.offered_keys())
        else:
            absent = sorted(set(data.observation) - self.offered_keys())
            if absent:
                seen = {key: torch.as_tensor(values[:1]) for key, values in
                        data.observation.items() if key not in absent}
                try:
                    policy.act(seen)
                    absent = []
                except KeyError as error:
                    absent = [str(error.args[0])] if error.args else absent
        if not absent:
            return ""
        if self.simulator is not None:
            source, fix = type(self.simulator).__name__, "a simulator of the policy's env"
        else:
            source = f"the {self.kind} simulator fitted on the log"
            fix = "a simulator of the policy's env"
            if self.kind == "choice-continuation" and set(absent) <= {"true_state"}:
                fix += (", or SimulatorRollout(kind='count') (conditions on the log's "
                        "context column: privileged when that is a hidden state)")
        return (f"needs the observation keys {absent} the policy reads, but {source} "
                f"observes {sorted(self.offered_keys())}: pass SimulatorRollout(simulator=...) "
                f"with {fix}")

    def fit(self, data: LoggedData, picked: np.ndarray | None = None, seed: int = 0):
        """The simulator of ``data``, or of the resample of its sessions ``picked`` (indices).

        ``seed`` draws the choice-continuation anchor (one per ensemble member).
        """
        if self.kind == "count":
            weights = None
            if picked is not None:
                sessions = np.unique(data.session)
                counts = np.bincount(picked, minlength=len(sessions))
                weights = dict(zip(sessions.tolist(), counts.tolist(), strict=True))
            return CountClickSimulator.fit(data.logs, data.num_items,
                                           context_column=data.context_column,
                                           history_length=data.history_length,
                                           prior_strength=self.prior_strength,
                                           session_weights=weights)
        from recgym.simulators.choice_continuation import (
            ChoiceContinuationConfig,
            fit_choice_continuation,
        )

        logs = data.logs if picked is None else pick_sessions(data.logs, picked)
        return fit_choice_continuation(
            logs, data.num_items, data.slates.shape[1], history_length=data.history_length,
            seed=seed, config=ChoiceContinuationConfig(**(self.fit_options or {})))

    def run(self, policy, data: LoggedData, *, alpha: float = 0.05, seed: int = 0
            ) -> dict[str, float]:
        """Estimate (clicks per page view), interval, standard error and clicks per session."""
        simulator = self.simulator if self.simulator is not None else self.fit(data)
        clicks, steps = session_totals(simulator, policy, self.n_sessions, seed=seed,
                                       max_steps=self.max_steps)
        estimate = float(clicks.sum() / max(steps.sum(), 1))
        rng = np.random.default_rng(seed)
        members = [estimate]
        if self.simulator is None and self.refits >= (2 if self.kind == "count" else 1):
            num_sessions = len(np.unique(data.session))
            for refit in range(self.refits):
                picked = rng.integers(0, num_sessions, num_sessions)
                c, s = session_totals(self.fit(data, picked, seed=refit + 1), policy,
                                      self.n_sessions, seed=seed + (refit + 1) * self.n_sessions,
                                      max_steps=self.max_steps)
                members.append(c.sum() / max(s.sum(), 1))

        def rollout_draws() -> list[float]:
            """The estimate over session resamples of the roll-out (its noise)."""
            draws = []
            for _ in range(200):
                picked = rng.integers(0, len(clicks), len(clicks))
                draws.append(clicks[picked].sum() / max(steps[picked].sum(), 1))
            return draws

        if len(members) == 1:
            draws = rollout_draws()
            low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
            std_err = float(np.std(draws, ddof=1))
        elif self.kind == "count":
            low, high = np.quantile(members[1:], [alpha / 2, 1 - alpha / 2])
            std_err = float(np.std(members[1:], ddof=1))
        else:  # ensemble: the members' range, widened by one roll-out's noise
            noise = stats.norm.ppf(1 - alpha / 2) * float(np.std(rollout_draws(), ddof=1))
            low, high = min(members) - noise, max(members) + noise
            std_err = float(np.std(members, ddof=1))
        return {"estimate": estimate, "ci_low": float(low), "ci_high": float(high),
                "std_err": std_err, "return": float(clicks.mean())}


REFIT_BOOTSTRAP_LIMIT = 20_000_000
"""Above this many (row, position, target draw) cells, the bootstrap of dm / dr /
switch-dr keeps the default reward model fixed instead of refitting it per resample."""


@dataclass
class BootstrapProgress:
    """A file where the refit bootstrap of :func:`evaluate` keeps its finished resamples.

    Refitting the reward model per resample is the slow part of ``evaluate`` (about 20 ms
    a resample on 10,000 logged sessions). Every ``every`` resamples, the results so far
    and the state of the resampling generator after them are written to ``path``
    (atomically, as JSON). A file already there is continued, so a killed run ends with
    exactly the intervals of an uninterrupted one; a file of another run (other ``run``,
    resamples, seed or estimators) is refused.

    Attributes:
        path: the progress file (the caller deletes it once the results are safe).
        run: what else identifies the run, e.g. its command-line arguments (JSON values).
        every: resamples between writes.
    """

    path: Path
    run: dict[str, Any] = field(default_factory=dict)
    every: int = 50


def _refit_bootstrap(estimators: list[Estimator], inputs: OPEInputs, data: LoggedData,
                     draws: list[np.ndarray], *, n_bootstrap: int, alpha: float, seed: int,
                     progress: BootstrapProgress | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bootstrap of model-based estimators that refits the count reward model per resample."""
    _, inverse = np.unique(data.session, return_inverse=True)
    n_clusters = int(inverse.max()) + 1
    rng = np.random.default_rng(seed)
    results: list[list[float]] = []
    if progress is not None:
        run = {"n_bootstrap": n_bootstrap, "seed": seed,
               "estimators": [estimator.name for estimator in estimators], **progress.run}
        if Path(progress.path).exists():
            saved = load_progress(progress.path, run)
            results, rng.bit_generator.state = saved["results"], saved["generator"]
    # ItemClickModel.predict, with the cell indices and repeat masks computed once
    cells = [(data.contexts[:, None] * data.num_items + slates, first_occurrence(slates))
             for slates in (data.slates, *draws)]
    cells = [(cell, None if first.all() else first) for cell, first in cells]

    def predict(rates: np.ndarray, cell: np.ndarray, first: np.ndarray | None) -> np.ndarray:
        values = rates[cell] if first is None else rates[cell] * first
        return np.minimum(values.sum(1), 1.0)

    while len(results) < n_bootstrap:
        weight = np.bincount(rng.integers(0, n_clusters, n_clusters),
                             minlength=n_clusters)[inverse].astype(np.float64)
        rates = ItemClickModel.fit(data.contexts, data.slates, data.position_reward,
                                   data.num_contexts, data.num_items, weights=weight,
                                   first=cells[0][1]).rates.ravel()
        resampled = replace(
            inputs, reward_hat_logged=predict(rates, *cells[0]),
            reward_hat_target=np.mean([predict(rates, *c) for c in cells[1:]], 0))
        values = []
        for estimator in estimators:
            numerator, denominator = estimator.row_terms(resampled)
            total = weight.sum() if denominator is None else weight @ denominator
            values.append(float(weight @ numerator / total))
        results.append(values)
        if progress is not None and (len(results) % progress.every == 0
                                     or len(results) == n_bootstrap):
            save_progress(progress.path, run, results=results,
                          generator=rng.bit_generator.state)
    low, high = np.quantile(results, [alpha / 2, 1 - alpha / 2], axis=0)
    return low, high, np.std(results, axis=0, ddof=1)


def make_estimator(spec: str | Estimator | SimulatorRollout, switch_tau: float = 100.0,
                   uniform_items: int | None = None) -> Estimator | SimulatorRollout:
    """An estimator by name (objects are returned as they are).

    Args:
        spec: a name of :data:`ALL_ESTIMATORS` or an estimator.
        switch_tau: threshold of ``switch-dr``.
        uniform_items: ``n`` if the logging policy is uniform without replacement over
            ``n`` items (selects the exact closed form of ``pi``).
    """
    if isinstance(spec, (Estimator, SimulatorRollout)):
        return spec
    if spec == "pi":
        return PseudoInverse(uniform_items=uniform_items)
    if spec == "sim":
        return SimulatorRollout()
    if spec == "switch-dr":
        return SwitchDoublyRobust(tau=switch_tau)
    if spec not in ESTIMATORS:
        raise ValueError(f"unknown estimator {spec!r}; choose from {ALL_ESTIMATORS}")
    return ESTIMATORS[spec]()


def evaluate(policy, logs, estimators: Sequence[str | Estimator | SimulatorRollout] | None = None,
             *, logging_policy=None, reward_model=None, num_items: int | None = None,
             history_length: int = 10, context_column: str | None = "true_state",
             n_bootstrap: int = 200, alpha: float = 0.05, seed: int = 0,
             deterministic: bool | None = None, n_target_samples: int = 8,
             switch_tau: float = 100.0, validate: bool = True,
             skip_unusable: bool | None = None,
             value_range: tuple[float, float] | None = None,
             bootstrap_progress: BootstrapProgress | None = None) -> pd.DataFrame:
    """Estimate a policy's value from logs with several estimators and bootstrap intervals.

    Args:
        policy: the target: any recgym Policy, or a stable-baselines3 model (``PPO.load(
            path)``, or one that has just learned), evaluated greedily unless
            ``deterministic=False``; its observations are rebuilt from the log as the env
            it was trained on showed them (see :func:`observation_for`).
        logs: DataFrame in the recgym log schema, ``LogDataset`` or path to a Parquet log.
        estimators: names from :data:`ALL_ESTIMATORS` or estimator objects; None runs
            every estimator the inputs allow (the others are listed with a note).
        logging_policy: the policy that wrote the log (for per-position propensities).
        reward_model: fitted reward model for dm / dr / switch-dr (default: counts).
        num_items: catalogue size.
        history_length: clicks in the rebuilt observations.
        context_column: column the reward model and count simulator condition on.
        n_bootstrap: bootstrap resamples of sessions.
        alpha: intervals cover ``1 - alpha``.
        seed: seeds bootstrap, target sampling and roll-outs.
        deterministic: declare the target deterministic.
        n_target_samples: target slates per row for the DM term of a stochastic target.
        switch_tau: weight threshold of switch-dr.
        validate: validate a DataFrame with recgym's log schema first.
        skip_unusable: list an estimator the inputs do not allow with a note instead of
            raising; default: skip when ``estimators`` is None, raise otherwise.
        value_range: ``(low, high)`` a reward per page view can take; default
            :func:`possible_range` of the logged rewards (``[0, 1]`` for clicks).
        bootstrap_progress: where the reward-model refits of the dm / dr / switch-dr
            bootstrap save their progress, so a killed run resumes (None: nowhere).

    Returns:
        One row per estimator: ``estimator``, ``estimate``, ``ci_low``, ``ci_high``,
        ``std_err``, ``estimand``, ``in_range`` (False: the estimate lies outside
        ``value_range``, so it cannot be the policy's value; its note starts with ``OUT OF
        RANGE``) and ``note``; ``attrs`` hold ``n_rows``, ``n_sessions``, ``alpha``,
        ``n_bootstrap``, ``value_range`` and ``observation_note`` (rebuilt observations that
        hold padding).

    Raises:
        MissingInputError: an estimator asked for by name cannot run on these inputs
            (e.g. the target gives no probabilities); the message says why.
    """
    if is_sb3_model(policy) and num_items is None and isinstance(logs, pd.DataFrame):
        # a bare log's items may not reach the model's catalogue
        num_items = as_policy(policy, slate_size=1).num_items
    data = prepare_logs(logs, num_items=num_items, history_length=history_length,
                        context_column=context_column, validate=validate)
    policy = as_policy(policy, slate_size=data.slates.shape[1], deterministic=deterministic)
    draws = sample_target_slates(policy, observation_for(policy, data), n_target_samples)
    inputs, missing = build_inputs(policy, data, logging_policy=logging_policy,
                                   reward_model=reward_model, deterministic=deterministic,
                                   target_draws=draws)
    explicit = estimators is not None if skip_unusable is None else not skip_unusable
    specs = list(estimators) if estimators is not None else list(ALL_ESTIMATORS)
    uniform = getattr(logging_policy, "uniform_over_items", None)
    resolved = [make_estimator(spec, switch_tau, uniform) for spec in specs]
    rows, numerators, denominators, positions = [], [], [], []
    for estimator in resolved:
        row = {"estimator": estimator.name, "estimate": np.nan, "ci_low": np.nan,
               "ci_high": np.nan, "std_err": np.nan, "estimand": "logged contexts", "note": ""}
        if isinstance(estimator, SimulatorRollout):
            row.update(estimand="on-policy")
            reason = estimator.cannot_run(policy, data)
            if reason:
                if explicit:
                    raise MissingInputError(f"estimator {estimator.name!r} {reason}")
                row["note"] = reason
                rows.append(row)
                continue
            result = estimator.run(policy, data, alpha=alpha, seed=seed)
            row.update({key: result[key] for key in ("estimate", "ci_low", "ci_high",
                                                     "std_err")})
            row["note"] = f"roll-out: {result['return']:.3f} clicks per session"
            rows.append(row)
            continue
        needed = list(estimator.requires)
        if isinstance(estimator, PseudoInverse) and estimator.uniform_items is not None:
            needed.append("target_inclusion")
        absent = [name for name in needed if getattr(inputs, name) is None]
        if absent:
            reason = f"needs {absent[0]}: {missing.get(absent[0], 'not available')}"
            if explicit:
                raise MissingInputError(f"estimator {estimator.name!r} {reason}")
            row["note"] = reason
            rows.append(row)
            continue
        numerator, denominator = estimator.row_terms(inputs)
        denominator = np.ones_like(numerator) if denominator is None else denominator
        row["estimate"] = float(numerator.sum() / denominator.sum()) if denominator.sum() > 0 \
            else np.nan
        if "target_prob" in estimator.requires:
            row["note"] = _weight_note(inputs.target_prob / inputs.pscore)
        if np.isnan(row["estimate"]):
            row["note"] = "all weights are zero: the log never shows what the target would"
        positions.append(len(rows))
        numerators.append(numerator)
        denominators.append(denominator)
        rows.append(row)
    if numerators:
        low, high, std_err = bootstrap_ratio(np.stack(numerators), np.stack(denominators),
                                             data.session, n_bootstrap=n_bootstrap,
                                             alpha=alpha, seed=seed)
        for position, lo, hi, se in zip(positions, low, high, std_err, strict=True):
            rows[position].update(ci_low=float(lo), ci_high=float(hi), std_err=float(se))
    model_based = [i for i, row in enumerate(rows) if row["estimator"] in
                   {e.name for e in resolved if isinstance(e, (DirectMethod, DoublyRobust,
                                                                SwitchDoublyRobust))}
                   and np.isfinite(row["estimate"])]
    if model_based and reward_model is None:
        if data.slates.size * len(draws) <= REFIT_BOOTSTRAP_LIMIT:
            chosen = [resolved[i] for i in model_based]
            low, high, std_err = _refit_bootstrap(chosen, inputs, data, draws,
                                                  n_bootstrap=n_bootstrap, alpha=alpha,
                                                  seed=seed, progress=bootstrap_progress)
            for i, lo, hi, se in zip(model_based, low, high, std_err, strict=True):
                rows[i].update(ci_low=float(lo), ci_high=float(hi), std_err=float(se))
        else:
            for i in model_based:
                rows[i]["note"] = ("interval holds the reward model fixed (log too large to "
                                   "refit it per resample)")
    low, high = possible_range(data.reward) if value_range is None else value_range
    for row in rows:
        row["in_range"] = not np.isfinite(row["estimate"]) or \
            low - RANGE_TOLERANCE <= row["estimate"] <= high + RANGE_TOLERANCE
        if not row["in_range"]:
            row["note"] = (f"OUT OF RANGE: {row['estimate']:.4g} is outside [{low:g}, {high:g}], "
                           "the possible reward per page view; do not use it"
                           + (f" ({row['note']})" if row["note"] else ""))
    table = pd.DataFrame(rows, columns=["estimator", "estimate", "ci_low", "ci_high",
                                        "std_err", "estimand", "in_range", "note"])
    table.attrs.update(n_rows=len(data.logs), n_sessions=int(len(np.unique(data.session))),
                       alpha=alpha, n_bootstrap=n_bootstrap, value_range=(low, high),
                       observation_note=_observation_note(policy, data))
    return table


RANGE_TOLERANCE = 1e-9
"""Estimates this far outside the value range are still in range (rounding)."""


def _weight_note(weight: np.ndarray) -> str:
    """Effective sample size of whole-slate weights, the first thing to check before IPS."""
    total = float(weight.sum())
    if total == 0:
        return "all slate weights are 0: no logged slate is one the target would show"
    ess = total ** 2 / float((weight ** 2).sum())
    return f"slate weights: effective sample size {ess:,.0f} of {len(weight):,}"


def format_table(table: pd.DataFrame) -> str:
    """The table as fixed-width text (what ``recgym ope`` prints)."""
    level = 100 * (1 - table.attrs.get("alpha", 0.05))
    header = (f"{'estimator':<10} {'estimate':>9} {'ci_low':>9} {'ci_high':>9} "
              f"{'std_err':>9}  {'estimand':<16} note")
    lines = [f"{table.attrs.get('n_rows', '?')} page views, {table.attrs.get('n_sessions', '?')}"
             f" sessions; {level:g}% bootstrap intervals", header, "-" * len(header)]
    for row in table.itertuples(index=False):
        lines.append(f"{row.estimator:<10} {row.estimate:>9.4f} {row.ci_low:>9.4f} "
                     f"{row.ci_high:>9.4f} {row.std_err:>9.4f}  {row.estimand:<16} {row.note}")
    if "in_range" in table.columns and not table["in_range"].all():
        low, high = table.attrs.get("value_range", (np.nan, np.nan))
        outside = table.loc[~table["in_range"].astype(bool), "estimator"]
        lines.append(f"! out of range [{low:g}, {high:g}]: {', '.join(outside)} cannot be a "
                     "reward per page view (weights or reward model broke down)")
    if table.attrs.get("observation_note"):
        lines.append(f"! {table.attrs['observation_note']}")
    return "\n".join(lines)


def plot_table(table: pd.DataFrame, path: str | os.PathLike, title: str = "") -> Path:
    """Estimates with their intervals as a horizontal error-bar plot, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    shown = table.dropna(subset=["estimate"])
    figure, axis = plt.subplots(figsize=(6.5, 0.45 * max(len(shown), 2) + 1.2))
    y = np.arange(len(shown))[::-1]
    lower = (shown["estimate"] - shown["ci_low"]).clip(lower=0).fillna(0)
    upper = (shown["ci_high"] - shown["estimate"]).clip(lower=0).fillna(0)
    colors = ["tab:orange" if e == "on-policy" else "tab:blue" for e in shown["estimand"]]
    for y_i, x_i, lo, hi, color in zip(y, shown["estimate"], lower, upper, colors, strict=True):
        axis.errorbar([x_i], [y_i], xerr=[[lo], [hi]], fmt="o", color=color, capsize=3)
    axis.set_yticks(y, shown["estimator"])
    axis.set_xlabel("estimated reward per page view (blue: logged contexts, orange: on-policy)")
    axis.set_title(title or "off-policy estimates")
    save_figure(figure, path, dpi=100)
    return path

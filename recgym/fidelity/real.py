"""Simulator kinds scored on real logs, where the truth is a second log.

On real data no world can be rolled out, so a simulator is judged by how it predicts a
log it was not fitted on: another logging policy's page views (Open Bandit: fitted on
Thompson-sampling logs, asked for the uniform-random policy's click rate), a random
exposure (Coat: fitted on self-selected ratings, asked about randomly shown coats), or
held-out users. :func:`score_on_logs` fits a kind on one log and scores its
``page_view_probabilities`` on the other; :func:`score_probabilities` scores any
outcome probabilities, so a baseline (:func:`uniform_probabilities`,
:func:`popularity_probabilities`) is scored the same way.

Intervals resample the test log's sessions. With ``refits``, the predicted click rate's
interval (and the relative error's) also takes one fit on a session resample of the
fitting log per draw, so that the uncertainty of the fit (large when the fitting log
holds few clicks) is in it; likelihood, calibration, AUC and Prec@1 judge the one fitted
model, so their intervals resample the test log only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recgym.data.slates import (
    SessionIndex,
    bootstrap_sessions,
    first_occurrence,
    logged_slates,
    outcomes,
    sorted_logs,
)
from recgym.fidelity.kinds import get_kind
from recgym.fidelity.metrics import (
    ALPHA,
    Interval,
    expected_calibration_error,
    outcome_log_likelihood,
)
from recgym.fidelity.worlds import WorldInfo
from recgym.simulators.metrics import roc_auc

METRICS = ("predicted_rate", "observed_rate", "relative_error", "log_likelihood", "ece",
           "auc", "prec_at_1")
# The predicted rate is an answer about the other log, so its interval carries the fit's
# uncertainty; the other metrics judge the fitted model itself on the test page views.
REFIT_METRICS = ("predicted_rate", "relative_error")


@dataclass
class RealScore:
    """How one set of outcome probabilities predicts a test log.

    Attributes:
        name: kind or baseline name.
        metrics: ``METRICS`` name -> :class:`Interval` (NaN where it does not apply:
            ``auc`` needs clicked and unclicked page views, ``prec_at_1`` slates of more
            than one item).
        observed_inside: the observed click rate lies in the predicted rate's interval.
        fit_seconds: wall time of the main fit (0 for a baseline).
        refits: fits on resampled fitting logs behind the intervals (0: test resampling only).
    """

    name: str
    metrics: dict[str, Interval]
    observed_inside: bool
    fit_seconds: float = 0.0
    refits: int = 0
    notes: list[str] = field(default_factory=list)


def uniform_probabilities(test_logs: pd.DataFrame) -> np.ndarray:
    """``1 / (k + 1)`` for each slate position and for no click, ``(N, k + 1)``."""
    k = logged_slates(test_logs).shape[1]
    return np.full((len(test_logs), k + 1), 1.0 / (k + 1))


def popularity_probabilities(fit_logs: pd.DataFrame, test_logs: pd.DataFrame,
                             num_items: int) -> np.ndarray:
    """The fitting log's no-click share, the rest split by the shown items' click counts.

    ``P(no click)`` is the fitting log's share of pages without a click (add-half
    smoothing); the click mass goes to the distinct shown items in proportion to
    ``clicks in the fitting log + 1``. On one-item slates this predicts the fitting
    log's click rate for every page: the answer of "the new policy clicks like the old".
    """
    fit_logs, test_logs = sorted_logs(fit_logs), sorted_logs(test_logs)
    fit_outcome = outcomes(fit_logs)
    k_fit = logged_slates(fit_logs).shape[1]
    no_click = ((fit_outcome == k_fit).sum() + 0.5) / (len(fit_outcome) + 1.0)
    clicked = fit_logs["click"].to_numpy(np.int64)
    counts = np.bincount(clicked[clicked >= 0], minlength=num_items) + 1.0
    slates = logged_slates(test_logs)
    weight = counts[slates] * first_occurrence(slates)
    share = weight / weight.sum(1, keepdims=True)
    return np.concatenate([(1.0 - no_click) * share,
                           np.full((len(slates), 1), no_click)], axis=1)


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    """:func:`~recgym.simulators.metrics.roc_auc`, NaN when one class is missing."""
    return roc_auc(label, score) if 0 < label.sum() < len(label) else float("nan")


def _top1_hits(probabilities: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """Per page view with a click: chance that the clicked position ranks first (ties random)."""
    k = probabilities.shape[1] - 1
    scores = probabilities[:, :k]
    chosen = scores[np.arange(len(outcome)), np.minimum(outcome, k - 1)][:, None]
    above = (scores > chosen).sum(1)
    equal = (scores == chosen).sum(1)
    return np.where(above == 0, 1.0 / equal, 0.0)


def _statistics(probabilities: np.ndarray, outcome: np.ndarray) -> dict[str, float]:
    """Every metric of ``METRICS`` on one (possibly resampled) set of page views."""
    k = probabilities.shape[1] - 1
    predicted = 1.0 - probabilities[:, k]
    clicked = (outcome < k).astype(np.float64)
    observed = float(clicked.mean())
    has_click = outcome < k
    return {
        "predicted_rate": float(predicted.mean()),
        "observed_rate": observed,
        "relative_error": abs(float(predicted.mean()) - observed) / max(observed, 1e-12),
        "log_likelihood": float(outcome_log_likelihood(probabilities, outcome).mean()),
        "ece": expected_calibration_error(predicted, clicked),
        "auc": _auc(predicted, clicked),
        "prec_at_1": (float(_top1_hits(probabilities[has_click], outcome[has_click]).mean())
                      if k > 1 and has_click.any() else float("nan")),
    }


def _check_probabilities(probabilities: np.ndarray, test_logs: pd.DataFrame,
                         argument: str) -> np.ndarray:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    k = logged_slates(test_logs).shape[1]
    if probabilities.shape != (len(test_logs), k + 1):
        raise ValueError(f"{argument} must be (N, k + 1) = ({len(test_logs)}, {k + 1}) for "
                         f"the test log, got {probabilities.shape}")
    return probabilities


def score_probabilities(name: str, probabilities: np.ndarray, test_logs: pd.DataFrame, *,
                        refit_probabilities: Sequence[np.ndarray] = (),
                        n_bootstrap: int = 200, seed: int = 0, alpha: float = ALPHA
                        ) -> RealScore:
    """Score outcome probabilities of the test log's page views, with bootstrap intervals.

    Args:
        name: row name (kind or baseline).
        probabilities: float ``(N, k + 1)`` in ``sorted_logs(test_logs)`` order: the click
            on each slate position, then no click.
        test_logs: the log whose outcomes are predicted.
        refit_probabilities: the same from fits on session resamples of the fitting log;
            draw ``b`` of the predicted rate's interval uses refit ``b mod len``.
        n_bootstrap: resamples of the test log's sessions.
        seed: seed of the resampling.
        alpha: 1 - coverage.
    """
    test_logs = sorted_logs(test_logs)
    probabilities = _check_probabilities(probabilities, test_logs, "probabilities")
    refits = [_check_probabilities(p, test_logs, "refit_probabilities")
              for p in refit_probabilities]
    outcome = outcomes(test_logs)
    index = SessionIndex(test_logs["session_id"].to_numpy())
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {metric: [] for metric in METRICS}
    for b in range(n_bootstrap):
        rows = index.rows(rng.integers(0, len(index), len(index)))
        found = _statistics(probabilities[rows], outcome[rows])
        if refits:
            refit = _statistics(refits[b % len(refits)][rows], outcome[rows])
            found.update({metric: refit[metric] for metric in REFIT_METRICS})
        for metric, value in found.items():
            draws[metric].append(value)
    point = _statistics(probabilities, outcome)
    result = {}
    for metric in METRICS:
        values = np.asarray(draws[metric])
        values = values[np.isfinite(values)]
        low, high = (np.quantile(values, [alpha / 2, 1 - alpha / 2]) if len(values)
                      and np.isfinite(point[metric]) else (np.nan, np.nan))
        result[metric] = Interval(point[metric], float(low), float(high))
    inside = result["predicted_rate"].contains(point["observed_rate"])
    return RealScore(name, result, inside, refits=len(refits))


def score_on_logs(kind: str | Callable[[pd.DataFrame, WorldInfo], object],
                  fit_logs: pd.DataFrame, test_logs: pd.DataFrame, info: WorldInfo, *,
                  options: dict | None = None, refits: int = 0,
                  refit_budget: float | None = None, n_bootstrap: int = 200,
                  seed: int = 0) -> RealScore:
    """Fit a simulator kind on ``fit_logs`` and score how it predicts ``test_logs``.

    Args:
        kind: a kind name (:data:`recgym.fidelity.KINDS`) or a factory ``fit(logs, info)``
            whose result has ``page_view_probabilities(logs)``.
        fit_logs: the log the kind is fitted on.
        test_logs: the log it predicts (another policy, a random exposure, held-out users).
        info: catalogue size, slate size, history length and fit seed.
        options: keyword options of the kind (e.g. ``{"epochs": 2}``).
        refits: extra fits on session resamples of ``fit_logs`` behind the intervals.
        refit_budget: seconds the refits may take, estimated as ``refits`` times the main
            fit's time; over it there are none (None: no limit).
        n_bootstrap: resamples of the test log's sessions.
        seed: seed of the resampling and of the refits' resamples and fits.
    """
    if isinstance(refits, bool) or not isinstance(refits, int) or refits < 0:
        raise ValueError(f"refits must be an integer >= 0, got {refits!r}")
    if isinstance(kind, str):
        name, fit = kind, get_kind(kind, **(options or {}))
    elif callable(kind):
        name, fit = getattr(kind, "kind", getattr(kind, "__name__", "simulator")), kind
    else:
        raise TypeError(f"kind must be a kind name or a fit(logs, info) callable, got "
                        f"{type(kind).__name__}")
    fit_logs, test_logs = sorted_logs(fit_logs), sorted_logs(test_logs)
    started = time.perf_counter()
    fitted = fit(fit_logs, info)
    seconds = time.perf_counter() - started
    if not hasattr(fitted, "page_view_probabilities"):
        raise TypeError(f"the fitted {name!r} has no page_view_probabilities(logs)")
    probabilities = fitted.page_view_probabilities(test_logs)
    if refit_budget is not None and seconds * refits > refit_budget:
        refits = 0
    refit_probabilities = []
    for r in range(refits):
        resample = bootstrap_sessions(fit_logs, seed + 1 + r)
        member = fit(resample, WorldInfo(info.num_items, info.slate_size,
                                         info.history_length, info.seed + 1 + r))
        refit_probabilities.append(member.page_view_probabilities(test_logs))
    result = score_probabilities(name, probabilities, test_logs,
                                 refit_probabilities=refit_probabilities,
                                 n_bootstrap=n_bootstrap, seed=seed)
    result.fit_seconds = seconds
    return result

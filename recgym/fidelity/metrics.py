"""Fidelity metrics: does a simulator rank and value policies as the world does?

Value metrics compare per-policy values measured in the world and in the simulator:
rank agreement (Kendall tau, Spearman), the median relative value error, the regret of
the simulator's favourite, and transfer (a policy trained inside the simulator, deployed
in the world). Their intervals come from a parametric bootstrap of the roll-out noise:
each value is redrawn from a normal with its mean and standard error, the metric is
recomputed, and the 2.5% / 97.5% quantiles are reported. They do not include the
variance of the fit itself (another log, another seed): the benchmark repeats seeds for
that.

Log metrics score a simulator's click probabilities on held-out page views: a
reliability table with the expected calibration error, and the log-likelihood per page
view of the outcome (which position was clicked, or none). Their intervals come from
resampling whole sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from recgym.data.slates import SessionIndex

ALPHA = 0.05


@dataclass(frozen=True)
class Interval:
    """A point estimate with a (1 - alpha) interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def contains(self, x: float) -> bool:
        """``x`` lies in ``[low, high]``."""
        return self.low <= x <= self.high


def _as_float_arrays(*arrays) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64) for a in arrays]
    if any(a.shape != out[0].shape or a.ndim != 1 for a in out):
        raise ValueError(f"value arrays must be 1-d and of one length, got shapes "
                         f"{[a.shape for a in out]}")
    return out


def kendall_tau(true: np.ndarray, simulated: np.ndarray) -> float:
    """Kendall's tau-b between true and simulated policy values (1: same ranking)."""
    true, simulated = _as_float_arrays(true, simulated)
    return float(stats.kendalltau(true, simulated).statistic)


def spearman(true: np.ndarray, simulated: np.ndarray) -> float:
    """Spearman's rank correlation between true and simulated policy values."""
    true, simulated = _as_float_arrays(true, simulated)
    return float(stats.spearmanr(true, simulated).statistic)


def median_relative_error(true: np.ndarray, simulated: np.ndarray) -> float:
    """Median over policies of ``|simulated - true| / |true|``."""
    true, simulated = _as_float_arrays(true, simulated)
    return float(np.median(np.abs(simulated - true) / np.maximum(np.abs(true), 1e-12)))


def regret(true: np.ndarray, simulated: np.ndarray) -> float:
    """True value lost by deploying the simulator's best policy, as a share of the true best.

    ``(max true - true[argmax simulated]) / max true``; 0 when the simulator picks the
    truly best policy.
    """
    true, simulated = _as_float_arrays(true, simulated)
    best = true.max()
    return float((best - true[int(np.argmax(simulated))]) / max(abs(best), 1e-12))


def transfer(value_trained_in_simulator: float, value_trained_in_world: float) -> float:
    """True value of a policy trained in the simulator, as a share of one trained in the world."""
    return float(value_trained_in_simulator / max(abs(value_trained_in_world), 1e-12))


VALUE_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "kendall_tau": kendall_tau,
    "spearman": spearman,
    "median_relative_error": median_relative_error,
    "regret": regret,
}


def _quantiles(draws: np.ndarray, alpha: float) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def value_metrics(true_mean: np.ndarray, true_se: np.ndarray, sim_mean: np.ndarray,
                  sim_se: np.ndarray, *, n_bootstrap: int = 1000, seed: int = 0,
                  alpha: float = ALPHA) -> dict[str, Interval]:
    """Every value metric with a parametric-bootstrap interval (see the module docstring).

    Args:
        true_mean: per-policy value in the world.
        true_se: its standard error.
        sim_mean: per-policy value in the simulator.
        sim_se: its standard error.
        n_bootstrap: redraws.
        seed: seed of the redraws.
        alpha: 1 - coverage of the intervals.
    """
    true_mean, true_se, sim_mean, sim_se = _as_float_arrays(true_mean, true_se, sim_mean, sim_se)
    if len(true_mean) < 2:
        raise ValueError(f"value metrics compare at least 2 policies, got {len(true_mean)}")
    rng = np.random.default_rng(seed)
    shape = (n_bootstrap, len(true_mean))
    true_draws = true_mean + true_se * rng.standard_normal(shape)
    sim_draws = sim_mean + sim_se * rng.standard_normal(shape)
    result = {}
    for name, metric in VALUE_METRICS.items():
        draws = np.array([metric(t, s) for t, s in zip(true_draws, sim_draws, strict=True)])
        result[name] = Interval(metric(true_mean, sim_mean), *_quantiles(draws, alpha))
    return result


def transfer_interval(sim_trained: tuple[float, float], world_trained: tuple[float, float], *,
                      n_bootstrap: int = 1000, seed: int = 0, alpha: float = ALPHA) -> Interval:
    """:func:`transfer` with a parametric-bootstrap interval; arguments are (mean, se)."""
    rng = np.random.default_rng(seed)
    numerator = sim_trained[0] + sim_trained[1] * rng.standard_normal(n_bootstrap)
    denominator = world_trained[0] + world_trained[1] * rng.standard_normal(n_bootstrap)
    draws = numerator / np.maximum(np.abs(denominator), 1e-12)
    return Interval(transfer(sim_trained[0], world_trained[0]), *_quantiles(draws, alpha))


def reliability_table(predicted: np.ndarray, observed: np.ndarray, n_bins: int = 10
                      ) -> pd.DataFrame:
    """Page views binned by predicted click probability: mean prediction vs click rate.

    Args:
        predicted: float ``(N,)``, predicted probability that the page gets a click.
        observed: ``(N,)``, 1 if it did.
        n_bins: equal-width bins over [0, 1].

    Returns:
        One row per non-empty bin: ``bin_low``, ``bin_high``, ``count``, ``predicted``,
        ``observed``.
    """
    predicted, observed = _as_float_arrays(predicted, observed)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(predicted, edges[1:-1]), 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    mean_predicted = np.bincount(index, predicted, n_bins) / np.maximum(count, 1)
    mean_observed = np.bincount(index, observed, n_bins) / np.maximum(count, 1)
    table = pd.DataFrame({"bin_low": edges[:-1], "bin_high": edges[1:], "count": count,
                          "predicted": mean_predicted, "observed": mean_observed})
    return table[table["count"] > 0].reset_index(drop=True)


def expected_calibration_error(predicted: np.ndarray, observed: np.ndarray,
                               n_bins: int = 10) -> float:
    """Count-weighted mean ``|predicted - observed|`` over the reliability table's bins."""
    table = reliability_table(predicted, observed, n_bins)
    weights = table["count"] / table["count"].sum()
    return float((weights * (table["predicted"] - table["observed"]).abs()).sum())


def outcome_log_likelihood(probabilities: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """Log-probability of each page view's outcome, float ``(N,)``.

    Args:
        probabilities: float ``(N, k + 1)``: the click on each slate position, then none.
        outcome: int ``(N,)``: the clicked position, ``k`` for none.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    outcome = np.asarray(outcome, dtype=np.int64)
    if probabilities.ndim != 2 or len(probabilities) != len(outcome):
        raise ValueError(f"probabilities must be (N, k + 1) with N = len(outcome) = "
                         f"{len(outcome)}, got {probabilities.shape}")
    picked = probabilities[np.arange(len(outcome)), outcome]
    return np.log(np.clip(picked, 1e-12, 1.0))


def session_bootstrap(per_row: dict[str, np.ndarray], sessions: np.ndarray,
                      statistic: Callable[[dict[str, np.ndarray]], float], *,
                      n_bootstrap: int = 200, seed: int = 0, alpha: float = ALPHA) -> Interval:
    """``statistic`` of per-page-view arrays, with an interval from resampling sessions.

    Args:
        per_row: arrays with one entry per page view.
        sessions: session id of each page view.
        statistic: maps (a resample of) ``per_row`` to a number.
        n_bootstrap: resamples.
        seed: seed of the resampling.
        alpha: 1 - coverage.
    """
    index = SessionIndex(sessions)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_bootstrap):
        rows = index.rows(rng.integers(0, len(index), len(index)))
        draws.append(statistic({key: value[rows] for key, value in per_row.items()}))
    return Interval(statistic(per_row), *_quantiles(np.asarray(draws), alpha))

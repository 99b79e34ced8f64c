"""Scoring simulator kinds on real logs (recgym.fidelity.real, benchmarks/fidelity_real.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recgym.data.slates import outcomes, sorted_logs
from recgym.fidelity import WorldInfo
from recgym.fidelity.real import (
    popularity_probabilities,
    score_on_logs,
    score_probabilities,
    uniform_probabilities,
)

REPO = Path(__file__).resolve().parent.parent


def hand_log(slates: list[list[int]], clicks: list[int], sessions: list[int]) -> pd.DataFrame:
    """Page views in the log schema (steps numbered within each session)."""
    frame = pd.DataFrame({"session_id": sessions, "slate": [np.array(s) for s in slates],
                          "click": clicks})
    frame["step"] = frame.groupby("session_id").cumcount()
    return frame[["session_id", "step", "slate", "click"]]


@pytest.fixture
def slate_log() -> pd.DataFrame:
    """Six page views of three items in three sessions: four clicks, two pages without."""
    return hand_log([[0, 1, 2], [1, 2, 3], [2, 3, 0], [0, 1, 2], [3, 1, 0], [1, 0, 3]],
                    [1, -1, 3, 0, -1, 3], [0, 0, 1, 1, 2, 2])


def one_hot(logs: pd.DataFrame) -> np.ndarray:
    """Probability 1 on what happened: the perfect predictor."""
    outcome = outcomes(sorted_logs(logs))
    k = len(logs["slate"].iloc[0])
    return np.eye(k + 1)[outcome]


def test_perfect_predictor_predicts_the_observed_rate(slate_log):
    score = score_probabilities("perfect", one_hot(slate_log), slate_log, n_bootstrap=50)
    m = score.metrics
    assert m["observed_rate"].value == pytest.approx(4 / 6)
    assert m["predicted_rate"].value == pytest.approx(m["observed_rate"].value)
    assert m["relative_error"].value == pytest.approx(0.0)
    assert m["log_likelihood"].value == pytest.approx(0.0)
    assert m["ece"].value == pytest.approx(0.0)
    assert m["auc"].value == pytest.approx(1.0)
    assert m["prec_at_1"].value == pytest.approx(1.0)
    assert score.observed_inside
    # session resamples move the observed rate, and the prediction with it
    assert m["observed_rate"].low < m["observed_rate"].high


def test_uniform_predictor_gets_the_uniform_log_likelihood(slate_log):
    score = score_probabilities("uniform", uniform_probabilities(slate_log), slate_log,
                                n_bootstrap=50)
    m = score.metrics
    assert m["log_likelihood"].value == pytest.approx(np.log(1 / 4))
    assert m["log_likelihood"].low == pytest.approx(np.log(1 / 4))
    assert m["predicted_rate"].value == pytest.approx(3 / 4)
    assert m["relative_error"].value == pytest.approx((3 / 4 - 4 / 6) / (4 / 6))
    # every item ties: the clicked one ranks first with chance 1/3
    assert m["prec_at_1"].value == pytest.approx(1 / 3)
    assert m["auc"].value == pytest.approx(0.5)


def test_popularity_baseline_by_hand(slate_log):
    fit = hand_log([[0, 1], [0, 1], [1, 2], [2, 3]], [0, 0, -1, 3], [0, 1, 2, 3])
    test = hand_log([[0, 3], [1, 2]], [0, -1], [0, 1])
    probabilities = popularity_probabilities(fit, test, num_items=4)
    no_click = (1 + 0.5) / (4 + 1)
    # clicks + 1: item 0 -> 3, item 1 -> 1, item 2 -> 1, item 3 -> 2
    expected = np.array([[3 / 5, 2 / 5], [1 / 2, 1 / 2]]) * (1 - no_click)
    np.testing.assert_allclose(probabilities[:, :2], expected)
    np.testing.assert_allclose(probabilities[:, 2], no_click)
    # a repeated item gets its click mass once
    repeated = popularity_probabilities(fit, hand_log([[0, 0]], [0], [0]), num_items=4)
    np.testing.assert_allclose(repeated[0], [1 - no_click, 0.0, no_click])


def test_one_item_slates_have_no_prec_at_1():
    log = hand_log([[0], [1], [2], [0]], [0, -1, -1, 0], [0, 1, 2, 3])
    score = score_probabilities("perfect", one_hot(log), log, n_bootstrap=20)
    assert np.isnan(score.metrics["prec_at_1"].value)
    assert score.metrics["auc"].value == pytest.approx(1.0)


class Perfect:
    """A 'fitted simulator' that knows every outcome of the log it is asked about."""

    def page_view_probabilities(self, logs: pd.DataFrame) -> np.ndarray:
        """Probability 1 on each page view's outcome."""
        return one_hot(logs)


def test_score_on_logs_with_a_fit_factory_and_refits(slate_log):
    calls = []

    def fit(logs: pd.DataFrame, info: WorldInfo) -> Perfect:
        calls.append(info.seed)
        return Perfect()

    score = score_on_logs(fit, slate_log, slate_log, WorldInfo(4, 3, 10, 0), refits=3,
                          n_bootstrap=30)
    assert calls == [0, 1, 2, 3]
    assert score.refits == 3 and score.fit_seconds >= 0
    assert score.metrics["relative_error"].value == pytest.approx(0.0)
    assert score.observed_inside
    # no time for refits: the interval resamples the test log only
    calls.clear()
    score = score_on_logs(fit, slate_log, slate_log, WorldInfo(4, 3, 10, 0), refits=3,
                          refit_budget=0.0, n_bootstrap=30)
    assert calls == [0] and score.refits == 0


def test_score_on_logs_fits_a_kind_by_name(slate_log):
    score = score_on_logs("item-rate", slate_log, slate_log, WorldInfo(4, 3, 10, 0),
                          n_bootstrap=20)
    # item-rate reproduces the fitting log's no-click share on the fitting log itself
    assert score.metrics["predicted_rate"].value == pytest.approx(4 / 6, abs=1e-6)
    assert score.name == "item-rate"


def test_errors_name_the_argument(slate_log):
    with pytest.raises(ValueError, match="probabilities must be"):
        score_probabilities("bad", np.zeros((6, 3)), slate_log)
    with pytest.raises(ValueError, match="refits must be"):
        score_on_logs("count", slate_log, slate_log, WorldInfo(4, 3, 10, 0), refits=-1)
    with pytest.raises(TypeError, match="kind must be"):
        score_on_logs(3, slate_log, slate_log, WorldInfo(4, 3, 10, 0))
    with pytest.raises(ValueError, match="unknown simulator kind"):
        score_on_logs("nope", slate_log, slate_log, WorldInfo(4, 3, 10, 0))


def test_benchmark_runs_in_a_tiny_configuration(tmp_path, shared_data):
    out = tmp_path / "fidelity_real.md"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "fidelity_real.py"),
                    "--root", str(shared_data), "--data", "coat", "open-bandit", "--kinds", "count",
                    "item-rate", "--bootstrap", "5", "--refits", "1", "--out", str(out)],
                   check=True, env=env, cwd=tmp_path, capture_output=True, timeout=300)
    text = out.read_text()
    assert "## Coat: fit on self-selected ratings, predict random exposure" in text
    assert "## Open Bandit, campaign all: fit on bts, predict random" in text
    assert "| item-rate |" in text and "| baseline: popularity |" in text
    # Coat's test part: 4,640 randomly exposed ratings, 18.5% of them >= 4
    assert "| 0.185 [" in text


def test_memory_guard_refuses_the_pair_table_not_the_batched_gan_kinds(slate_log,
                                                                       benchmark_module):
    """ml-latest-small's shape: logistic's item x item table is refused, the GAN kinds fit.

    One-hot items are row lookups, so only GAN-PW's state (4 x 9,742 floats a page view)
    grows with the catalogue: a batch of 20,000 is refused, GAN-LSTM's is not.
    """
    fidelity_real = benchmark_module("fidelity_real")
    info = WorldInfo(num_items=9742, slate_size=40, history_length=10, seed=0)
    case = fidelity_real.Case("ml-latest-small", "", slate_log, slate_log, info)
    assert "GiB" in fidelity_real.memory_reason("logistic", case, {})
    for kind in ("gan-user-pw", "gan-user-lstm"):
        assert fidelity_real.memory_reason(kind, case, {}) is None
    assert "38,968 float32" in fidelity_real.memory_reason("gan-user-pw", case,
                                                           {"batch_size": 20_000})
    assert fidelity_real.memory_reason("gan-user-lstm", case, {"batch_size": 20_000}) is None
    assert fidelity_real.memory_reason("choice-continuation", case, {}) is None


def test_oldest_first_reference_ranks_by_release_year(benchmark_module):
    """The display-set artifact row: oldest movie first, unknown years last, no-click pages out."""
    oldest_first_precision = benchmark_module("fidelity_real").oldest_first_precision
    year = np.array([1990.0, 2001.0, 1975.0, np.nan, 2001.0])
    logs = hand_log([[0, 1, 2], [3, 1, 0], [1, 4, 3], [0, 1, 2]], [2, 1, 3, -1], [0, 0, 1, 1])
    # page 1: oldest 2 clicked; page 2: oldest 0, 1 clicked; page 3: tie 1/4, 3 (unknown) clicked
    assert oldest_first_precision(logs, year) == pytest.approx(1 / 3)
    hits = [oldest_first_precision(hand_log([[1, 4]], [4], [0]), year, seed) for seed in range(200)]
    assert 0.35 < np.mean(hits) < 0.65  # equal years: a fair coin

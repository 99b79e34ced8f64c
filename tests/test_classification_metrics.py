"""F1 and AUC against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from recgym.simulators.metrics import f1_score, roc_auc


def test_auc_hand_cases():
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert roc_auc(np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.3, 0.4])) == 0.0
    # one positive above one of two negatives, tied with the other: (1 + 0.5) / 2
    assert roc_auc(np.array([0, 0, 1]), np.array([0.1, 0.5, 0.5])) == 0.75
    # pairwise definition on random data
    rng = np.random.default_rng(0)
    labels, scores = rng.integers(0, 2, 200), rng.integers(0, 5, 200).astype(float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (
        len(pos) * len(neg))
    assert roc_auc(labels, scores) == pytest.approx(pairwise)


def test_f1_hand_cases():
    # precision 2/3, recall 2/4 -> F1 = 2 * (2/3 * 1/2) / (2/3 + 1/2) = 4/7
    labels = np.array([1, 1, 1, 1, 0, 0])
    predictions = np.array([1, 1, 0, 0, 1, 0])
    assert f1_score(labels, predictions) == pytest.approx(4 / 7)
    assert f1_score(labels, labels) == 1.0
    assert f1_score(np.array([0, 1, 2]), np.array([0, 1, 2]), average="macro") == 1.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: roc_auc(np.ones(3), np.arange(3.0)), "both classes"),
        (lambda: roc_auc(np.array([0, 1]), np.arange(3.0)), "equal length"),
        (lambda: f1_score(np.zeros(2), np.zeros(3)), "differ"),
        (lambda: f1_score(np.zeros(2), np.zeros(2), average="micro"), "average"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()

"""Recall@R / NDCG@R / Precision@k against hand-computed cases (RaCT appendix E.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recgym.evaluation.ranking import (
    evaluate_scores,
    ndcg_at,
    precision_at,
    rank_top,
    ranking_metrics,
    recall_at,
    summarize,
)


def d(r: int) -> float:
    """Discount of rank r (1-based)."""
    return 1.0 / math.log2(r + 1)


def test_perfect_and_worst_ranking():
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    good = torch.tensor([[1, 1, 0, 0, 0, 0]])
    bad = torch.tensor([[0, 0, 0, 0, 1, 1]])
    assert ndcg_at(scores, good, 2).item() == pytest.approx(1.0)
    assert recall_at(scores, good, 2).item() == pytest.approx(1.0)
    assert ndcg_at(scores, bad, 2).item() == 0.0
    assert recall_at(scores, bad, 2).item() == 0.0
    # worst ranking but a cut-off reaching every item: ranks 5 and 6
    expected = (d(5) + d(6)) / (d(1) + d(2))
    assert ndcg_at(scores, bad, 6).item() == pytest.approx(expected)
    assert recall_at(scores, bad, 6).item() == pytest.approx(1.0)


def test_hand_computed_mixed_case():
    scores = torch.tensor([[0.9, 0.1, 0.8, 0.3, 0.7]])  # ranking: 0, 2, 4, 3, 1
    target = torch.tensor([[0, 1, 1, 0, 1]])  # hits at ranks 2, 3, 5
    assert recall_at(scores, target, 3).item() == pytest.approx(2 / 3)
    assert ndcg_at(scores, target, 3).item() == pytest.approx(
        (d(2) + d(3)) / (d(1) + d(2) + d(3)))
    assert precision_at(scores, target, 2).item() == pytest.approx(0.5)


def test_fewer_targets_than_cutoff():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]])
    target = torch.tensor([[0, 1, 0, 0, 0]])
    # Recall normalises by min(R, |H0|) = 1, NDCG's ideal DCG has one term.
    assert recall_at(scores, target, 4).item() == pytest.approx(1.0)
    assert ndcg_at(scores, target, 4).item() == pytest.approx(d(2) / d(1))
    assert precision_at(scores, target, 4).item() == pytest.approx(0.25)


def test_ties_go_to_lower_item_id():
    scores = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert rank_top(scores, 2).tolist() == [[0, 1]]
    target = torch.tensor([[0, 0, 1, 0]])
    # item 2 ties with 0 and 1 but comes third
    assert recall_at(scores, target, 2).item() == 0.0
    assert ndcg_at(scores, target, 3).item() == pytest.approx(d(3))
    big = torch.zeros(3, 50)
    big[:, 7] = 1.0
    assert rank_top(big, 3).tolist() == [[7, 0, 1]] * 3


def test_fold_in_items_are_excluded():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6]])
    fold_in = torch.tensor([[1, 1, 0, 0]])
    target = torch.tensor([[0, 0, 0, 1]])
    assert recall_at(scores, target, 2, exclude=fold_in).item() == pytest.approx(1.0)
    assert ndcg_at(scores, target, 2, exclude=fold_in).item() == pytest.approx(d(2))


def test_empty_target_is_nan_and_skipped():
    scores = torch.rand(2, 5, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([[0, 0, 0, 0, 0], [1, 0, 0, 0, 0]])
    values = ndcg_at(scores, target, 3)
    assert math.isnan(values[0].item()) and not math.isnan(values[1].item())
    s = summarize(values)
    assert s.n_users == 1 and s.n_skipped == 1


def test_batched_matches_per_user_and_sparse_inputs():
    gen = torch.Generator().manual_seed(1)
    scores = torch.rand(7, 30, generator=gen)
    target = (torch.rand(7, 30, generator=gen) < 0.2).int()
    target[0] = 0
    target[0, 3] = 1
    fold_in = ((torch.rand(7, 30, generator=gen) < 0.2) & (target == 0)).int()
    all_m = ranking_metrics(scores, sp.csr_matrix(target.numpy()), sp.csr_matrix(fold_in.numpy()),
                            ("recall@5", "ndcg@10", "precision@3"))
    for i in range(7):
        one = ranking_metrics(scores[i:i + 1], target[i:i + 1], fold_in[i:i + 1],
                              ("recall@5", "ndcg@10", "precision@3"))
        for k in one:
            torch.testing.assert_close(one[k][0], all_m[k][i], equal_nan=True)
    torch.testing.assert_close(all_m["ndcg@10"], ndcg_at(scores, target, 10, fold_in),
                               equal_nan=True)


def test_evaluate_scores_in_minibatches():
    rng = np.random.default_rng(0)
    target = sp.random(23, 40, density=0.15, format="csr", random_state=1)
    target.data[:] = 1
    fold_in = sp.csr_matrix((rng.random((23, 40)) < 0.1) & (target.toarray() == 0), dtype=float)
    weights = torch.tensor(rng.random(40), dtype=torch.float32)

    def score(block):
        return torch.as_tensor(block.toarray(), dtype=torch.float32) + weights

    a = evaluate_scores(score, fold_in, target, ("ndcg@100", "recall@20"), batch_size=5)
    b = evaluate_scores(score, fold_in, target, ("ndcg@100", "recall@20"), batch_size=100)
    np.testing.assert_allclose(a["ndcg@100"], b["ndcg@100"])
    assert a["recall@20"].shape == (23,)
    assert np.nanmax(a["ndcg@100"]) <= 1.0 + 1e-12


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown metric"):
        ranking_metrics(torch.rand(1, 3), torch.ones(1, 3), metrics=("map@3",))
    with pytest.raises(ValueError, match="shape"):
        recall_at(torch.rand(2, 3), torch.ones(2, 4), 1)
    with pytest.raises(ValueError, match="NaN"):
        rank_top(torch.tensor([[math.nan, 1.0]]), 1)

"""Top-R ranking metrics: Recall@R, NDCG@R (RaCT appendix E.2, eq. 12-13) and Precision@k.

For a user with held-out (target) set ``H0`` and the item ``m(r)`` ranked at position ``r``
once the user's fold-in items are removed from the ranking (RaCT appendix A:
``x_bar = pi * (1 - x_h)``):

* ``DCG@R = sum_{r<=R} (2^{[m(r) in H0]} - 1) / log2(r + 1)``, divided by its best possible
  value ``sum_{r <= min(R, |H0|)} 1 / log2(r + 1)`` gives NDCG@R (eq. 12; the log base cancels).
* ``Recall@R = sum_{r<=R} [m(r) in H0] / min(R, |H0|)`` (eq. 13).
* ``Precision@k = sum_{r<=k} [m(r) in H0] / k``.

Ties in the scores are broken towards the lower item id, so every metric is a deterministic
function of the scores. Users with an empty target set get NaN (the metrics are undefined
for them); `summarize` averages over the others and says how many were left out.

Everything is batched: ``scores`` is a dense ``(B, M)`` float tensor for one mini-batch of
users, targets and fold-in sets may be dense tensors, torch sparse tensors or scipy sparse
rows. `evaluate_scores` walks a whole sparse fold-in / target matrix pair in mini-batches,
so only ``batch_size x M`` scores are ever dense.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

__all__ = [
    "MetricSummary",
    "evaluate_scores",
    "ndcg_at",
    "parse_metric",
    "precision_at",
    "rank_top",
    "ranking_metrics",
    "recall_at",
    "summarize",
    "to_dense_bool",
]


def to_dense_bool(matrix: Tensor | sp.spmatrix | sp.sparray | np.ndarray, shape: tuple[int, int],
                  device: torch.device | str = "cpu") -> Tensor:
    """A ``(B, M)`` boolean tensor from a dense / sparse tensor, scipy matrix or array.

    Raises:
        ValueError: the shape differs from `shape`.
    """
    if sp.issparse(matrix):
        if matrix.shape != shape:
            raise ValueError(f"sparse matrix has shape {matrix.shape}, expected {shape}")
        coo = sp.coo_matrix(matrix)
        out = torch.zeros(shape, dtype=torch.bool, device=device)
        if coo.nnz:
            keep = coo.data != 0
            rows = torch.as_tensor(coo.row[keep], dtype=torch.long, device=device)
            cols = torch.as_tensor(coo.col[keep], dtype=torch.long, device=device)
            out[rows, cols] = True
        return out
    if isinstance(matrix, np.ndarray):
        matrix = torch.as_tensor(matrix)
    if matrix.is_sparse or matrix.layout in (torch.sparse_csr, torch.sparse_csc):
        matrix = matrix.to_dense()
    if tuple(matrix.shape) != tuple(shape):
        raise ValueError(f"tensor has shape {tuple(matrix.shape)}, expected {shape}")
    return (matrix != 0).to(device)


def rank_top(scores: Tensor, k: int, exclude: Tensor | None = None) -> Tensor:
    """Item ids of the ``k`` best scores per row, best first; ties go to the lower id.

    Args:
        scores: ``(B, M)`` float scores.
        k: how many items (at most ``M``).
        exclude: optional ``(B, M)`` bool mask of items that may not be ranked (fold-in
            items); they are placed after every other item.

    Returns:
        int64 ``(B, k)``.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be (B, M), got shape {tuple(scores.shape)}")
    n_items = scores.shape[1]
    if not 1 <= k <= n_items:
        raise ValueError(f"need 1 <= k <= number of items ({n_items}), got k={k}")
    scores = scores.detach().float()
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if exclude is not None:
        scores = scores.masked_fill(exclude.to(torch.bool), -math.inf)
    if k == n_items:
        return torch.sort(scores, dim=1, descending=True, stable=True).indices
    values, idx = scores.topk(k, dim=1)
    # The top-k set is exact unless some item outside it ties with the k-th value.
    boundary = values[:, -1:]
    n_at_least = (scores >= boundary).sum(dim=1)
    # Order inside the set: by score descending, then id ascending (two stable sorts).
    idx_sorted, _ = idx.sort(dim=1)
    vals_sorted = scores.gather(1, idx_sorted)
    order = torch.sort(vals_sorted, dim=1, descending=True, stable=True).indices
    top = idx_sorted.gather(1, order)
    tied = torch.nonzero(n_at_least > k).flatten()
    if len(tied):
        full = torch.sort(scores[tied], dim=1, descending=True, stable=True).indices[:, :k]
        top[tied] = full
    return top


def _hits(scores: Tensor, targets: Tensor | sp.spmatrix, k: int,
          exclude: Tensor | sp.spmatrix | None) -> tuple[Tensor, Tensor]:
    """Bool ``(B, k)`` hit indicators of the top-k, and the target counts ``(B,)``."""
    shape = (scores.shape[0], scores.shape[1])
    target = to_dense_bool(targets, shape, scores.device)
    mask = None if exclude is None else to_dense_bool(exclude, shape, scores.device)
    top = rank_top(scores, min(k, shape[1]), mask)
    return target.gather(1, top), target.sum(dim=1)


def _with_nan(values: Tensor, n_targets: Tensor) -> Tensor:
    return torch.where(n_targets > 0, values, torch.full_like(values, math.nan))


def recall_at(scores: Tensor, targets: Tensor | sp.spmatrix, k: int,
              exclude: Tensor | sp.spmatrix | None = None) -> Tensor:
    """Per-user Recall@k (RaCT eq. 13), float ``(B,)``; NaN for users without targets."""
    hits, n = _hits(scores, targets, k, exclude)
    denom = n.clamp(max=k).clamp(min=1).to(torch.float64)
    return _with_nan(hits.sum(dim=1).to(torch.float64) / denom, n)


def _discounts(k: int, device: torch.device) -> Tensor:
    return 1.0 / torch.log2(torch.arange(2, k + 2, device=device, dtype=torch.float64))


def ndcg_at(scores: Tensor, targets: Tensor | sp.spmatrix, k: int,
            exclude: Tensor | sp.spmatrix | None = None) -> Tensor:
    """Per-user NDCG@k (RaCT eq. 12 over its best value), float ``(B,)``; NaN without targets."""
    hits, n = _hits(scores, targets, k, exclude)
    kk = hits.shape[1]
    disc = _discounts(kk, scores.device)
    dcg = (hits.to(torch.float64) * disc).sum(dim=1)
    ideal_cum = torch.cat([torch.zeros(1, dtype=torch.float64, device=scores.device),
                           disc.cumsum(0)])
    idcg = ideal_cum[n.clamp(max=kk)]
    return _with_nan(dcg / idcg.clamp(min=1e-12), n)


def precision_at(scores: Tensor, targets: Tensor | sp.spmatrix, k: int,
                 exclude: Tensor | sp.spmatrix | None = None) -> Tensor:
    """Per-user Precision@k (hits in the top k over k), float ``(B,)``; NaN without targets."""
    hits, n = _hits(scores, targets, k, exclude)
    return _with_nan(hits.sum(dim=1).to(torch.float64) / k, n)


_METRICS: dict[str, Callable[..., Tensor]] = {
    "recall": recall_at, "ndcg": ndcg_at, "precision": precision_at,
}


def parse_metric(name: str) -> tuple[str, int]:
    """``"ndcg@100"`` -> ``("ndcg", 100)``; raises ValueError for unknown names."""
    kind, sep, cut = name.lower().partition("@")
    if not sep or kind not in _METRICS or not cut.isdigit() or int(cut) < 1:
        raise ValueError(f"unknown metric {name!r}; use recall@R, ndcg@R or precision@k")
    return kind, int(cut)


def ranking_metrics(scores: Tensor, targets: Tensor | sp.spmatrix,
                    exclude: Tensor | sp.spmatrix | None = None,
                    metrics: Sequence[str] = ("recall@20", "recall@50", "ndcg@100"),
                    ) -> dict[str, Tensor]:
    """Several per-user metrics of one batch from a single ranking, ``{name: (B,)}``."""
    parsed = [parse_metric(m) for m in metrics]
    shape = (scores.shape[0], scores.shape[1])
    target = to_dense_bool(targets, shape, scores.device)
    mask = None if exclude is None else to_dense_bool(exclude, shape, scores.device)
    kmax = min(max(k for _, k in parsed), shape[1])
    top = rank_top(scores, kmax, mask)
    hits_all = target.gather(1, top).to(torch.float64)
    n = target.sum(dim=1)
    disc = _discounts(kmax, scores.device)
    ideal_cum = torch.cat([torch.zeros(1, dtype=torch.float64, device=scores.device),
                           disc.cumsum(0)])
    out = {}
    for name, (kind, k) in zip(metrics, parsed, strict=True):
        kk = min(k, shape[1])
        hits = hits_all[:, :kk]
        if kind == "recall":
            value = hits.sum(dim=1) / n.clamp(max=k).clamp(min=1)
        elif kind == "precision":
            value = hits.sum(dim=1) / k
        else:
            value = (hits * disc[:kk]).sum(dim=1) / ideal_cum[n.clamp(max=kk)].clamp(min=1e-12)
        out[name] = _with_nan(value, n)
    return out


@dataclass(frozen=True)
class MetricSummary:
    """Mean and standard error of a per-user metric over the users that have targets."""

    mean: float
    sem: float
    n_users: int
    n_skipped: int

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.sem:.4f}"


def summarize(per_user: Tensor | np.ndarray) -> MetricSummary:
    """Mean and standard error (std / sqrt(n), ddof 1) ignoring NaN (users without targets)."""
    values = np.asarray(per_user.cpu() if isinstance(per_user, Tensor) else per_user,
                        dtype=np.float64)
    ok = ~np.isnan(values)
    n = int(ok.sum())
    if n == 0:
        return MetricSummary(math.nan, math.nan, 0, len(values))
    mean = float(values[ok].mean())
    sem = float(values[ok].std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    return MetricSummary(mean, sem, n, len(values) - n)


def _batches(n: int, batch_size: int) -> Iterable[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


def evaluate_scores(score_fn: Callable[[sp.csr_matrix], Tensor], fold_in: sp.spmatrix,
                    target: sp.spmatrix,
                    metrics: Sequence[str] = ("recall@20", "recall@50", "ndcg@100"),
                    batch_size: int = 500) -> dict[str, np.ndarray]:
    """Per-user metrics over a whole held-out set, in mini-batches of users.

    Args:
        score_fn: maps a CSR block of fold-in rows ``(b, M)`` to dense scores ``(b, M)``.
        fold_in: ``(N, M)`` sparse fold-in (input) histories; excluded from the ranking.
        target: ``(N, M)`` sparse held-out items.
        metrics: names such as ``"recall@20"`` and ``"ndcg@100"``.
        batch_size: users per mini-batch.

    Returns:
        ``{metric: float64 array (N,)}``, NaN for users without targets.
    """
    if fold_in.shape != target.shape:
        raise ValueError(f"fold-in {fold_in.shape} and target {target.shape} differ in shape")
    fold_in = sp.csr_matrix(fold_in)
    target = sp.csr_matrix(target)
    out: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for rows in _batches(fold_in.shape[0], batch_size):
        block = fold_in[rows]
        with torch.no_grad():
            scores = score_fn(block)
        values = ranking_metrics(scores, target[rows], block, metrics)
        for m in metrics:
            out[m].append(values[m].cpu().numpy())
    return {m: (np.concatenate(v) if v else np.zeros(0)) for m, v in out.items()}

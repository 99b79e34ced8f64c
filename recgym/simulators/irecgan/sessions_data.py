"""Real click sessions as IRecGAN sequences, and the rerank protocol (Bai et al. 2019, sec. 7.2).

The paper's real-data test uses CIKM Cup 2016 (DIGINETICA) sessions: sessions of length 1
or longer than 40 are dropped, only the most popular items are kept, and every model
reranks the logged recommendation list at each step of the test sessions; P@k is the
share of steps whose clicked item is among the model's top ``k`` of that list.

DIGINETICA's logged lists (the search result pages of ``train-queries.csv``) are not in
recgym's data copy, so the list of a step is built the way recgym builds display sets for
session data without impressions: the clicked item plus ``list_size - 1`` other items
active around the same time, drawn in proportion to their activity
(:func:`recgym.data.display_sets_by_time_window`). Each session then ends with one page
view without a click, IRecGAN's ``c_end`` (sec. 5), whose list is built the same way
without the last clicked item; U learns from it when users leave, so sessions it
generates end. A click's reward is 1 for a purchase (eq. 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from torch import Tensor

from recgym.data import LogDataset, SessionData, display_sets_by_time_window
from recgym.simulators.irecgan.fit import SessionTensors, UserModelFit, fit_user_model


def _uniform_lists(clicked: np.ndarray, num_items: int, size: int,
                   rng: np.random.Generator) -> np.ndarray:
    """``(n, size)`` lists of distinct uniform items, with ``clicked`` (when >= 0) among them."""
    keys = rng.random((len(clicked), num_items), dtype=np.float32)
    has_click = clicked >= 0
    keys[np.flatnonzero(has_click), clicked[has_click]] = -1.0  # always drawn
    lists = np.argpartition(keys, size - 1, axis=1)[:, :size]
    return rng.permuted(lists, axis=1)


def diginetica_logs(data: SessionData, *, num_items: int = 2000, list_size: int = 50,
                    min_length: int = 2, max_length: int = 40, lists: str = "activity",
                    window: float = 3600.0, seed: int = 0) -> LogDataset:
    """DIGINETICA sessions as page views with lists and a final ``c_end`` view.

    Args:
        data: sessions from :func:`recgym.data.load_diginetica`.
        num_items: keep the views of this many most viewed items (the paper: 40,000);
            item ``0`` is the most viewed. Views of other items are dropped.
        list_size: items per list, the clicked one included.
        min_length: drop sessions with fewer views, counted after the item filter (the
            paper drops length 1).
        max_length: drop sessions with more views (the paper: 40).
        lists: ``"activity"``: the other list items are drawn in proportion to their
            activity around the step's time; ``"uniform"``: uniformly from the kept items.
        window: half-width in seconds of the activity window (``"activity"``).
        seed: seed of the lists.

    Returns:
        The page views, ``click = -1`` on each session's last (end) view; ``raw_item_id``
        in the item table maps ids back to DIGINETICA's.
    """
    if not 1 <= list_size <= num_items:
        raise ValueError(f"list_size must be between 1 and num_items={num_items}, "
                         f"got {list_size}")
    if lists not in ("activity", "uniform"):
        raise ValueError(f"lists must be 'activity' or 'uniform', got {lists!r}")
    if not 1 <= min_length <= max_length:
        raise ValueError(f"need 1 <= min_length <= max_length, got {min_length}, {max_length}")
    events = data.events
    counts = events["item_id"].value_counts(sort=False).sort_index()
    ranked = counts.index[np.lexsort((counts.index, -counts.to_numpy()))][:num_items]
    if len(ranked) < num_items:
        raise ValueError(f"the data has {len(ranked)} items, fewer than num_items={num_items}; "
                         f"lower num_items")
    new_id = pd.Series(np.arange(num_items), index=ranked)
    kept = events[events["item_id"].isin(ranked)].sort_values(["session_id", "step"])
    length = kept.groupby("session_id")["step"].transform("size")
    kept = kept[(length >= min_length) & (length <= max_length)].reset_index(drop=True)
    if kept.empty:
        raise ValueError("no session is left after the filters; raise num_items or lower "
                         "min_length")
    item = new_id.reindex(kept["item_id"]).to_numpy(np.int64)
    time = kept["time"].to_numpy(np.float64)
    rng = np.random.default_rng(seed)
    if lists == "uniform":
        shown = _uniform_lists(item, num_items, list_size, rng)
    else:
        shown = display_sets_by_time_window(item, time, size=list_size, window=window,
                                            seed=seed)
    clicked = pd.DataFrame({
        "session_id": kept["session_id"].to_numpy(np.int64),
        "step": kept.groupby("session_id").cumcount().to_numpy(np.int64),
        "slate": list(shown),
        "click": item, "feedback": kept["feedback"].to_numpy(np.int64),
        "reward": kept["reward"].to_numpy(np.float64), "time": time,
    })
    last = clicked.groupby("session_id").tail(1)
    if lists == "uniform":
        others = _uniform_lists(np.full(len(last), -1), num_items, list_size, rng)
    else:  # a list of list_size + 1 around the last click, without it
        wider = display_sets_by_time_window(last["click"].to_numpy(), last["time"].to_numpy(),
                                            size=list_size + 1, window=window, seed=seed + 1,
                                            event_items=item, event_times=time)
        others = wider[wider != last["click"].to_numpy()[:, None]].reshape(len(last),
                                                                            list_size)
    end = pd.DataFrame({"session_id": last["session_id"].to_numpy(),
                        "step": last["step"].to_numpy() + 1, "slate": list(others),
                        "click": -1, "feedback": 0, "reward": 0.0,
                        "time": last["time"].to_numpy()})
    logs = pd.concat([clicked, end], ignore_index=True).sort_values(["session_id", "step"])
    logs["timestamp"] = np.floor(logs.pop("time").to_numpy()).astype(np.int64)
    items = data.items.loc[ranked].reset_index(drop=True)
    items.index.name = "item_id"
    return LogDataset(logs.reset_index(drop=True), items=items, num_items=num_items)


@dataclass
class RerankData:
    """Train and test sessions of the rerank protocol, split by session.

    Attributes:
        train_logs: the training page views (to fit U with ``fit_user_model``).
        train: the same sessions as tensors (the agents' data).
        test: test sessions, reranked step by step.
        stats: sizes (sessions, items, clicked steps, purchases) for reports.
    """

    train_logs: LogDataset
    train: SessionTensors
    test: SessionTensors
    stats: dict[str, float] = field(default_factory=dict)


def rerank_split(logs: LogDataset, *, test_fraction: float = 0.15, seed: int = 0) -> RerankData:
    """Split a log's sessions at random into train and test (the paper: random splitting)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    frame = logs.logs
    ids = np.unique(frame["session_id"].to_numpy())
    held_out = int(round(test_fraction * len(ids)))
    if not 1 <= held_out < len(ids):
        raise ValueError(f"{len(ids)} sessions cannot be split with test_fraction={test_fraction}")
    test_ids = np.random.default_rng(seed).permutation(ids)[:held_out]
    in_test = frame["session_id"].isin(test_ids).to_numpy()
    train_logs = LogDataset(frame[~in_test].reset_index(drop=True), items=logs.items,
                            num_items=logs.num_items)
    train, test = SessionTensors.from_logs(train_logs), SessionTensors.from_logs(frame[in_test])
    k = train.slates.shape[-1]
    stats: dict[str, float] = {"items": logs.num_items, "list_size": k}
    for name, part in (("train", train), ("test", test)):
        clicks = part.mask & (part.positions < k)
        stats[f"{name}_sessions"] = len(part.lengths)
        stats[f"{name}_clicks"] = int(clicks.sum())
        stats[f"{name}_purchases"] = int((part.rewards * clicks).sum())
    return RerankData(train_logs, train, test, stats)


def rerank_precision(scores: Tensor, positions: Tensor, mask: Tensor,
                     ks: tuple[int, ...] = (1, 10)) -> dict[int, float]:
    """P@k of reranked lists: the share of clicked steps with the click in the top ``k``.

    Ties are broken at random, in expectation: a click whose score is beaten by ``g``
    list items and tied with ``e`` others is in the top ``k`` with probability
    ``clamp((k - g) / (e + 1), 0, 1)``, so a model scoring every item alike gets ``k / L``.

    Args:
        scores: ``(B, T, L)`` the model's scores of each step's list.
        positions: ``(B, T)`` list position of the click; ``L`` (no click) is skipped.
        mask: ``(B, T)`` true on real steps.
        ks: the cut-offs.

    Returns:
        ``{k: P@k}`` over the clicked steps.
    """
    if scores.dim() != 3 or scores.shape[:2] != positions.shape or mask.shape != positions.shape:
        raise ValueError(f"need scores (B, T, L) and positions, mask (B, T); got "
                         f"{tuple(scores.shape)}, {tuple(positions.shape)}, {tuple(mask.shape)}")
    size = scores.shape[-1]
    clicked = mask & (positions < size)
    if not bool(clicked.any()):
        raise ValueError("no clicked step to evaluate")
    target = scores.gather(-1, positions.clamp(max=size - 1)[..., None])
    greater = (scores > target).sum(-1)[clicked].double()
    ties = (scores == target).sum(-1)[clicked].double() - 1
    return {k: float(((k - greater) / (ties + 1)).clamp(0, 1).mean()) for k in ks}


def fit_diginetica_user(root: str | Path, out: str | Path | None = None, *,
                        num_items: int = 2000, list_size: int = 10, seed: int = 0,
                        progress: bool = True, **fit_kwargs) -> UserModelFit:
    """Fit IRecGAN-v0's user model U on DIGINETICA sessions (eq. 3) and save it to ``out``.

    Args:
        root: folder of the DIGINETICA files (see :func:`recgym.data.load_diginetica`).
        out: checkpoint for ``gym.make("IRecGAN-v0", checkpoint=out)``; None: not saved.
        num_items: most viewed items kept.
        list_size: items per list; use the ``slate_size`` the env will be made with.
        seed: seed of the lists.
        progress: progress bars.
        **fit_kwargs: passed to :func:`recgym.simulators.irecgan.fit.fit_user_model`
            (``training=``, ``hidden_size=``, ...).
    """
    from recgym.data import load_diginetica

    logs = diginetica_logs(load_diginetica(root), num_items=num_items, list_size=list_size,
                           seed=seed)
    return fit_user_model(logs, checkpoint=out, progress=progress, **fit_kwargs)

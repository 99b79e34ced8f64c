"""Fitting the GAN user model: Shannon entropy (maximum likelihood) or the L2 mini-max game.

By Lemma 2 of Chen et al. (2019) the mini-max problem with the negative Shannon entropy
reduces to maximising ``prod_t softmax(eta r(s_t, a_t^true))`` over the display sets.
With ``R(phi) = ||phi||^2`` there is no likelihood: the game of eq. 5 is solved by
alternating updates (eq. 6), started from the entropy solution (sec. 4.3, 6.1).
A page view of the log contributes its display set (``slate``, or ``candidates`` when the
log has them), its click (or no click) and the features of the user's last ``m`` clicks
in the session. Fidelity is measured as in sec. 6.1: Prec@k, the share of page views with
a click whose clicked item is among the ``k`` displayed items of highest learned reward.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from recgym.core.checkpoint import check_checkpoint, read_checkpoint_file, save_checkpoint
from recgym.core.random import isolated_global_rng
from recgym.data import LogDataset
from recgym.simulators.gan_user.model import (
    REGULARIZERS,
    GANUserConfig,
    GANUserModel,
    OneHotItems,
    features_of,
    project_onto_simplex,
)


def item_features(items: pd.DataFrame, *, with_year: bool = False) -> np.ndarray:
    """Numeric item features from an item table: genre flags, optionally a standardised year.

    The year is left out by default: with the paper's MovieLens display sets (the rated
    movie and 39 released near the time of the rating) the rated movie is the oldest of
    its set in 96% of ml-latest-small page views, so a model given the year learns that
    construction artefact instead of the user (Prec@1 0.93 against 0.15 without it).
    """
    columns = [c for c in items.columns if c.startswith("genre_")]
    features = items[columns].to_numpy(np.float32) if columns else np.zeros((len(items), 0),
                                                                            np.float32)
    if with_year and "year" in items.columns:
        year = items["year"].to_numpy(np.float64, na_value=np.nan)
        year = np.where(np.isnan(year), np.nanmean(year), year)
        year = (year - year.mean()) / (year.std() + 1e-9)
        features = np.concatenate([features, year[:, None].astype(np.float32)], axis=1)
    if features.shape[1] == 0:
        raise ValueError("the item table has no genre_* or year column to use as features; "
                         "pass item features explicitly")
    return features


def with_popularity(features: np.ndarray, train: PageViews) -> np.ndarray:
    """Append each item's log click count among the training page views, scaled to [0, 1].

    Popularity is the signal that separates a rated movie from the recent releases that
    fill MovieLens display sets; genre flags alone cannot express it.
    """
    clicked = train.choice < train.display.shape[1]
    rows = torch.arange(len(train))[clicked]
    items = train.display[rows, train.choice[clicked]].numpy()
    counts = np.log1p(np.bincount(items, minlength=len(features))).astype(np.float32)
    return np.concatenate([features, (counts / max(counts.max(), 1.0))[:, None]], axis=1)


@isolated_global_rng
def cooccurrence_features(train: PageViews, num_items: int, dim: int = 16,
                          seed: int = 0) -> np.ndarray:
    """Item embeddings from training clicks, for logs without item features (sessions).

    The top ``dim`` left singular vectors of the item x user click matrix, scaled by the
    singular values and normalised to unit length (so dot products are cosine
    co-occurrence, the signal item-KNN uses); items never clicked in training get zeros.
    """
    clicked = (train.choice < train.display.shape[1]).numpy()
    items = train.display.numpy()[np.flatnonzero(clicked), train.choice.numpy()[clicked]]
    _, users = np.unique(train.user[clicked], return_inverse=True)
    pairs = np.unique(np.stack([items, users]), axis=1)
    matrix = torch.sparse_coo_tensor(torch.from_numpy(pairs), torch.ones(pairs.shape[1]),
                                     (num_items, int(users.max()) + 1),
                                     check_invariants=True).coalesce()
    torch.manual_seed(seed)
    left, singular, _ = torch.svd_lowrank(matrix, q=min(dim, *matrix.shape))
    embedding = F.normalize(left * singular, dim=1)
    return embedding.numpy().astype(np.float32)


@dataclass
class PageViews:
    """Page views as tensors.

    ``history`` (R, m): the last clicked ids, oldest first (-1: none yet); ``display``
    (R, K): the shown ids; ``choice`` (R,): position of the click, or K for no click;
    ``user`` (R,): whose page view it is.
    """

    history: Tensor
    display: Tensor
    choice: Tensor
    user: np.ndarray

    @classmethod
    def from_logs(cls, logs: LogDataset | pd.DataFrame, history: int) -> PageViews:
        """Page views of a log, with each one's last ``history`` clicks in its session."""
        frame = logs.logs if isinstance(logs, LogDataset) else logs
        frame = frame.sort_values(["session_id", "step"], kind="stable")
        shown = frame["candidates"] if "candidates" in frame.columns else frame["slate"]
        display = np.stack(shown.to_numpy()).astype(np.int64)
        click = frame["click"].to_numpy(np.int64)
        hit = display == click[:, None]
        choice = np.where(click >= 0, hit.argmax(1), display.shape[1])
        sessions = frame["session_id"].to_numpy()
        past = np.full((len(frame), history), -1, dtype=np.int64)
        window: list[int] = []
        for row in range(len(frame)):
            if row and sessions[row] != sessions[row - 1]:
                window = []
            recent = window[-history:]
            if recent:
                past[row, history - len(recent):] = recent
            if click[row] >= 0:
                window.append(int(click[row]))
        user = frame["user_id"].to_numpy() if "user_id" in frame.columns else sessions
        return cls(torch.from_numpy(past), torch.from_numpy(display), torch.from_numpy(choice),
                   user)

    def subset(self, mask: np.ndarray) -> PageViews:
        """The page views where ``mask`` is true."""
        index = torch.from_numpy(np.flatnonzero(mask))
        return PageViews(self.history[index], self.display[index], self.choice[index],
                         self.user[mask])

    def __len__(self) -> int:
        return len(self.choice)


def choice_log_likelihood(model: GANUserModel, views: PageViews, features: Tensor) -> Tensor:
    """``log softmax(eta r)`` of each page view's actual choice, ``(R,)`` (Lemma 2)."""
    state = model.state(features_of(views.history, features))
    logits = model.choice_logits(state, features[views.display])
    return F.log_softmax(logits, dim=1).gather(1, views.choice[:, None]).squeeze(1)


def ranked_precision(scores: Tensor, choice: Tensor, ks: tuple[int, ...] = (1, 2)
                     ) -> dict[int, float]:
    """Mean Prec@k of the chosen positions ``(R,)`` under ``scores`` ``(R, K)``.

    Ties are broken uniformly at random, in expectation: with ``g`` items scored above
    the chosen one and ``e`` equal to it (itself included), it is in the top k with
    probability ``clip((k - g) / e, 0, 1)``. (Counting every tie as a hit would credit
    a model that scores everything 0, e.g. item-KNN on a page view with no history.)
    """
    chosen = scores.gather(1, choice[:, None])
    above = (scores > chosen).sum(1).float()
    equal = (scores == chosen).sum(1).float()
    return {k: float(((k - above) / equal).clamp(0, 1).mean()) for k in ks}


@torch.no_grad()
def precision_at(model: GANUserModel, views: PageViews, features: Tensor,
                 ks: tuple[int, ...] = (1, 2)) -> dict[int, float]:
    """Prec@k over page views with a click: clicked item among the top-k by reward."""
    clicked = views.choice < views.display.shape[1]
    views = views.subset(clicked.numpy())
    state = model.state(features_of(views.history, features))
    rewards = model.reward(state, features[views.display])
    return ranked_precision(rewards, views.choice, ks)


@dataclass
class GANUserTraining:
    """How to fit the reward: mini-batches of page views, Adam, early stopping.

    Attributes:
        learning_rate: Adam step of the maximum-likelihood (entropy) fit.
        batch_size: page views per step.
        epochs: maximum epochs of the entropy fit.
        patience: epochs without a better validation score before stopping.
        seed: seed of initialisation and shuffling.
        regularizer: ``"entropy"`` (Lemma 2: maximum likelihood) or ``"l2"``
            (``R(phi) = ||phi||^2``: the mini-max game of eq. 5, started from the
            entropy solution as sec. 4.3 prescribes).
        adversarial_epochs: maximum epochs of the L2 game.
        adversarial_learning_rate: Adam step of the reward in the L2 game.
    """

    learning_rate: float = 1e-3
    batch_size: int = 256
    epochs: int = 20
    patience: int = 3
    seed: int = 0
    regularizer: str = "entropy"
    adversarial_epochs: int = 10
    adversarial_learning_rate: float = 5e-4

    def __post_init__(self) -> None:
        if self.regularizer not in REGULARIZERS:
            raise ValueError(f"unknown regularizer {self.regularizer!r}: use 'entropy' (maximum "
                             "likelihood) or 'l2' (the mini-max game with ||phi||^2)")
        for name in ("batch_size", "epochs", "patience", "adversarial_epochs"):
            minimum = 0 if "epochs" in name else 1
            if getattr(self, name) < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {getattr(self, name)}")


@dataclass
class GANUserFit:
    """A fitted user model, its validation history and test precision."""

    model: GANUserModel
    history: list[dict] = field(default_factory=list)
    test_precision: dict[int, float] = field(default_factory=dict)


def l2_game_loss(model: GANUserModel, views: PageViews, features: Tensor) -> Tensor:
    """Eq. 5 with ``R(phi) = ||phi||^2`` per page view, after the inner maximisation, ``(R,)``.

    Inner step (the behaviour, eq. 6 first line): for the current reward the best
    response on each display set has the closed form ``phi* = proj(eta r / 2)``, so it is
    solved exactly and held fixed. Outer step: the value ``phi* . r - ||phi*||^2 / eta
    - r(a_true)``, whose gradient in the reward is eq. 6's second line
    ``E_phi* grad r - grad r(a_true)``. It is ``>= -1 / eta``, with equality once the
    true choice out-scores the others by ``2 / eta``: a large-margin loss, not a likelihood.
    """
    eta = model.config.eta
    state = model.state(features_of(views.history, features))
    rewards = model.choice_logits(state, features[views.display]) / eta
    with torch.no_grad():
        behaviour = project_onto_simplex(eta * rewards / 2)
    value = (behaviour * rewards).sum(1) - behaviour.pow(2).sum(1) / eta
    return value - rewards.gather(1, views.choice[:, None]).squeeze(1)


def _batch(views: PageViews, index: Tensor) -> PageViews:
    return PageViews(views.history[index], views.display[index], views.choice[index],
                     views.user[index.numpy()])


class _Phase:
    """One stage of the fit (``"entropy"`` or ``"l2"``) with its resumable progress."""

    def __init__(self, name: str, model: GANUserModel, learning_rate: float, seed: int,
                 saved: dict | None) -> None:
        self.name = name
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch, self.stale, self.best = 0, 0, -float("inf")
        self.best_state = copy.deepcopy(model.state_dict())
        self.history: list[dict] = []
        if saved is not None:
            model.load_state_dict(saved["current"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.generator.set_state(saved["generator"])
            self.epoch, self.stale, self.best = saved["epoch"], saved["stale"], saved["best"]
            self.best_state, self.history = saved["best_state"], list(saved["history"])

    def record(self, entry: dict, score: float) -> None:
        """Log an epoch's validation entry; keep the weights if ``score`` is the best."""
        self.history.append({"phase": self.name, "epoch": self.epoch, **entry})
        if score > self.best:
            self.best, self.best_state, self.stale = score, copy.deepcopy(
                self.model.state_dict()), 0
        else:
            self.stale += 1

    def progress(self) -> dict:
        """Everything needed to continue this phase later."""
        return {"current": copy.deepcopy(self.model.state_dict()),
                "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                "epoch": self.epoch, "stale": self.stale, "best": self.best,
                "best_state": self.best_state, "history": self.history}


def _run(phase: _Phase, train: PageViews, features: Tensor, loss_of, validate, epochs: int,
         training: GANUserTraining, save, progress: bool) -> None:
    """Train ``phase`` until ``epochs`` or ``patience``, saving after every epoch."""
    model = phase.model
    while phase.epoch < epochs and phase.stale < training.patience:
        model.train()
        order = torch.randperm(len(train), generator=phase.generator)
        for index in tqdm(order.split(training.batch_size),
                          desc=f"user model {phase.name} {phase.epoch + 1}",
                          disable=not progress, leave=False):
            loss = loss_of(model, _batch(train, index), features).mean()
            phase.optimizer.zero_grad()
            loss.backward()
            phase.optimizer.step()
        phase.epoch += 1
        model.eval()
        phase.record(*validate())
        save()
    model.load_state_dict(phase.best_state)
    model.eval()


def _load_progress(path: Path, config: GANUserConfig, training: GANUserTraining) -> dict:
    saved = check_checkpoint(read_checkpoint_file(path), "gan-user", source=path)
    if "progress" not in saved:
        raise ValueError(f"{path} is not a resumable GAN user-model fit; delete it or pass "
                         "another checkpoint path")
    fixed = ("regularizer", "seed", "batch_size")
    mismatch = [key for key in fixed if saved["training"][key] != getattr(training, key)]
    theirs = {key: value for key, value in saved["config"].items() if key != "regularizer"}
    ours = {key: value for key, value in config.to_dict().items() if key != "regularizer"}
    if mismatch or theirs != ours:
        raise ValueError(f"{path} was written by another fit (differs in "
                         f"{mismatch or 'the model config'}); resume with the same settings "
                         "or start afresh")
    return saved["progress"]


@isolated_global_rng
def fit_gan_user(train: PageViews, valid: PageViews, features: Tensor, *,
                 config: GANUserConfig | None = None, training: GANUserTraining | None = None,
                 test: PageViews | None = None, checkpoint: str | Path | None = None,
                 resume: bool = False, initial: GANUserModel | None = None,
                 progress: bool = True) -> GANUserFit:
    """Fit ``r_theta`` with the Shannon entropy or the L2 regulariser and early stopping.

    Entropy (Lemma 2): maximum likelihood, stopped on validation log-likelihood. L2:
    the entropy solution (fitted here, or ``initial``) starts the mini-max game of eq. 5,
    solved by alternating the exact inner maximisation over the behaviour on each display
    set with Adam steps on the reward (`l2_game_loss`); stopped on validation Prec@1, with
    the entropy solution itself as the epoch-0 candidate.

    Args:
        train: training page views (the 50% users of sec. 6.1).
        valid: validation page views (12.5%), for early stopping.
        features: item features ``(n_items, d)``, or :class:`OneHotItems` (one-hot ids
            as weight-row lookups; not with ``checkpoint``, which stores the features).
        config: architecture (default: GAN-PW with the data's feature size).
        training: optimisation settings, including the regulariser.
        test: page views scored by Prec@1 / Prec@2 at the end (37.5%).
        checkpoint: file rewritten after every epoch with the best model so far and the
            progress needed to resume.
        resume: continue from ``checkpoint`` if it exists (same config, seed, regulariser
            and batch size; more epochs than before continue training).
        initial: an entropy-fitted model to start the L2 game from (skips that phase).
        progress: progress bars.
    """
    training = training or GANUserTraining()
    config = config or (initial.config if initial is not None
                        else GANUserConfig(feature_dim=features.shape[1]))
    config = GANUserConfig(**{**config.to_dict(), "regularizer": "entropy"})
    if initial is not None and training.regularizer != "l2":
        raise ValueError("initial is the entropy solution that starts the L2 game; "
                         "pass it with GANUserTraining(regularizer='l2')")
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and isinstance(features, OneHotItems):
        raise ValueError("a checkpoint stores the item features, and OneHotItems holds none: "
                         "pass torch.eye(n_items) as features to write one")
    saved = (_load_progress(path, config, training)
             if resume and path is not None and path.is_file() else {})
    torch.manual_seed(training.seed)
    model = GANUserModel(config)
    phases: dict[str, _Phase] = {}

    def save() -> None:
        if path is None:
            return
        latest = list(phases.values())[-1]
        model_config = GANUserConfig(**{**config.to_dict(), "regularizer": latest.name})
        best = GANUserModel(model_config)
        best.load_state_dict(latest.best_state)
        state = {**saved, **{name: phase.progress() for name, phase in phases.items()}}
        save_checkpoint(path, best.checkpoint(training=asdict(training), features=features,
                                              progress=state))

    def likelihood() -> tuple[dict, float]:
        with torch.no_grad():
            score = float(choice_log_likelihood(model, valid, features).mean())
        return ({"valid_log_likelihood": score,
                 "valid_prec1": precision_at(model, valid, features, (1,))[1]}, score)

    def game() -> tuple[dict, float]:
        with torch.no_grad():
            loss = float(l2_game_loss(model, valid, features).mean())
        score = precision_at(model, valid, features, (1,))[1]
        return {"valid_l2_loss": loss, "valid_prec1": score}, score

    if initial is not None:
        model.load_state_dict(initial.state_dict())
    elif "l2" in saved:  # the entropy phase is over: keep its record
        phases["entropy"] = _Phase("entropy", model, training.learning_rate, training.seed,
                                   saved["entropy"])
    else:
        phases["entropy"] = _Phase("entropy", model, training.learning_rate, training.seed,
                                   saved.get("entropy"))
        _run(phases["entropy"], train, features,
             lambda *views: -choice_log_likelihood(*views), likelihood, training.epochs,
             training, save, progress)
    if training.regularizer == "l2":
        model.config = GANUserConfig(**{**config.to_dict(), "regularizer": "l2"})
        fresh = "l2" not in saved
        phases["l2"] = _Phase("l2", model, training.adversarial_learning_rate,
                              training.seed + 1, saved.get("l2"))
        if fresh:  # the entropy solution is the epoch-0 candidate
            phases["l2"].record(*game())
            save()
        _run(phases["l2"], train, features, l2_game_loss, game, training.adversarial_epochs,
             training, save, progress)
    history = [entry for phase in phases.values() for entry in phase.history]
    result = GANUserFit(model, history)
    if test is not None:
        result.test_precision = precision_at(model, test, features)
    return result


SESSION_DATASETS = ("yoochoose", "diginetica")


def page_view_dataset(data: str, *, root: str | None = None, seed: int = 0,
                      max_sessions: int | None = None) -> LogDataset:
    """Page views for the user model from a log file, a session dataset or MovieLens.

    Args:
        data: a saved log with an item table, ``"yoochoose"`` / ``"diginetica"`` (display
            sets of the 9 items other sessions clicked nearest in time,
            `recgym.data.pageviews.session_page_views`), or a MovieLens name (the
            rated movie and 39 released near the rating's time).
        root: the dataset's folder (required for the session datasets).
        seed: seed of the display-set draws (and of the session subset).
        max_sessions: keep this many random sessions of a session dataset.
    """
    from recgym.data import load_diginetica, load_logs, load_movielens, load_yoochoose
    from recgym.data.pageviews import movielens_to_logs, session_page_views

    if Path(data).is_file():
        dataset = load_logs(data)
        if dataset.items is None:
            raise ValueError(f"{data} has no item table: the user model needs item features "
                             "(save the log with LogDataset(logs, items=...))")
        return dataset
    if data in SESSION_DATASETS:
        if root is None:
            raise ValueError(f"{data} needs root=<folder holding its files> (--root)")
        loader = load_yoochoose if data == "yoochoose" else load_diginetica
        return session_page_views(loader(root), max_sessions=max_sessions, seed=seed)
    return movielens_to_logs(load_movielens(data, root=root), seed=seed)


def default_features(dataset: LogDataset, train: PageViews, *, with_year: bool = False,
                     popularity: bool = True, cooccurrence: bool = False) -> Tensor:
    """The benchmark's item features: genre flags, else co-occurrence embeddings; plus popularity.

    Genre flags (and the year only if asked, see `item_features`) when the item table has
    them, followed by `cooccurrence_features` of the training clicks if ``cooccurrence``;
    session logs have no genres, so the co-occurrence embeddings stand in. The log click
    count among training page views is appended unless ``popularity`` is False.
    """
    num_items = dataset.num_items or len(dataset.items)
    if any(column.startswith("genre_") for column in dataset.items.columns):
        features = item_features(dataset.items, with_year=with_year)
        if cooccurrence:
            features = np.concatenate([features, cooccurrence_features(train, num_items)], 1)
    else:
        features = cooccurrence_features(train, num_items)
    if popularity:
        features = with_popularity(features, train)
    return torch.from_numpy(features)


def env_checkpoint(fit: GANUserFit, features: Tensor, held_out: PageViews, *,
                   limit: int = 2000, seed: int = 0) -> dict:
    """The model plus what ``GANUserModel-v0`` needs.

    Item features, and display sets and start histories drawn from held-out page views
    (at most ``limit`` of each).
    """
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(held_out), generator=generator)[:limit]
    return fit.model.checkpoint(features=features.float(),
                                display_sets=held_out.display[pick].to(torch.int32),
                                start_histories=held_out.history[pick].to(torch.int32),
                                test_precision={str(k): v for k, v in
                                                fit.test_precision.items()})

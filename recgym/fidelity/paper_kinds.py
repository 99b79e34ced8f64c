"""The GAN user model and RecSimu as fidelity kinds: fitted on slate logs, scored as users.

Neither paper's simulator says when a session ends (``GANUserModel-v0`` and
``RecSimu-v0`` sessions run until the time limit), so a policy that makes users leave
cannot be told from one that keeps them. As kinds they get the session structure of the
logs they are fitted on, the same rule as ``item-rate``: a page without a click ends the
session, and after a click the session goes on with the logged rate. What is clicked is
the paper's model:

* ``gan-user-pw`` / ``gan-user-lstm``: the GAN user model (Chen et al. 2019) chooses
  among the shown items and no click, from the last ``m`` clicks (position weights or an
  LSTM), fitted by maximum likelihood (Lemma 2) or the L2 mini-max game, as
  ``recgym fit gan-user`` does. Items have no features in a synthetic world: each item
  is its one-hot id.
* ``recsimu``: RecSimu (Zhao et al. 2020) judges one item at a time from the last ``N``
  browsed items and their feedback. A slate log is read as browsing: every shown item is
  browsed in slate order, with feedback 1 if it was the page's click and 0 otherwise;
  an extra "page break" item opens each page (without it the state cannot tell a click
  earlier on this page, after which the logs show no other, from one on the page
  before), and a session starts from ``N`` copies of an extra "session start" item. So
  each item is judged from the state that already holds the page's items before it,
  and the page's click is its first item judged positive. (Judging all of a page's
  items from the state before the page, as ``RecSimu-v0`` steps, treats them as
  independent: with the logged per-item click rate ``p`` it predicts ``(1 - p)^k``
  pages without a click, 52% where the default world's random logs show 36%.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from recgym.core.policy import repeated_positions
from recgym.core.simulator import State
from recgym.data.slates import logged_slates, outcomes, sorted_logs
from recgym.fidelity.history import NoClickEndsUsers, continuation_after_click, held_out_sessions
from recgym.fidelity.worlds import WorldInfo
from recgym.simulators.gan_user.fit import GANUserTraining, PageViews, fit_gan_user
from recgym.simulators.gan_user.model import (
    GANUserConfig,
    GANUserModel,
    OneHotItems,
    features_of,
)
from recgym.simulators.recsimu.data import Tuples, TupleSplit
from recgym.simulators.recsimu.fit import RecSimuTraining, train_recsimu
from recgym.simulators.recsimu.model import RecSimu, RecSimuConfig

PAGE_BATCH_BYTES = 256 * 2**20  # gathered features per batch of held-out page views


class GANKindUsers(NoClickEndsUsers):
    """Users of a fitted GAN user model with the logs' session structure (module docstring).

    Attributes:
        model: the fitted :class:`~recgym.simulators.gan_user.model.GANUserModel`.
        features: item features, :class:`OneHotItems` (one-hot ids, never materialised)
            or a float ``(n, d)`` table.
        continue_after_click: logged share of clicked pages with a next page.
    """

    def __init__(self, model: GANUserModel, features: Tensor | OneHotItems,
                 continue_after_click: float, slate_size: int) -> None:
        super().__init__(len(features), slate_size, model.config.history)
        self.model = model.eval().requires_grad_(False)
        self.features = features if isinstance(features, OneHotItems) else features.float()
        self.continue_after_click = float(continue_after_click)

    @torch.no_grad()
    def _choice(self, history: Tensor, slate: Tensor) -> Tensor:
        """float64 ``(B, k + 1)`` choice probabilities after the clicks ``history`` (-1: none)."""
        state = self.model.state(features_of(history, self.features))
        return self.model.choice_probabilities(state, self.features[slate],
                                               shown=~repeated_positions(slate)).double()

    def state_outcome_probabilities(self, state: State, slate: Tensor) -> Tensor:
        """The model's best response over the shown items and no click."""
        history = state["history"]
        return self._choice(history.masked_fill(history >= self.num_items, -1), slate)

    def page_view_probabilities(self, logs: pd.DataFrame, batch_size: int | None = None
                                ) -> np.ndarray:
        """Choice probabilities of each logged page view (``logs`` sorted).

        In batches of ``batch_size`` page views (default: as many as keep the state and
        the gathered features within `PAGE_BATCH_BYTES`, at most 4,096): a large log at
        once would not fit in memory (ml-latest-small's GAN-PW state alone is 4 x 9,742
        floats per page view).
        """
        views = PageViews.from_logs(logs, self.history_length)
        if batch_size is None:
            width = 0 if isinstance(self.features, OneHotItems) else self.features.shape[1]
            per_view = 4 * (self.model.config.state_dim
                            + (self.history_length + self.slate_size) * width)
            batch_size = int(min(4096, max(1, PAGE_BATCH_BYTES // per_view)))
        return torch.cat([self._choice(views.history[rows], views.display[rows])
                          for rows in torch.arange(len(views.history)).split(batch_size)]
                         ).numpy()


def fit_gan_user_kind(logs: pd.DataFrame, info: WorldInfo, *, state: str = "pw",
                      regularizer: str = "entropy", epochs: int = 20, hidden: int = 256,
                      batch_size: int = 256, learning_rate: float = 1e-3,
                      valid_share: float = 0.1, progress: bool = False) -> GANKindUsers:
    """The GAN user model on one-hot item features, as ``recgym fit gan-user`` fits it.

    The one-hot features are :class:`OneHotItems`: the model looks up weight rows instead
    of multiplying ``n``-wide one-hot vectors (same model, a catalogue of thousands fits).

    Args:
        logs: page views in the log schema.
        info: catalogue, slate size, history length (the model's ``m``) and fit seed.
        state: ``"pw"`` (GAN-PW) or ``"lstm"`` (GAN-LSTM).
        regularizer: ``"entropy"`` (maximum likelihood) or ``"l2"`` (the mini-max game).
        epochs: maximum epochs of the likelihood fit.
        hidden: width of the reward network.
        batch_size: page views per Adam step.
        learning_rate: Adam's step size.
        valid_share: sessions held out for early stopping.
        progress: progress bars.
    """
    logs = sorted_logs(logs)
    views = PageViews.from_logs(logs, info.history_length)
    valid = held_out_sessions(logs, valid_share, info.seed)
    features = OneHotItems(info.num_items)
    config = GANUserConfig(feature_dim=info.num_items, history=info.history_length,
                           state=state, hidden=hidden)
    training = GANUserTraining(epochs=epochs, seed=info.seed, regularizer=regularizer,
                               batch_size=batch_size, learning_rate=learning_rate)
    fit = fit_gan_user(views.subset(~valid), views.subset(valid), features, config=config,
                       training=training, progress=progress)
    return GANKindUsers(fit.model, features, continuation_after_click(logs), info.slate_size)


def browsing_sequences(logs: pd.DataFrame, state_length: int, start_item: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A slate log as RecSimu's browsing sequences (``logs`` sorted; module docstring).

    Each session is ``state_length`` start items (id ``start_item``, feedback 0), then
    for every page a page-break item (``start_item + 1``, feedback 0) and the page's shown
    items in order, feedback 1 on the page's click; sessions are concatenated.

    Returns:
        int64 items ``(L,)``, feedback ``(L,)``, and ``(P, k)`` where each page view's
        shown items sit in them.
    """
    slates = logged_slates(logs)
    pages, k = slates.shape
    session = logs["session_id"].to_numpy()
    new_session = np.r_[True, session[1:] != session[:-1]]
    session_index = np.cumsum(new_session) - 1
    first_page = np.flatnonzero(new_session)
    page_in_session = np.arange(pages) - first_page[session_index]
    session_start = first_page * (k + 1) + np.arange(len(first_page)) * state_length
    page_start = session_start[session_index] + state_length + page_in_session * (k + 1)
    positions = page_start[:, None] + 1 + np.arange(k)
    items = np.full(pages * (k + 1) + len(first_page) * state_length, start_item, np.int64)
    feedback = np.zeros(len(items), np.int64)
    items[page_start] = start_item + 1
    items[positions] = slates
    feedback[positions] = np.arange(k)[None, :] == outcomes(logs)[:, None]
    return items, feedback, positions


def _windows(values: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """``values[end - length : end]`` for every ``end``, ``(len(ends), length)``."""
    return values[ends[:, None] - length + np.arange(length)]


def recsimu_tuples(logs: pd.DataFrame, state_length: int, start_item: int) -> Tuples:
    """One tuple per shown item: (the ``N`` browsed items before it, the item, clicked or not)."""
    return _tuples(logs, state_length, *browsing_sequences(logs, state_length, start_item))


def _tuples(logs: pd.DataFrame, state_length: int, items: np.ndarray, feedback: np.ndarray,
            positions: np.ndarray) -> Tuples:
    """:func:`recsimu_tuples` of the :func:`browsing_sequences` of ``logs``."""
    flat = positions.ravel()
    session = np.unique(logs["session_id"].to_numpy(), return_inverse=True)[1]
    return Tuples(_windows(items, flat, state_length), _windows(feedback, flat, state_length),
                  items[flat], feedback[flat], np.repeat(session, positions.shape[1]))


class RecSimuKindUsers(NoClickEndsUsers):
    """Users of a fitted RecSimu with the logs' session structure (module docstring).

    A page is browsed item by item: each item is judged from the state that holds the
    page's items before it, the first positive is the click, and the items after it
    enter the state with feedback 0 (the logs show one click per page).

    Attributes:
        model: the fitted :class:`~recgym.simulators.recsimu.model.RecSimu`; its catalogue
            has two extra items, the session start and the page break.
        continue_after_click: logged share of clicked pages with a next page.
    """

    def __init__(self, model: RecSimu, continue_after_click: float, slate_size: int,
                 history_length: int) -> None:
        super().__init__(model.config.num_items - 2, slate_size, history_length)
        self.model = model.eval().requires_grad_(False)
        self.encoder = self.model.discriminator.encoder
        self.continue_after_click = float(continue_after_click)
        self.page_break = self.model.item_vectors[self.num_items + 1][None]
        start = torch.full((1, model.config.state_length), self.num_items)
        start[0, -1] = self.num_items + 1
        with torch.no_grad():
            self.start_hidden = self.encoder(self.model.item_vectors[start],
                                             torch.zeros_like(start))

    def reset(self, batch_size: int, rng) -> State:
        """An empty click history and the encoding of the session-start state."""
        return {**super().reset(batch_size, rng),
                "hidden": self.start_hidden.expand(batch_size, -1)}

    @torch.no_grad()
    def _outcomes(self, hidden: Tensor, slate: Tensor) -> Tensor:
        """float64 ``(B, k + 1)``: first positive at each position, then none."""
        repeated = repeated_positions(slate)
        vectors = self.model.item_vectors[slate]
        no_click = torch.zeros(len(slate), dtype=torch.int64)
        survive = torch.ones(len(slate), dtype=torch.float64)
        columns = []
        for column in range(slate.shape[1]):
            logits = self.model.discriminator.logits_from_encoding(hidden, vectors[:, column])
            positive = self.model.feedback_probabilities(logits)[:, 1:].sum(1).double()
            positive = positive.masked_fill(repeated[:, column], 0.0)
            columns.append(survive * positive)
            survive = survive * (1.0 - positive)
            hidden = self.encoder.advance(hidden, vectors[:, column], no_click)
        return torch.stack([*columns, survive], dim=1)

    def state_outcome_probabilities(self, state: State, slate: Tensor) -> Tensor:
        """The page browsed item by item from the state before it."""
        return self._outcomes(state["hidden"], slate)

    @torch.no_grad()
    def next_state(self, state: State, slate: Tensor, position: Tensor, history: Tensor
                   ) -> State:
        """The page's items enter the GRU state (feedback 1 on the click), then a page break."""
        hidden = state["hidden"]
        vectors = self.model.item_vectors[slate]
        for column in range(slate.shape[1]):
            hidden = self.encoder.advance(hidden, vectors[:, column],
                                          (position == column).long())
        no_click = torch.zeros(len(slate), dtype=torch.int64)
        hidden = self.encoder.advance(hidden, self.page_break.expand(len(slate), -1), no_click)
        return {"history": history, "hidden": hidden}

    @torch.no_grad()
    def page_view_probabilities(self, logs: pd.DataFrame, batch_size: int = 4096
                                ) -> np.ndarray:
        """Outcome probabilities of each logged page view (``logs`` sorted)."""
        length = self.model.config.state_length
        items, feedback, positions = browsing_sequences(logs, length, self.num_items)
        before = _windows(items, positions[:, 0], length)
        signals = _windows(feedback, positions[:, 0], length)
        slates = torch.as_tensor(logged_slates(logs))
        parts = []
        for start in range(0, len(slates), batch_size):
            rows = slice(start, start + batch_size)
            hidden = self.encoder(self.model.item_vectors[torch.as_tensor(before[rows])],
                                  torch.as_tensor(signals[rows]))
            parts.append(self._outcomes(hidden, slates[rows]))
        return torch.cat(parts).numpy()


def fit_recsimu_kind(logs: pd.DataFrame, info: WorldInfo, *, state_length: int = 10,
                     pretrain_epochs: int = 2, adversarial_epochs: int = 4,
                     embedding_epochs: int = 2, valid_share: float = 0.1,
                     progress: bool = False, **training) -> RecSimuKindUsers:
    """RecSimu's Algorithm 1 on the item-by-item reading of a slate log (module docstring).

    A slate log gives ``k`` tuples per page view (290,000 for 10,000 random sessions of
    the default world), so the defaults are lighter than ``recgym fit recsimu``'s to
    keep a fidelity run within its 15 minutes: ``N`` = one page, 2 + 2 + 4 epochs (the
    best validation AUC is kept, as in the paper's selection).

    Args:
        logs: page views in the log schema.
        info: catalogue, slate size, history length and fit seed.
        state_length: ``N``, browsed items in the state (the paper: 20).
        pretrain_epochs: generator and discriminator pre-training epochs.
        adversarial_epochs: epochs of the adversarial stage.
        embedding_epochs: skip-gram epochs of the item embeddings.
        valid_share: sessions held out for model selection (validation AUC).
        progress: progress bars.
        **training: other :class:`~recgym.simulators.recsimu.fit.RecSimuTraining` fields.
    """
    logs = sorted_logs(logs)
    items, feedback, positions = browsing_sequences(logs, state_length, info.num_items)
    tuples = _tuples(logs, state_length, items, feedback, positions)
    valid = np.repeat(held_out_sessions(logs, valid_share, info.seed), info.slate_size)
    split = TupleSplit(tuples.subset(~valid), tuples.subset(valid), tuples.subset(valid))
    config = RecSimuConfig(num_items=info.num_items + 2, num_feedback=2,
                           state_length=state_length)
    settings = RecSimuTraining(seed=info.seed, generator_pretrain_epochs=pretrain_epochs,
                               discriminator_pretrain_epochs=pretrain_epochs,
                               adversarial_epochs=adversarial_epochs,
                               embedding_epochs=embedding_epochs, **training)
    session = logs["session_id"].to_numpy()
    session_ends = positions[np.r_[session[1:] != session[:-1], True], -1] + 1
    sessions = np.split(items, session_ends[:-1])
    model, _ = train_recsimu(split, sessions, config, settings, progress=progress)
    return RecSimuKindUsers(model, continuation_after_click(logs), info.slate_size,
                            info.history_length)


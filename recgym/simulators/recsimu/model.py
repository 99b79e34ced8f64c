"""RecSimu (Zhao et al., AAAI 2020): generator and 2K-class discriminator, eq. 1-12.

The state is the last ``N`` items a user browsed with the feedback on each,
``i_n = (e_n, f_n)``: ``e_n`` a fixed item embedding in (-1, 1) and ``f_n`` a one-hot
feedback class, embedded as ``F_n = tanh(W_F f_n + b_F)`` (eq. 1-2). A GRU encodes the
state. The generator's fully connected decoder maps the encoding to the embedding of
the next recommended item, imitating the logging recommender; the discriminator encodes
the state with its own GRU, the recommended item with fully connected layers, and
outputs ``2K`` logits: ``K`` real feedback classes, then ``K`` fake ones (eq. 3-4).

Readings chosen where the paper is open:

* Each model (generator, discriminator) has its own feedback embedding ``W_F, b_F``,
  shared across the ``N`` positions (the paper: "all embedding layers share the same
  parameters"; "different parameters" for the two GRUs).
* Eq. 6 says "real feedback" but sums the classes ``K+1 .. 2K``: it is the probability of
  the *fake* classes, and eq. 7 is the usual real/fake log-likelihood.
* Eq. 8's fake term labels a generated pair with the fake class of the logged feedback of
  the tuple it replaces (class ``K + r``).
* Eq. 10 is used as written: the generator minimises ``log D(s, G(s))``, the log
  probability that its item is recognised as fake.
* RecSimu-1 (3 outputs in the paper, ``K + 1`` in general) has a single fake class; its
  fake term in eq. 8 then targets that class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recgym.core.checkpoint import check_checkpoint, checkpoint_payload, config_from_checkpoint


@dataclass
class RecSimuConfig:
    """Architecture of a RecSimu model (defaults: the paper's experimental settings).

    Attributes:
        num_items: catalogue size; item ids are ``0 .. num_items - 1``.
        num_feedback: ``K``, feedback classes (2: negative / positive; 3: skip / click /
            purchase).
        state_length: ``N``, browsed items in the state (20).
        item_dim: ``|E|``, item embedding size (20).
        feedback_dim: ``|F|``, feedback embedding size (10).
        hidden_size: GRU hidden size (128).
        decoder_hidden: width of the generator's fully connected decoder.
        item_encoder_dim: width of the discriminator's item encoder ``e_D``.
        head_hidden: width of the discriminator's fully connected head.
        per_feedback_fake: ``2K`` outputs (RecSimu) or ``K + 1`` (RecSimu-1).
    """

    num_items: int
    num_feedback: int = 2
    state_length: int = 20
    item_dim: int = 20
    feedback_dim: int = 10
    hidden_size: int = 128
    decoder_hidden: int = 128
    item_encoder_dim: int = 64
    head_hidden: int = 128
    per_feedback_fake: bool = True

    def __post_init__(self) -> None:
        for name in ("num_items", "state_length", "item_dim", "feedback_dim", "hidden_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_feedback < 2:
            raise ValueError(f"num_feedback (K) must be >= 2, got {self.num_feedback}")

    @property
    def num_outputs(self) -> int:
        """Discriminator logits: ``2K``, or ``K + 1`` with a single fake class."""
        return self.num_feedback * 2 if self.per_feedback_fake else self.num_feedback + 1

    def to_dict(self) -> dict:
        """Plain dict, for checkpoints."""
        return asdict(self)


class StateEncoder(nn.Module):
    """GRU over ``I_n = [e_n, tanh(W_F f_n + b_F)]`` (eq. 1-2); returns the last hidden state."""

    def __init__(self, config: RecSimuConfig) -> None:
        super().__init__()
        self.num_feedback = config.num_feedback
        self.feedback = nn.Linear(config.num_feedback, config.feedback_dim)
        self.gru = nn.GRU(config.item_dim + config.feedback_dim, config.hidden_size,
                          batch_first=True)

    def inputs(self, item_vectors: Tensor, feedback: Tensor) -> Tensor:
        """``I_n`` from item embeddings ``(..., |E|)`` and feedback classes ``(...)``."""
        one_hot = F.one_hot(feedback, self.num_feedback).to(item_vectors.dtype)
        return torch.cat([item_vectors, torch.tanh(self.feedback(one_hot))], dim=-1)

    def forward(self, item_vectors: Tensor, feedback: Tensor) -> Tensor:
        """Encode states: ``(B, N, |E|)`` and ``(B, N)`` to ``(B, hidden)``."""
        _, last = self.gru(self.inputs(item_vectors, feedback))
        return last[0]

    def advance(self, hidden: Tensor, item_vectors: Tensor, feedback: Tensor) -> Tensor:
        """One GRU step from ``hidden`` ``(B, hidden)``: the state carried incrementally.

        The GRU equations of ``nn.GRU`` written out on its weights, so ``torch.compile``
        can fuse them (it does not trace ``nn.GRU``).
        """
        gru = self.gru
        inputs = F.linear(self.inputs(item_vectors, feedback), gru.weight_ih_l0, gru.bias_ih_l0)
        recurrent = F.linear(hidden, gru.weight_hh_l0, gru.bias_hh_l0)
        in_reset, in_update, in_new = inputs.chunk(3, dim=1)
        rec_reset, rec_update, rec_new = recurrent.chunk(3, dim=1)
        reset = torch.sigmoid(in_reset + rec_reset)
        update = torch.sigmoid(in_update + rec_update)
        new = torch.tanh(in_new + reset * rec_new)
        return (1.0 - update) * new + update * hidden


class Generator(nn.Module):
    """Encoder-decoder imitating the logging recommender: state to next item's embedding."""

    def __init__(self, config: RecSimuConfig) -> None:
        super().__init__()
        self.encoder = StateEncoder(config)
        self.decoder = nn.Sequential(
            nn.Linear(config.hidden_size, config.decoder_hidden), nn.ReLU(),
            nn.Linear(config.decoder_hidden, config.item_dim), nn.Tanh(),
        )

    def forward(self, item_vectors: Tensor, feedback: Tensor) -> Tensor:
        """``G(s)``: ``(B, |E|)`` in (-1, 1), the embedding space of the items."""
        return self.decoder(self.encoder(item_vectors, feedback))


class Discriminator(nn.Module):
    """Judges (state, item) pairs real or fake and predicts the feedback: ``2K`` logits."""

    def __init__(self, config: RecSimuConfig) -> None:
        super().__init__()
        self.encoder = StateEncoder(config)
        self.item_encoder = nn.Sequential(nn.Linear(config.item_dim, config.item_encoder_dim),
                                          nn.ReLU())
        self.head = nn.Sequential(
            nn.Linear(config.hidden_size + config.item_encoder_dim, config.head_hidden),
            nn.ReLU(), nn.Linear(config.head_hidden, config.num_outputs),
        )

    def logits_from_encoding(self, encoding: Tensor, action_vectors: Tensor) -> Tensor:
        """Logits from a state encoding ``(B, hidden)`` and item embeddings ``(B, |E|)``."""
        return self.head(torch.cat([encoding, self.item_encoder(action_vectors)], dim=-1))

    def forward(self, item_vectors: Tensor, feedback: Tensor, action_vectors: Tensor) -> Tensor:
        """Logits ``(B, num_outputs)``: real classes first, then fake (eq. 3)."""
        return self.logits_from_encoding(self.encoder(item_vectors, feedback), action_vectors)


def real_probability(log_probs: Tensor, num_feedback: int) -> Tensor:
    """``log D(s, a)`` of eq. 5: log of the summed real-class probabilities, ``(B,)``."""
    return torch.logsumexp(log_probs[:, :num_feedback], dim=1)


def fake_probability(log_probs: Tensor, num_feedback: int) -> Tensor:
    """Log of the summed fake-class probabilities (eq. 6), ``(B,)``."""
    return torch.logsumexp(log_probs[:, num_feedback:], dim=1)


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, feedback: Tensor, *,
                       num_feedback: int, alpha: float, lam: float,
                       adversarial: bool = True) -> Tensor:
    """``L_D = L_D^unsup + alpha L_D^sup`` (eq. 7-9), means over the batch.

    Args:
        real_logits: discriminator logits on logged pairs ``(s, a)``, ``(B, outputs)``.
        fake_logits: logits on generated pairs ``(s, G(s))``, ``(B, outputs)``.
        feedback: logged feedback class ``r`` of each tuple, ``(B,)``.
        num_feedback: ``K``.
        alpha: weight of the supervised component.
        lam: weight of the fake term of eq. 8.
        adversarial: include ``L_D^unsup`` (False for RecSimu-3).
    """
    k = num_feedback
    real_log = F.log_softmax(real_logits, dim=1)
    fake_log = F.log_softmax(fake_logits, dim=1)
    fake_target = k + feedback if fake_logits.shape[1] == 2 * k else torch.full_like(feedback, k)
    supervised = -(real_log.gather(1, feedback[:, None]).mean()
                   + lam * fake_log.gather(1, fake_target[:, None]).mean())
    loss = alpha * supervised
    if adversarial:
        loss = loss - (real_probability(real_log, k).mean() + fake_probability(fake_log, k).mean())
    return loss


def generator_loss(fake_logits: Tensor, generated: Tensor, logged: Tensor, *,
                   num_feedback: int, beta: float, adversarial: bool = True) -> Tensor:
    """``L_G = L_G^unsup + beta L_G^sup`` (eq. 10-12), means over the batch.

    Args:
        fake_logits: discriminator logits on ``(s, G(s))``.
        generated: ``G(s)``, ``(B, |E|)``.
        logged: embedding of the logged item ``a``, ``(B, |E|)``.
        num_feedback: ``K``.
        beta: weight of the supervised l2 term (0 for RecSimu-2).
        adversarial: include ``L_G^unsup`` (False when pre-training and for RecSimu-3).
    """
    loss = beta * ((logged - generated) ** 2).sum(dim=1).mean()
    if adversarial:
        loss = loss + fake_probability(F.log_softmax(fake_logits, dim=1), num_feedback).mean()
    return loss


class RecSimu(nn.Module):
    """A fitted RecSimu: item embeddings, generator and discriminator in one module.

    Args:
        config: the architecture.
        item_vectors: float ``(num_items, |E|)`` item embeddings in (-1, 1) (fixed inputs).
    """

    def __init__(self, config: RecSimuConfig, item_vectors: Tensor) -> None:
        super().__init__()
        if tuple(item_vectors.shape) != (config.num_items, config.item_dim):
            raise ValueError(f"item_vectors must have shape ({config.num_items}, "
                             f"{config.item_dim}), got {tuple(item_vectors.shape)}")
        self.config = config
        self.register_buffer("item_vectors", item_vectors.float().clone())
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)

    def embed(self, items: Tensor) -> Tensor:
        """Item embeddings of ids ``(...)``, ``(..., |E|)``; refuses ids outside the catalogue."""
        if items.numel() and (int(items.min()) < 0 or int(items.max()) >= self.config.num_items):
            raise ValueError(f"item ids must lie in [0, {self.config.num_items}) for this "
                             f"simulator, got {int(items.min())} .. {int(items.max())}")
        return self.item_vectors[items]

    def logits(self, state_items: Tensor, state_feedback: Tensor, action: Tensor) -> Tensor:
        """Discriminator logits ``(B, outputs)`` for logged items ``action`` ``(B,)``."""
        return self.discriminator(self.embed(state_items), state_feedback, self.embed(action))

    def feedback_probabilities(self, logits: Tensor) -> Tensor:
        """Feedback distribution ``(B, K)``: the real-class probabilities, renormalised."""
        return F.softmax(logits[:, : self.config.num_feedback], dim=1)

    def positive_score(self, logits: Tensor) -> Tensor:
        """The paper's AUC score: probability of the real positive classes (k >= 1)."""
        return F.softmax(logits, dim=1)[:, 1: self.config.num_feedback].sum(1)

    def checkpoint(self, **extra: Tensor | dict | int | float | str) -> dict:
        """Everything needed to rebuild the model: config, weights, plus ``extra`` entries."""
        return checkpoint_payload("recsimu", self.config.to_dict(), self.state_dict(), **extra)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> RecSimu:
        """Rebuild from :meth:`checkpoint` (as loaded with ``weights_only=True``)."""
        check_checkpoint(checkpoint, "recsimu", rebuild="recgym fit recsimu")
        config = config_from_checkpoint(RecSimuConfig, checkpoint)
        model = cls(config, checkpoint["state_dict"]["item_vectors"])
        model.load_state_dict(checkpoint["state_dict"])
        return model

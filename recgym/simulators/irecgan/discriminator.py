"""IRecGAN's sequence discriminator D and its Monte-Carlo score q_D (eq. 5-6).

D reads a whole interaction sequence ``tau = ((a_0, c_0, r_0), ..., (a_T, c_T, r_T))``
with an RNN and outputs the probability that it comes from the real environment; it is
trained on offline against generated sequences (eq. 5). A partial sequence is scored
by completing it ``N`` times with the user model U and the agent A and averaging D over
the completions (eq. 6, as in SeqGAN).

Readings chosen here (the paper defers D's details to an appendix not at hand): each
step enters the RNN as ``[mean embedding of the slate, embedding of the click or of the
end symbol, reward]``; D has its own item embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recgym.core.checkpoint import check_checkpoint, checkpoint_payload
from recgym.core.random import isolated_global_rng
from recgym.simulators.irecgan.fit import SessionTensors


class SequenceDiscriminator(nn.Module):
    """D: an RNN over (slate, click, reward) steps, ``sigmoid`` of a linear read-out."""

    @isolated_global_rng
    def __init__(self, num_items: int, embedding_dim: int = 32, hidden_size: int = 64,
                 seed: int = 0) -> None:
        """``seed`` fixes the initial weights (without touching torch's global generator)."""
        super().__init__()
        torch.manual_seed(seed)
        self.num_items = num_items
        self.embedding = nn.Embedding(num_items + 1, embedding_dim)  # last id: c_end
        self.rnn = nn.GRU(2 * embedding_dim + 1, hidden_size, batch_first=True)
        self.readout = nn.Linear(hidden_size, 1)

    def checkpoint(self, **extra) -> dict:
        """Sizes and weights (plus ``extra`` entries), loadable with ``weights_only``."""
        config = {"num_items": self.num_items, "embedding_dim": self.embedding.embedding_dim,
                  "hidden_size": self.rnn.hidden_size}
        return checkpoint_payload("irecgan-discriminator", config, self.state_dict(), **extra)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> SequenceDiscriminator:
        """Rebuild from :meth:`checkpoint`; refuses other checkpoints."""
        check_checkpoint(checkpoint, "irecgan-discriminator", rebuild="recgym fit irecgan")
        weights = checkpoint["state_dict"]
        embedding, readout = weights["embedding.weight"], weights["readout.weight"]
        discriminator = cls(len(embedding) - 1, embedding.shape[1], readout.shape[1])
        discriminator.load_state_dict(weights)
        return discriminator

    def step_inputs(self, sessions: SessionTensors) -> Tensor:
        """``(B, T, 2E + 1)`` step features of padded sessions."""
        k = sessions.slates.shape[-1]
        clicked = torch.where(sessions.positions < k, sessions.clicked, self.num_items)
        return torch.cat([self.embedding(sessions.slates).mean(-2), self.embedding(clicked),
                          sessions.rewards[..., None]], dim=-1)

    def step_features(self, slate: Tensor, clicked: Tensor, reward: Tensor) -> Tensor:
        """One step's input ``(B, 2E + 1)``: slate ``(B, k)``, click id or -1, reward."""
        click = torch.where(clicked >= 0, clicked, self.num_items)
        return torch.cat([self.embedding(slate).mean(-2), self.embedding(click),
                          reward[:, None]], dim=-1)

    def advance(self, hidden: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
        """One GRU step: the next hidden state ``(B, H)`` and ``D`` of the prefix so far."""
        _, hidden = self.rnn(features[:, None], hidden[None])
        return hidden[0], torch.sigmoid(self.readout(hidden[0])).squeeze(-1)

    def forward(self, sessions: SessionTensors) -> Tensor:
        """Logit that each whole session is real, ``(B,)`` (reads up to its length)."""
        outputs, _ = self.rnn(self.step_inputs(sessions))
        last = (sessions.lengths - 1).clamp_min(0)
        final = outputs.gather(1, last[:, None, None].expand(-1, 1, outputs.shape[-1]))[:, 0]
        return self.readout(final).squeeze(-1)


def discriminator_loss(discriminator: SequenceDiscriminator, real: SessionTensors,
                       generated: SessionTensors) -> Tensor:
    """Eq. 5: ``-E_data log D(tau) - E_g log(1 - D(tau))``."""
    real_logit, fake_logit = discriminator(real), discriminator(generated)
    return (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
            + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))

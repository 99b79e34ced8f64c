"""The feedback-prediction baselines of RecSimu's Figure 6: Random, LR, GRU, GAN and GAN-s.

All predict the feedback class of a (state, item) tuple from the same inputs as RecSimu
(item embeddings in (-1, 1) and one-hot feedback) and are scored the same way (F1 of the
predicted class, AUC of the positive classes' probability), with the epoch of best
validation AUC kept.

* Random: a uniform score in [0, 1], positive above 0.5 (the paper's definition).
* LR: ``sigmoid(w^T x)`` (softmax for K > 2) over the concatenated ``(e_n, f_n)`` of the
  state and the item's embedding, trained on the paper's squared loss
  ``1/2 (h(x) - y)^2``.
* GRU: a GRU over ``(e_n, F_n)``, its last state concatenated with the item's embedding,
  a softmax layer over the K classes, cross-entropy.
* GAN: a generator maps (state, item) to a feedback distribution; a discriminator (its
  own GRU) judges (state, item, feedback) tuples real (logged one-hot feedback) or fake
  (the generator's distribution); the generator is trained adversarially only.
* GAN-s: GAN plus the cross-entropy of the generator's feedback against the logged one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recgym.core.random import isolated_global_rng
from recgym.simulators.recsimu.data import Tuples, TupleSplit
from recgym.simulators.recsimu.fit import FeedbackMetrics, feedback_metrics
from recgym.simulators.recsimu.model import StateEncoder

BASELINES = ("random", "lr", "gru", "gan", "gan-s")


@dataclass
class BaselineTraining:
    """Shared hyper-parameters (the paper tunes baselines like RecSimu: Adam, batch 500)."""

    epochs: int = 10
    batch_size: int = 500
    learning_rate: float = 1e-3
    hidden_size: int = 128
    feedback_dim: int = 10
    seed: int = 0


class _Inputs:
    """Tuples as tensors: embedded states, one-hot feedback, item embeddings, targets."""

    def __init__(self, tuples: Tuples, item_vectors: Tensor, num_feedback: int) -> None:
        self.items = item_vectors[torch.from_numpy(tuples.state_items)]
        self.feedback = torch.from_numpy(tuples.state_feedback)
        self.action = item_vectors[torch.from_numpy(tuples.action)]
        self.target = torch.from_numpy(tuples.feedback)
        self.num_feedback = num_feedback

    def __len__(self) -> int:
        return len(self.target)

    def flat(self, index: Tensor | slice) -> Tensor:
        """LR features: every ``(e_n, f_n)`` of the state, then the item's embedding."""
        one_hot = F.one_hot(self.feedback[index], self.num_feedback).float()
        state = torch.cat([self.items[index], one_hot], dim=-1).flatten(1)
        return torch.cat([state, self.action[index]], dim=1)


class _GRUClassifier(nn.Module):
    def __init__(self, item_dim: int, num_feedback: int, training: BaselineTraining,
                 extra_inputs: int = 0) -> None:
        super().__init__()
        config = _encoder_config(item_dim, num_feedback, training)
        self.encoder = StateEncoder(config)
        self.output = nn.Linear(training.hidden_size + item_dim + extra_inputs,
                                1 if extra_inputs else num_feedback)

    def forward(self, data: _Inputs, index, extra: Tensor | None = None) -> Tensor:
        parts = [self.encoder(data.items[index], data.feedback[index]), data.action[index]]
        return self.output(torch.cat(parts + ([extra] if extra is not None else []), dim=1))


def _encoder_config(item_dim: int, num_feedback: int, training: BaselineTraining):
    from recgym.simulators.recsimu.model import RecSimuConfig

    return RecSimuConfig(num_items=1, num_feedback=num_feedback, item_dim=item_dim,
                         feedback_dim=training.feedback_dim, hidden_size=training.hidden_size)


@isolated_global_rng
def fit_baseline(name: str, split: TupleSplit, item_vectors: Tensor, num_feedback: int,
                 training: BaselineTraining | None = None) -> FeedbackMetrics:
    """Train one baseline on ``split.train``, select on ``split.valid``, score ``split.test``."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {BASELINES}")
    training = training or BaselineTraining()
    test = _Inputs(split.test, item_vectors, num_feedback)
    if name == "random":
        scores = np.random.default_rng(training.seed).random(len(test))
        classes = (scores > 0.5).astype(np.int64)
        return feedback_metrics(split.test.feedback, classes, scores, num_feedback)
    torch.manual_seed(training.seed)
    generator = torch.Generator().manual_seed(training.seed)
    train = _Inputs(split.train, item_vectors, num_feedback)
    valid = _Inputs(split.valid, item_vectors, num_feedback)
    item_dim = item_vectors.shape[1]
    if name == "lr":
        model = nn.Linear(train.flat(slice(0, 1)).shape[1], num_feedback)
        predict = _lr_predict(model)
    else:
        model = _GRUClassifier(item_dim, num_feedback, training)
        predict = _gru_predict(model)
    critic = _GRUClassifier(item_dim, num_feedback, training, extra_inputs=num_feedback) \
        if name.startswith("gan") else None
    optimizer = torch.optim.Adam(model.parameters(), lr=training.learning_rate)
    critic_optimizer = torch.optim.Adam(critic.parameters(), lr=training.learning_rate) \
        if critic is not None else None
    best_auc, best_state = -1.0, copy.deepcopy(model.state_dict())
    for _ in range(training.epochs):
        for index in torch.randperm(len(train), generator=generator).split(training.batch_size):
            probabilities = predict(train, index)
            target = train.target[index]
            if name == "lr":
                one_hot = F.one_hot(target, num_feedback).float()
                loss = 0.5 * ((probabilities - one_hot) ** 2).sum(1).mean()
            elif name == "gru":
                loss = F.nll_loss(torch.log(probabilities.clamp_min(1e-12)), target)
            else:
                loss = _gan_step(critic, critic_optimizer, train, index, probabilities, target,
                                 supervised=name == "gan-s")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        auc = _metrics(predict, valid, split.valid, num_feedback).auc
        if auc > best_auc:
            best_auc, best_state = auc, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return _metrics(predict, test, split.test, num_feedback)


def _lr_predict(model: nn.Linear):
    def predict(data: _Inputs, index) -> Tensor:
        logits = model(data.flat(index))
        return torch.softmax(logits, dim=1)
    return predict


def _gru_predict(model: _GRUClassifier):
    def predict(data: _Inputs, index) -> Tensor:
        return torch.softmax(model(data, index), dim=1)
    return predict


def _gan_step(critic: _GRUClassifier, optimizer, data: _Inputs, index: Tensor,
              probabilities: Tensor, target: Tensor, supervised: bool) -> Tensor:
    """Update the critic on real / generated feedback; return the generator's loss."""
    real = F.one_hot(target, data.num_feedback).float()
    real_logit = critic(data, index, real).squeeze(1)
    fake_logit = critic(data, index, probabilities.detach()).squeeze(1)
    critic_loss = (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
                   + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))
    optimizer.zero_grad()
    critic_loss.backward()
    optimizer.step()
    judged = critic(data, index, probabilities).squeeze(1)
    loss = F.binary_cross_entropy_with_logits(judged, torch.ones_like(judged))
    if supervised:
        loss = loss + F.nll_loss(torch.log(probabilities.clamp_min(1e-12)), target)
    return loss


@torch.no_grad()
def _metrics(predict, data: _Inputs, tuples: Tuples, num_feedback: int) -> FeedbackMetrics:
    probabilities = torch.cat([predict(data, index) for index in
                               torch.arange(len(data)).split(4096)])
    scores = probabilities[:, 1:].sum(1).numpy()
    return feedback_metrics(tuples.feedback, probabilities.argmax(1).numpy(), scores,
                            num_feedback)

"""Which observation keys are item ids, and how they become features: shared by SB3 and RLlib.

Both :class:`recgym.integrations.sb3.ItemEmbeddingExtractor` and
:class:`recgym.integrations.rllib_module.ItemEmbeddingRLModule` read item-id keys (a 1-d
``MultiDiscrete`` whose slots all take the same, at least 3, values) through one learned
``nn.Embedding`` per key, pooled as the mean over the history plus the last (most recent)
item; every other key is flattened (``Discrete`` / ``MultiDiscrete`` ones one-hot, as SB3
does). This module holds that layout and pooling with no engine imported (torch and
gymnasium only), so neither integration imports the other's engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

SINGLE_KEY = "obs"
"""Name of the observation in a non-Dict space (SyntheticMDP-v0, IRecGAN-v0)."""

MIN_ITEM_VALUES = 3
"""A ``MultiDiscrete`` key is read as item ids when its slots take at least this many
values (binary feedback flags stay one-hot)."""

EMBEDDING_DIM = 32
"""Width of a learned embedding where the simulator has none to start from."""

HIDDEN_SIZES: dict[str, list[int]] = {
    "SyntheticMDP-v0": [64, 64],
    "RecSimu-v0": [128, 128],
    "RecSimuSlate-v0": [128, 128],
    "IRecGAN-v0": [64, 64],
    "GANUserModel-v0": [128, 128],
}
"""Hidden layers of the policy and of the value network after the features, per env id
(SB3's ``net_arch``, RLlib's ``fcnet_hiddens``)."""


def subspaces(space: gym.Space) -> dict[str, gym.Space]:
    """The keys of a ``Dict`` space, or ``{"obs": space}`` for a single space."""
    if isinstance(space, gym.spaces.Dict):
        return dict(space.spaces)
    return {SINGLE_KEY: space}


def is_item_key(space: gym.Space) -> bool:
    """A 1-d ``MultiDiscrete`` whose slots all take the same, at least 3, values."""
    if not isinstance(space, gym.spaces.MultiDiscrete) or len(space.nvec.shape) != 1:
        return False
    values = np.unique(space.nvec)
    return len(values) == 1 and int(values[0]) >= MIN_ITEM_VALUES


def item_keys(space: gym.Space) -> list[str]:
    """Observation keys read as item ids (``"obs"`` for a bare ``MultiDiscrete``)."""
    return [key for key, sub in subspaces(space).items() if is_item_key(sub)]


def simulator_embeddings(env: gym.Env | str) -> dict[str, Tensor]:
    """The simulator's own item embeddings for the env's id keys, where it has them.

    * RecSimu (``RecSimu-v0``, ``RecSimuSlate-v0``): ``model.item_vectors``, the fixed
      ``(num_items, 20)`` item vectors its generator and discriminator read, for
      ``recent_items``;
    * IRecGAN (``IRecGAN-v0``): the weights of U's ``item_embedding`` (``(n + 1, 50)``,
      row ``n`` is the no-click padding), for ``clicks``;
    * SyntheticMDP-v0 has no item embedding (the world is a reward table) and
      GANUserModel-v0 observes item features already: nothing.
    """
    env = gym.make(env) if isinstance(env, str) else env
    rec_env = env.unwrapped
    model = getattr(rec_env.simulator, "model", None)
    spaces = subspaces(rec_env.observation_space)
    found: dict[str, Tensor] = {}
    candidates = {"recent_items": getattr(model, "item_vectors", None),
                  "clicks": getattr(getattr(model, "item_embedding", None), "weight", None)}
    for key, table in candidates.items():
        space_key = key if key in spaces else SINGLE_KEY
        if table is not None and space_key in spaces and is_item_key(spaces[space_key]) \
                and table.shape[0] == int(spaces[space_key].nvec[0]):
            found[space_key] = table.detach().float().cpu().clone()
    return found


@dataclass(frozen=True)
class ItemLayout:
    """An observation space read as features: item keys embedded, the others flattened.

    Attributes:
        spaces: the space's keys in its order (:func:`subspaces`).
        keys: the keys embedded.
    """

    spaces: dict[str, gym.Space]
    keys: tuple[str, ...]

    @classmethod
    def of(cls, space: gym.Space, keys: list[str] | None = None) -> ItemLayout:
        """The layout of ``space`` embedding ``keys`` (default :func:`item_keys`)."""
        spaces = subspaces(space)
        chosen = item_keys(space) if keys is None else list(keys)
        unknown = [key for key in chosen if key not in spaces or not is_item_key(spaces[key])]
        if unknown:
            raise ValueError(f"keys {unknown} are not MultiDiscrete item-id keys of the "
                             f"observation space; those are {item_keys(space)}")
        return cls(spaces, tuple(key for key in spaces if key in chosen))

    def tables(self, embedding_dim: int = EMBEDDING_DIM,
               embeddings: dict[str, Tensor] | None = None, freeze: bool = False
               ) -> nn.ModuleDict:
        """One ``nn.Embedding`` per item key, copied from ``embeddings`` where given.

        Args:
            embedding_dim: width of the tables not given in ``embeddings``.
            embeddings: initial tables by key, float ``(values, dim)``.
            freeze: keep the given tables fixed instead of fine-tuning them.
        """
        embeddings = embeddings or {}
        modules = nn.ModuleDict()
        for key in self.keys:
            values = int(self.spaces[key].nvec[0])
            table = embeddings.get(key)
            if table is None:
                modules[key] = nn.Embedding(values, embedding_dim)
                continue
            table = torch.as_tensor(table, dtype=torch.float32)
            if table.shape[0] != values:
                raise ValueError(f"embedding of {key!r} has {table.shape[0]} rows, the "
                                 f"space has {values} values")
            modules[key] = nn.Embedding.from_pretrained(table.clone(), freeze=freeze)
        return modules

    def spans(self, tables: nn.ModuleDict) -> dict[str, tuple[int, int]]:
        """Where each key's part starts in the features, and its width."""
        spans, start = {}, 0
        for key, sub in self.spaces.items():
            width = 2 * tables[key].embedding_dim if key in self.keys else gym.spaces.flatdim(sub)
            spans[key], start = (start, width), start + width
        return spans

    def width(self, tables: nn.ModuleDict) -> int:
        """Width of the features."""
        return sum(width for _, width in self.spans(tables).values())

    def features(self, observations: Tensor | dict[str, Tensor],
                 tables: nn.ModuleDict) -> Tensor:
        """Features ``(B, width)``, keys in the order of the space.

        Item keys: the mean embedding of the slots and the embedding of the last slot.
        ``Discrete`` / ``MultiDiscrete`` keys arrive as ids (a batch of the space, as RLlib
        passes them) or as concatenated one-hot blocks (as SB3's ``preprocess_obs`` hands
        them over); ids of other keys are one-hot encoded, item ids of one-hot blocks
        recovered with one ``argmax`` per block. ``Box`` keys are flattened.
        """
        if not isinstance(observations, dict):
            observations = {SINGLE_KEY: observations}
        parts = []
        for key, sub in self.spaces.items():
            value = observations[key]
            value = value.reshape(len(value), -1)
            sizes = _sizes(sub)
            if key in self.keys:
                if value.shape[1] != len(sizes):
                    value = value.reshape(len(value), len(sizes), int(sizes[0])).argmax(-1)
                vectors = tables[key](value.long())
                parts += [vectors.mean(1), vectors[:, -1]]
            elif sizes is not None and value.shape[1] == len(sizes):
                parts.append(_one_hot(value.long(), sizes))
            else:
                parts.append(value.float())
        return torch.cat(parts, dim=1)


def _sizes(space: gym.Space) -> np.ndarray | None:
    """Values of each slot of a Discrete / MultiDiscrete space (None for other spaces)."""
    if isinstance(space, gym.spaces.Discrete):
        return np.array([space.n])
    if isinstance(space, gym.spaces.MultiDiscrete):
        return np.asarray(space.nvec).reshape(-1)
    return None


def _one_hot(ids: Tensor, sizes: np.ndarray) -> Tensor:
    """Concatenated one-hot blocks ``(B, sum(sizes))`` of ids ``(B, len(sizes))``."""
    if len(np.unique(sizes)) == 1:
        return nn.functional.one_hot(ids, int(sizes[0])).reshape(len(ids), -1).float()
    return torch.cat([nn.functional.one_hot(ids[:, slot], int(size))
                      for slot, size in enumerate(sizes)], dim=1).float()

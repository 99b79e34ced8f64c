"""stable-baselines3 on plain ``gym.make(id)``: item ids embedded, not one-hot.

SB3 one-hot encodes ``MultiDiscrete`` observations, so RecSimu's 20 recent items over a
catalogue of 9,742 become a 194,880-wide input (28M parameters in the first layer).
:class:`ItemEmbeddingExtractor` reads those keys as item ids instead: one ``nn.Embedding``
per key, pooled as the mean over the history plus the last (most recent) item, so order
matters a little; other keys are flattened as SB3's ``CombinedExtractor`` does.
:func:`policy_kwargs` gives what each registered id needs, :func:`policy_class` the
policy for an algorithm::

    from stable_baselines3 import PPO
    from recgym.integrations.sb3 import policy_class, policy_kwargs

    env = gym.make("RecSimu-v0")
    model = PPO(policy_class(PPO), env, policy_kwargs=policy_kwargs("RecSimu-v0"))

The policies of :func:`policy_class` hand item ids to the extractor as they are; SB3's own
``"MlpPolicy"`` / ``"MultiInputPolicy"`` also work with the same ``policy_kwargs`` but
build the one-hot first (the extractor then reads the ids back with ``argmax``), which
costs memory and time on large catalogues. Requires stable-baselines3 (``pip install
"recgym[sb3]"``); ``import recgym`` does not import this module.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy, BaseModel
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import Tensor, nn

from recgym.registration import ENV_DESCRIPTIONS

_SINGLE_KEY = "obs"
"""Name of the observation in a non-Dict space (SyntheticMDP-v0, IRecGAN-v0)."""

MIN_ITEM_VALUES = 3
"""A ``MultiDiscrete`` key is read as item ids when its slots take at least this many
values (binary feedback flags stay one-hot)."""

# env id -> net_arch of the policy / value heads after the extractor (one list: PPO, A2C
# and DQN all accept it), and the embedding width where no simulator embedding exists.
_NET_ARCH: dict[str, list[int]] = {
    "SyntheticMDP-v0": [64, 64],
    "RecSimu-v0": [128, 128],
    "RecSimuSlate-v0": [128, 128],
    "IRecGAN-v0": [64, 64],
    "GANUserModel-v0": [128, 128],
}
_EMBEDDING_DIM = 32


def _subspaces(space: gym.Space) -> dict[str, gym.Space]:
    if isinstance(space, gym.spaces.Dict):
        return dict(space.spaces)
    return {_SINGLE_KEY: space}


def is_item_key(space: gym.Space) -> bool:
    """A 1-d ``MultiDiscrete`` whose slots all take the same, at least 3, values."""
    if not isinstance(space, gym.spaces.MultiDiscrete) or len(space.nvec.shape) != 1:
        return False
    values = np.unique(space.nvec)
    return len(values) == 1 and int(values[0]) >= MIN_ITEM_VALUES


def item_keys(space: gym.Space) -> list[str]:
    """Observation keys read as item ids (``"obs"`` for a bare ``MultiDiscrete``)."""
    return [key for key, sub in _subspaces(space).items() if is_item_key(sub)]


class ItemEmbeddingExtractor(BaseFeaturesExtractor):
    """Embeds item-id observation keys and flattens the others.

    Item keys arrive as ids from the policies of :func:`policy_class`; SB3's own policies
    hand them over as concatenated one-hot blocks (``preprocess_obs`` has no switch to
    turn that off), from which the ids are recovered with one ``argmax`` per block.
    Features: for each item key, the mean embedding of its slots and the embedding of its
    last slot (the most recent item); every other key flattened; keys in the order of the
    space.

    Args:
        observation_space: the env's observation space (a ``Dict`` or one space).
        keys: keys to embed (default: :func:`item_keys` of the space).
        embedding_dim: width of each embedding (ignored for keys given in ``embeddings``).
        embeddings: initial embedding tables by key, float ``(values, dim)``, e.g. the
            simulator's own item vectors (see :func:`simulator_embeddings`).
        freeze: keep given embeddings fixed instead of fine-tuning them.
    """

    def __init__(self, observation_space: gym.Space, keys: list[str] | None = None,
                 embedding_dim: int = _EMBEDDING_DIM,
                 embeddings: dict[str, Tensor] | None = None, freeze: bool = False) -> None:
        super().__init__(observation_space, features_dim=1)
        spaces = _subspaces(observation_space)
        chosen = item_keys(observation_space) if keys is None else list(keys)
        unknown = [key for key in chosen if key not in spaces or not is_item_key(spaces[key])]
        if unknown:
            raise ValueError(f"keys {unknown} are not MultiDiscrete item-id keys of the "
                             f"observation space; those are {item_keys(observation_space)}")
        embeddings = embeddings or {}
        self.dict_space = isinstance(observation_space, gym.spaces.Dict)
        self.order = list(spaces)
        self.embeddings = nn.ModuleDict()
        self.slots: dict[str, tuple[int, int]] = {}
        width = 0
        for key, sub in spaces.items():
            if key in chosen:
                values, slots = int(sub.nvec[0]), len(sub.nvec)
                table = embeddings.get(key)
                if table is None:
                    module = nn.Embedding(values, embedding_dim)
                else:
                    table = torch.as_tensor(table, dtype=torch.float32)
                    if table.shape[0] != values:
                        raise ValueError(f"embedding of {key!r} has {table.shape[0]} rows, the "
                                         f"space has {values} values")
                    module = nn.Embedding.from_pretrained(table.clone(), freeze=freeze)
                self.embeddings[key] = module
                self.slots[key] = (slots, values)
                width += 2 * module.embedding_dim
            else:
                width += gym.spaces.flatdim(sub)
        self._features_dim = width

    def forward(self, observations: Tensor | dict[str, Tensor]) -> Tensor:
        """Features ``(B, features_dim)`` of a preprocessed (one-hot) batch."""
        if not self.dict_space:
            observations = {_SINGLE_KEY: observations}
        parts = []
        for key in self.order:
            value = observations[key]
            if key in self.embeddings:
                slots, values = self.slots[key]
                ids = value.long() if value.shape[1] == slots else \
                    value.reshape(len(value), slots, values).argmax(-1)
                vectors = self.embeddings[key](ids)
                parts += [vectors.mean(1), vectors[:, -1]]
            else:
                parts.append(value.reshape(len(value), -1).float())
        return torch.cat(parts, dim=1)


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
    spaces = _subspaces(rec_env.observation_space)
    found: dict[str, Tensor] = {}
    candidates = {"recent_items": getattr(model, "item_vectors", None),
                  "clicks": getattr(getattr(model, "item_embedding", None), "weight", None)}
    for key, table in candidates.items():
        space_key = key if key in spaces else _SINGLE_KEY
        if table is not None and space_key in spaces and is_item_key(spaces[space_key]) \
                and table.shape[0] == int(spaces[space_key].nvec[0]):
            found[space_key] = table.detach().float().cpu().clone()
    return found


class _ItemIdFeatures(BaseModel):
    """Preprocesses observations as SB3 does, except item-id keys, left as ids."""

    def extract_features(self, obs: Any, features_extractor: BaseFeaturesExtractor) -> Tensor:
        """Features of a batch; an :class:`ItemEmbeddingExtractor` gets its keys as ids."""
        keys = features_extractor.embeddings if isinstance(
            features_extractor, ItemEmbeddingExtractor) else {}
        if not keys:
            return super().extract_features(obs, features_extractor)
        if not isinstance(obs, dict):
            return features_extractor(obs)
        spaces = self.observation_space.spaces
        return features_extractor({
            key: value if key in keys else
            preprocess_obs(value, spaces[key], normalize_images=self.normalize_images)
            for key, value in obs.items()})


class ItemActorCriticPolicy(ActorCriticPolicy, _ItemIdFeatures):
    """SB3's actor-critic policy (PPO, A2C) without one-hot encoding of item ids."""


class _ItemQNetwork(QNetwork, _ItemIdFeatures):
    pass


class ItemDQNPolicy(DQNPolicy):
    """SB3's DQN policy without one-hot encoding of item ids."""

    def make_q_net(self) -> QNetwork:
        """The Q-network, with its own extractor (as ``DQNPolicy.make_q_net``)."""
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return _ItemQNetwork(**net_args).to(self.device)


def policy_class(algorithm: str | type) -> type:
    """The policy to pass to an SB3 algorithm (a class or its name) with :func:`policy_kwargs`.

    ``DQN``: :class:`ItemDQNPolicy`; on-policy algorithms (PPO, A2C):
    :class:`ItemActorCriticPolicy`. Both take Dict and plain observations.
    """
    name = algorithm if isinstance(algorithm, str) else algorithm.__name__
    return ItemDQNPolicy if name.upper() == "DQN" else ItemActorCriticPolicy


def policy_kwargs(env_id: str, *, env: gym.Env | None = None, pretrained: bool = True,
                  **overrides: Any) -> dict[str, Any]:
    """``policy_kwargs`` for SB3 PPO, A2C or DQN on ``gym.make(env_id)``.

    Args:
        env_id: a registered recgym id.
        env: the env the model will train on (default ``gym.make(env_id)``); its simulator
            gives the initial item embeddings.
        pretrained: initialise item embeddings from the simulator's own
            (:func:`simulator_embeddings`) where it has them.
        **overrides: replace any entry (``net_arch=[256]``); ``features_extractor_kwargs``
            is merged into the default one.
    """
    if env_id not in ENV_DESCRIPTIONS:
        raise ValueError(f"unknown recgym env {env_id!r}; choose from {sorted(ENV_DESCRIPTIONS)}")
    env = env if env is not None else gym.make(env_id)
    extractor: dict[str, Any] = {"keys": item_keys(env.observation_space)}
    if pretrained:
        found = simulator_embeddings(env)
        if found:
            extractor["embeddings"] = found
    extractor.update(overrides.pop("features_extractor_kwargs", {}))
    return {"features_extractor_class": ItemEmbeddingExtractor,
            "features_extractor_kwargs": extractor,
            "net_arch": list(_NET_ARCH.get(env_id, [64, 64])), **overrides}

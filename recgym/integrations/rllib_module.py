"""An RLlib RLModule (new API stack) for PPO that reads item ids as ids: embedded, not one-hot.

RLlib's default models need a flat ``Box``, so :mod:`recgym.integrations.rllib` one-hot
encodes small id spaces and scales RecSimu's 9,742 item ids to [0, 1] (a number, not an
identity). :class:`ItemEmbeddingRLModule` takes recgym's own observations instead
(``observation_encoding="native"``) and embeds every item-id key as SB3's
:class:`~recgym.integrations.sb3.ItemEmbeddingExtractor` does (the same
:class:`~recgym.integrations.layout.ItemLayout`: mean of the history plus the most recent
item, other keys flattened), optionally starting from the simulator's own item
embeddings. :func:`rl_module_spec` gives the ``RLModuleSpec`` for an id, the RLlib
counterpart of SB3's ``policy_kwargs(id)``::

    from ray.rllib.algorithms.ppo import PPOConfig
    from recgym.integrations.rllib import env_runner_options, register_rllib_envs
    from recgym.integrations.rllib_module import rl_module_spec

    register_rllib_envs()
    config = (PPOConfig()
              .environment("RecSimu-v0", env_config={"observation_encoding": "native"})
              .env_runners(**env_runner_options(256, num_env_runners=1))
              .rl_module(rl_module_spec=rl_module_spec("RecSimu-v0")))

Slates (``MultiDiscrete`` actions, every id but RecSimu-v0) are drawn as independent
categorical slots (RLlib's ``TorchMultiCategorical``): repeats within a slate are possible,
unlike SB3's Plackett-Luce ``SlateDistribution``. Requires Ray with RLlib (``pip install
"recgym[ray]"``); ``import recgym`` does not import this module.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchMultiCategorical
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch import Tensor, nn

from recgym.integrations.layout import (
    EMBEDDING_DIM,
    HIDDEN_SIZES,
    ItemLayout,
    item_keys,
    simulator_embeddings,
)
from recgym.registration import ENV_DESCRIPTIONS

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _mlp(width: int, hiddens: list[int], out: int, activation: str, gain: float) -> nn.Sequential:
    """``width -> hiddens -> out``, orthogonal weights (last layer scaled by ``gain``)."""
    layers: list[nn.Module] = []
    for size in hiddens:
        layers += [nn.Linear(width, size), _ACTIVATIONS[activation]()]
        width = size
    layers.append(nn.Linear(width, out))
    for layer in layers:
        if isinstance(layer, nn.Linear):
            last = layer is layers[-1]
            nn.init.orthogonal_(layer.weight, gain if last else math.sqrt(2))
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


class ItemEmbeddingRLModule(TorchRLModule, ValueFunctionAPI):
    """PPO's actor-critic on recgym's native observations, item ids embedded.

    Features (:class:`~recgym.integrations.layout.ItemLayout`, shared by both heads): for
    each item key the mean embedding of its slots and the embedding of the last slot;
    other keys flattened, ``Discrete`` / ``MultiDiscrete`` ones one-hot. Then separate
    policy and value MLPs, as SB3's ``net_arch=[...]`` builds them. The policy outputs
    categorical logits: ``n`` for a ``Discrete`` action, the concatenated logits of every
    slot for a ``MultiDiscrete`` slate (RLlib's ``TorchMultiCategorical``); the last layer
    starts near zero, so the first policy is near uniform.

    ``model_config`` keys (:func:`rl_module_spec` fills them in for an id):

    * ``item_keys``: observation keys to embed (default: every item-id key);
    * ``embeddings``: initial tables by key, float ``(values, dim)`` (e.g.
      :func:`~recgym.integrations.layout.simulator_embeddings`);
    * ``freeze_embeddings``: keep those tables fixed (default False: fine-tune them);
    * ``embedding_dim``: width of the tables not given (default 32);
    * ``fcnet_hiddens``, ``fcnet_activation`` (``tanh`` or ``relu``): the MLPs, as in
      RLlib's ``DefaultModelConfig`` (default ``[64, 64]``, ``tanh``). ``vf_share_layers``
      is not read: the tables are always shared, as in SB3 (own value-network tables
      learned less in a one-seed probe, benchmarks/results/rllib_embedding.md).

    Requires ``env_config={"observation_encoding": "native"}`` (recgym's spaces).
    """

    def setup(self) -> None:
        """Build the embedding tables, the two MLPs and the action distribution."""
        config = dict(self.model_config or {})
        try:
            self.item_layout = ItemLayout.of(self.observation_space, config.get("item_keys"))
        except ValueError as error:
            raise ValueError(f"{error}; ItemEmbeddingRLModule reads recgym's own observations: "
                             "set env_config={'observation_encoding': 'native'}") from error
        self.embeddings = self.item_layout.tables(config.get("embedding_dim", EMBEDDING_DIM),
                                                  config.get("embeddings"),
                                                  config.get("freeze_embeddings", False))
        width = self.item_layout.width(self.embeddings)
        hiddens = list(config.get("fcnet_hiddens", [64, 64]))
        activation = config.get("fcnet_activation", "tanh")
        space = self.action_space
        if isinstance(space, gym.spaces.Discrete):
            logits = int(space.n)
        elif isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1:
            logits = int(space.nvec.sum())
            self.action_dist_cls = TorchMultiCategorical.get_partial_dist_cls(
                space=space, input_lens=[int(n) for n in space.nvec])
        else:
            raise ValueError(f"ItemEmbeddingRLModule acts in Discrete or 1-d MultiDiscrete "
                             f"spaces, not {space}")
        self.pi = _mlp(width, hiddens, logits, activation, gain=0.01)
        self.vf = _mlp(width, hiddens, 1, activation, gain=1.0)

    def features(self, batch: dict[str, Any]) -> Tensor:
        """Features ``(B, width)`` of the batch's observations (``Columns.OBS``)."""
        return self.item_layout.features(batch[Columns.OBS], self.embeddings)

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Action logits (inference and exploration)."""
        return {Columns.ACTION_DIST_INPUTS: self.pi(self.features(batch))}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Action logits, and the features for :meth:`compute_values` to reuse."""
        features = self.features(batch)
        return {Columns.ACTION_DIST_INPUTS: self.pi(features), Columns.EMBEDDINGS: features}

    def compute_values(self, batch: dict[str, Any], embeddings: Tensor | None = None) -> Tensor:
        """State values ``(B,)``, from the features of :meth:`_forward_train` when given."""
        features = self.features(batch) if embeddings is None else embeddings
        return self.vf(features).squeeze(-1)


def rl_module_spec(env_id: str, *, env: gym.Env | None = None,
                   env_config: dict[str, Any] | None = None, pretrained: bool = True,
                   **model_config: Any) -> RLModuleSpec:
    """The ``RLModuleSpec`` of :class:`ItemEmbeddingRLModule` for PPO on a recgym id.

    Pass it as ``config.rl_module(rl_module_spec=...)`` with ``env_config=
    {"observation_encoding": "native", ...}``; RLlib fills in the spaces from the env.

    Args:
        env_id: a registered recgym id.
        env: the env the module will train on (default ``gym.make(env_id, **env_config)``);
            its simulator gives the initial item embeddings.
        env_config: the env constructor arguments (RLlib's keys ``num_envs`` and
            ``observation_encoding`` are ignored).
        pretrained: initialise item embeddings from the simulator's own
            (:func:`~recgym.integrations.layout.simulator_embeddings`) where it has them.
        **model_config: replace any ``model_config`` entry (``fcnet_hiddens=[256]``).
    """
    if env_id not in ENV_DESCRIPTIONS:
        raise ValueError(f"unknown recgym env {env_id!r}; choose from {sorted(ENV_DESCRIPTIONS)}")
    if env is None:
        kwargs = {key: value for key, value in (env_config or {}).items()
                  if key not in ("num_envs", "observation_encoding")}
        env = gym.make(env_id, **kwargs)
    config: dict[str, Any] = {"item_keys": item_keys(env.observation_space),
                              "fcnet_hiddens": list(HIDDEN_SIZES.get(env_id, [64, 64])),
                              "fcnet_activation": "tanh"}
    if pretrained:
        found = simulator_embeddings(env)
        if found:  # numpy: a plain value in RLlib's config and checkpoints
            config["embeddings"] = {key: np.asarray(table) for key, table in found.items()}
    return RLModuleSpec(module_class=ItemEmbeddingRLModule, model_config={**config,
                                                                          **model_config})

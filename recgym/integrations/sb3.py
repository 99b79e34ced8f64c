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
costs memory and time on large catalogues. :func:`train_agent` trains a model with the
hyper-parameters measured to learn (:func:`algorithm_kwargs`, also what ``recgym rl``
and ``benchmarks/clients.py`` use), :func:`compare_with_random` rolls it out against the
random policy. Requires stable-baselines3 (``pip install "recgym[sb3]"``); ``import
recgym`` does not import this module.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import MultiCategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy, BaseModel
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import Tensor, nn
from tqdm.auto import tqdm

from recgym.integrations.layout import (  # noqa: F401  (is_item_key, ...: still public here)
    EMBEDDING_DIM,
    HIDDEN_SIZES,
    MIN_ITEM_VALUES,
    ItemLayout,
    is_item_key,
    item_keys,
    simulator_embeddings,
)
from recgym.registration import ENV_DESCRIPTIONS

# env id -> options of ItemActorCriticPolicy beyond ``slate=True`` (which every slate
# action gets): GANUserModel-v0 scores its pool by each candidate's features.
_SCORER_OPTIONS: dict[str, dict[str, Any]] = {
    "GANUserModel-v0": {"candidate_key": "candidates", "net_arch": {"pi": [], "vf": [128, 128]}},
}


class ItemEmbeddingExtractor(BaseFeaturesExtractor):
    """Embeds item-id observation keys and flattens the others (:class:`ItemLayout`).

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
                 embedding_dim: int = EMBEDDING_DIM,
                 embeddings: dict[str, Tensor] | None = None, freeze: bool = False) -> None:
        super().__init__(observation_space, features_dim=1)
        self.item_layout = ItemLayout.of(observation_space, keys)
        self.embeddings = self.item_layout.tables(embedding_dim, embeddings, freeze)
        self._features_dim = self.item_layout.width(self.embeddings)

    def layout(self) -> dict[str, tuple[int, int]]:
        """Where each observation key's part starts in the features, and its width."""
        return self.item_layout.spans(self.embeddings)

    def forward(self, observations: Tensor | dict[str, Tensor]) -> Tensor:
        """Features ``(B, features_dim)`` of a preprocessed (one-hot) batch."""
        return self.item_layout.features(observations, self.embeddings)


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


class SlateDistribution(MultiCategoricalDistribution):
    """``k`` distinct values out of ``n`` drawn by a Plackett-Luce model of one score vector.

    SB3's ``MultiCategorical`` gives every slot its own ``n`` logits and samples slots
    independently: ``k`` times the parameters, and repeats that most recgym envs show once.
    Here one score per value ranks them all: a sample draws slot ``j`` from the softmax of
    the scores of the values not yet drawn (Gumbel top-``k``), the greedy slate is the
    top ``k``, and the log-probability of a slate is the Plackett-Luce one. Entropy (for
    ``ent_coef``): ``k`` times that of the softmax over all ``n`` values, the same scale as
    ``k`` independent slots; the exact slate entropy has no closed form.
    """

    def __init__(self, slate_size: int, num_values: int) -> None:
        super().__init__([num_values] * slate_size)
        self.slate_size, self.num_values = slate_size, num_values

    def proba_distribution_net(self, latent_dim: int) -> nn.Module:
        """One score per value (not per slot and value)."""
        return nn.Linear(latent_dim, self.num_values)

    def proba_distribution(self, action_logits: Tensor) -> SlateDistribution:
        """Keep the scores ``(B, n)``."""
        self.scores = action_logits
        return self

    def log_prob(self, actions: Tensor) -> Tensor:
        """Plackett-Luce log-probability ``(B,)`` of ordered slates ``(B, k)``."""
        return self.step_log_probs(actions).sum(1)

    def step_log_probs(self, actions: Tensor) -> Tensor:
        """``(B, k)``: log-probability of each slot's value given the slots before it.

        Their cumulative sums are the log-probabilities of the slates' prefixes (what
        off-policy estimators of slates read, :class:`recgym.core.policy.SB3Policy`). A
        value repeated from an earlier slot cannot be drawn again: ``-inf`` there.
        """
        actions = actions.long()
        drawn_before = torch.zeros(len(actions), self.slate_size, self.num_values,
                                   dtype=torch.bool, device=actions.device)
        for slot in range(1, self.slate_size):
            drawn_before[:, slot] = drawn_before[:, slot - 1]
            drawn_before[:, slot].scatter_(1, actions[:, slot - 1:slot], True)
        remaining = self.scores[:, None, :].masked_fill(drawn_before, float("-inf"))
        repeated = drawn_before.gather(2, actions[..., None])[..., 0]
        return (self.scores.gather(1, actions) - remaining.logsumexp(-1)).masked_fill(
            repeated, float("-inf"))

    def entropy(self) -> Tensor:
        """``k`` times the entropy of the softmax over all values, ``(B,)``."""
        log_p = self.scores.log_softmax(-1)
        return -self.slate_size * (log_p.exp() * log_p).sum(-1)

    def sample(self) -> Tensor:
        """A Plackett-Luce slate: the top ``k`` of the scores plus Gumbel noise."""
        uniform = torch.rand_like(self.scores).clamp(min=torch.finfo(self.scores.dtype).tiny)
        return (self.scores - (-uniform.log()).log()).topk(self.slate_size, dim=1).indices

    def mode(self) -> Tensor:
        """The greedy slate: the ``k`` highest scores, best first."""
        return self.scores.topk(self.slate_size, dim=1).indices


class CandidateScorer(nn.Module):
    """Scores each of an env's ``K`` candidates from its own features and the rest of the view.

    For envs that offer a pool of candidates by their features (``GANUserModel-v0``'s
    ``candidates``, ``K * d`` floats) and act by position in it: one small network, shared
    by all positions, reads ``[f_c, u]`` where ``f_c`` is candidate ``c``'s ``d`` features
    and ``u`` a summary of every other feature (the click history). A flat MLP over all
    ``K * d`` features has to learn the same scoring ``K`` times, once per position.

    Args:
        layout: ``(start, width)`` of each observation key in the extractor's features.
        candidate_key: the key holding the candidates' features.
        num_candidates: ``K``.
        width: hidden width of the summary and of the scoring network.
    """

    def __init__(self, layout: dict[str, tuple[int, int]], candidate_key: str,
                 num_candidates: int, width: int = 64) -> None:
        super().__init__()
        if candidate_key not in layout:
            raise ValueError(f"candidate_key {candidate_key!r} is not an observation key; keys: "
                             f"{sorted(layout)}")
        start, size = layout[candidate_key]
        if size % num_candidates:
            raise ValueError(f"{candidate_key!r} has {size} values, not a multiple of the "
                             f"{num_candidates} candidates the action picks from")
        self.candidates = slice(start, start + size)
        self.context = [slice(begin, begin + span) for key, (begin, span) in layout.items()
                        if key != candidate_key]
        self.num_candidates, self.feature_dim = num_candidates, size // num_candidates
        context_dim = sum(part.stop - part.start for part in self.context)
        self.summary = nn.Sequential(nn.Linear(context_dim, width), nn.ReLU()) \
            if context_dim else None
        self.score = nn.Sequential(
            nn.Linear(self.feature_dim + (width if context_dim else 0), width), nn.ReLU(),
            nn.Linear(width, 1))
        with torch.no_grad():  # near-uniform first policy, as SB3's 0.01-gain action layer
            self.score[-1].weight.mul_(0.01)
            self.score[-1].bias.zero_()

    def forward(self, features: Tensor) -> Tensor:
        """Scores ``(B, K)`` of features ``(B, F)``."""
        candidates = features[:, self.candidates].reshape(
            len(features), self.num_candidates, self.feature_dim)
        if self.summary is not None:
            context = self.summary(torch.cat([features[:, part] for part in self.context], 1))
            candidates = torch.cat(
                [candidates, context[:, None].expand(-1, self.num_candidates, -1)], dim=2)
        return self.score(candidates)[..., 0]


class ItemActorCriticPolicy(ActorCriticPolicy, _ItemIdFeatures):
    """SB3's actor-critic policy (PPO, A2C) without one-hot encoding of item ids.

    Args:
        slate: act with a :class:`SlateDistribution` (``k`` distinct items ranked by one
            score vector) instead of ``k`` independent categorical slots; needs a
            ``MultiDiscrete`` action whose slots take the same values.
        candidate_key: score positions with a :class:`CandidateScorer` over this key's
            per-candidate features (needs ``slate``, an :class:`ItemEmbeddingExtractor`
            and ``net_arch=dict(pi=[], vf=[...])`` so the scorer sees the features).
        scorer_width: hidden width of the :class:`CandidateScorer`.
        *args, **kwargs: as SB3's ``ActorCriticPolicy``.
    """

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, *args: Any,
                 slate: bool = False, candidate_key: str | None = None, scorer_width: int = 64,
                 **kwargs: Any) -> None:
        if slate:
            nvec = getattr(action_space, "nvec", None)
            if not isinstance(action_space, gym.spaces.MultiDiscrete) or nvec.ndim != 1 \
                    or len(np.unique(nvec)) != 1 or int(nvec[0]) < len(nvec):
                raise ValueError("slate=True needs a MultiDiscrete action whose k slots take the "
                                 f"same n >= k values; this env's is {action_space}")
        if candidate_key is not None and not slate:
            raise ValueError("candidate_key scores slate positions: pass slate=True with it")
        self.slate, self.candidate_key, self.scorer_width = slate, candidate_key, scorer_width
        super().__init__(observation_space, action_space, *args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        """SB3's networks, with the slate distribution and candidate scorer when asked for."""
        if self.slate:
            nvec = self.action_space.nvec
            self.action_dist = SlateDistribution(len(nvec), int(nvec[0]))
        super()._build(lr_schedule)
        if self.candidate_key is None:
            return
        extractor = self.pi_features_extractor
        if not isinstance(extractor, ItemEmbeddingExtractor):
            raise ValueError("candidate_key needs features_extractor_class=ItemEmbeddingExtractor")
        if self.mlp_extractor.latent_dim_pi != extractor.features_dim:
            raise ValueError("candidate_key needs the features as they are: net_arch="
                             "dict(pi=[], vf=[...])")
        self.action_net = CandidateScorer(extractor.layout(), self.candidate_key,
                                          int(self.action_space.nvec[0]), self.scorer_width)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),
                                              **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        """SB3's, plus the slate options (so ``save`` / ``load`` rebuild the same policy)."""
        return {**super()._get_constructor_parameters(), "slate": self.slate,
                "candidate_key": self.candidate_key, "scorer_width": self.scorer_width}


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
                  slate: bool = True, **overrides: Any) -> dict[str, Any]:
    """``policy_kwargs`` for SB3 PPO, A2C or DQN on ``gym.make(env_id)``.

    Args:
        env_id: a registered recgym id.
        env: the env the model will train on (default ``gym.make(env_id)``); its simulator
            gives the initial item embeddings.
        pretrained: initialise item embeddings from the simulator's own
            (:func:`simulator_embeddings`) where it has them.
        slate: where the action is a slate (``MultiDiscrete``, every id but RecSimu-v0),
            act with :class:`ItemActorCriticPolicy`'s :class:`SlateDistribution` (and on
            GANUserModel-v0 its :class:`CandidateScorer`): these need :func:`policy_class`.
            False gives kwargs SB3's own policies (``"MultiInputPolicy"``) also take, with
            ``k`` independent slots, which learn less (docs/clients.md).
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
            "net_arch": list(HIDDEN_SIZES.get(env_id, [64, 64])),
            **(_slate_options(env_id, env.action_space) if slate else {}), **overrides}


def _slate_options(env_id: str, action_space: gym.Space) -> dict[str, Any]:
    if not isinstance(action_space, gym.spaces.MultiDiscrete):
        return {}
    return {"slate": True, **_SCORER_OPTIONS.get(env_id, {})}


ALGORITHMS = ("ppo", "a2c", "dqn")
"""The SB3 algorithms :func:`policy_class` has a policy for (lower-case names)."""

# What benchmarks/clients.py measured to learn (results/clients.md); A2C: SB3's defaults
# (not in the benchmark; they learn SyntheticMDP-v0 in 50,000 steps, docs/clients.md).
# Every id shares its algorithm's settings; the budgets differ per id.
_ALGORITHM_KWARGS: dict[str, dict[str, Any]] = {
    "ppo": {"n_steps": 128, "batch_size": 256, "n_epochs": 4, "learning_rate": 1e-3,
            "ent_coef": 0.01},
    "a2c": {},
    "dqn": {"learning_starts": 1_000, "batch_size": 64, "train_freq": 4, "learning_rate": 1e-3,
            "exploration_fraction": 0.3, "target_update_interval": 1_000,
            "buffer_size": 50_000},
}
N_ENVS = {"ppo": 8, "a2c": 8, "dqn": 1}
"""Env copies each algorithm trains on by default (DQN's settings were measured on one)."""

# constructor arguments :func:`train_agent` sets itself (``--set`` may not)
_SET_BY_TRAINING = ("self", "policy", "env", "policy_kwargs", "seed", "_init_setup_model")


def _algorithm_name(algorithm: str | type) -> str:
    name = (algorithm if isinstance(algorithm, str) else algorithm.__name__).lower()
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose from {', '.join(ALGORITHMS)}")
    return name


def _algorithm_class(algorithm: str | type) -> type:
    import stable_baselines3

    return getattr(stable_baselines3, _algorithm_name(algorithm).upper())


def algorithm_kwargs(env_id: str, algorithm: str | type) -> dict[str, Any]:
    """Hyper-parameters of ``algorithm`` (``"ppo"``, ``PPO``, ...) on ``gym.make(env_id)``.

    The settings ``benchmarks/clients.py`` trains with (SB3's defaults for the rest), so
    ``recgym rl`` and the measured results cannot drift apart.
    """
    if env_id not in ENV_DESCRIPTIONS:
        raise ValueError(f"unknown recgym env {env_id!r}; choose from {sorted(ENV_DESCRIPTIONS)}")
    return dict(_ALGORITHM_KWARGS[_algorithm_name(algorithm)])


def settable_keys(algorithm: str | type) -> list[str]:
    """Constructor arguments of the algorithm a caller may set (not those training sets)."""
    import inspect

    parameters = inspect.signature(_algorithm_class(algorithm).__init__).parameters
    return sorted(key for key in parameters if key not in _SET_BY_TRAINING)


def check_settings(algorithm: str | type, settings: dict[str, Any]) -> None:
    """Refuse settings the algorithm does not take, naming the ones it does."""
    unknown = sorted(set(settings) - set(settable_keys(algorithm)))
    if unknown:
        raise ValueError(f"{_algorithm_name(algorithm).upper()} has no setting "
                         f"{', '.join(map(repr, unknown))}; allowed: "
                         f"{', '.join(settable_keys(algorithm))}")


def algorithms_for(action_space: gym.Space) -> list[str]:
    """The algorithms of :data:`ALGORITHMS` that act in ``action_space`` (DQN: Discrete)."""
    discrete = isinstance(action_space, gym.spaces.Discrete)
    return [name for name in ALGORITHMS if discrete or name != "dqn"]


def check_algorithm(algorithm: str | type, env_id: str, action_space: gym.Space) -> None:
    """Refuse an algorithm that cannot act in the env's action space, naming those that can."""
    if _algorithm_name(algorithm) not in algorithms_for(action_space):
        raise ValueError(f"{_algorithm_name(algorithm).upper()} needs a Discrete action space; "
                         f"{env_id}'s is {type(action_space).__name__}: use one of "
                         f"{', '.join(algorithms_for(action_space))}")


class ProgressBar(BaseCallback):
    """A tqdm bar over the env steps of ``model.learn`` (SB3's own also needs rich)."""

    def _on_training_start(self) -> None:
        self.bar = tqdm(total=self.locals["total_timesteps"] - self.model.num_timesteps,
                        desc="train", unit="step")

    def _on_step(self) -> bool:
        self.bar.update(self.model.num_timesteps - self.bar.n)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def train_agent(env_id: str, algorithm: str | type, steps: int, *, n_envs: int | None = None,
                seed: int = 0, env_kwargs: dict[str, Any] | None = None,
                progress: bool = False, **settings: Any) -> Any:
    """An SB3 model trained for ``steps`` env steps on copies of ``gym.make(env_id)``.

    The model is built with :func:`policy_class`, :func:`policy_kwargs` and
    :func:`algorithm_kwargs` and trains on ``make_vec_env(env_id, n_envs)``, as
    ``benchmarks/clients.py`` measured it.

    Args:
        env_id: a registered recgym id.
        algorithm: ``"ppo"``, ``"a2c"`` or ``"dqn"`` (or the SB3 class).
        steps: env steps of training (summed over the copies).
        n_envs: env copies (default :data:`N_ENVS` of the algorithm).
        seed: seed of the model and its env copies (SB3 seeds torch with it).
        env_kwargs: env constructor arguments.
        progress: show a progress bar.
        **settings: replace any of :func:`algorithm_kwargs` or another constructor argument.

    Raises:
        ValueError: an unknown id or setting, or an algorithm that cannot act in the env.
    """
    from stable_baselines3.common.env_util import make_vec_env

    env_kwargs = env_kwargs or {}
    name = _algorithm_name(algorithm)
    env = gym.make(env_id, **env_kwargs)
    check_algorithm(name, env_id, env.action_space)
    check_settings(name, settings)
    # SB3 asks for render_mode="rgb_array", which recgym envs do not have (they render text)
    venv = make_vec_env(env_id, n_envs=n_envs or N_ENVS[name], seed=seed,
                        env_kwargs={"render_mode": None, **env_kwargs})
    model_class = _algorithm_class(name)
    model = model_class(policy_class(name), venv, policy_kwargs=policy_kwargs(env_id, env=env),
                        seed=seed, **{"device": "cpu", **algorithm_kwargs(env_id, name),
                                      **settings})
    return model.learn(steps, callback=ProgressBar() if progress else None)


def compare_with_random(env_id: str, model: Any, n_sessions: int = 2000, seed: int = 1,
                        **env_kwargs: Any) -> dict[str, float]:
    """The greedy ``model`` against the uniformly random policy on the same user seeds.

    Both roll out ``n_sessions`` sessions (the registered episode limit) in the simulator
    of ``gym.make(env_id, **env_kwargs)``.

    Returns:
        mean returns ``trained`` and ``random``, their standard errors ``trained_se`` and
        ``random_se``, and ``z``: the difference over its standard error.
    """
    from recgym.core import RandomPolicy, SB3Policy
    from recgym.core.env import num_candidates
    from recgym.evaluation import evaluate_policy

    env = gym.make(env_id, **env_kwargs)
    simulator, max_steps = env.unwrapped.simulator, env.spec.max_episode_steps
    trained = evaluate_policy(simulator, SB3Policy(model, env.unwrapped.observation_keys,
                                                   simulator.slate_size),
                              n_sessions, seed=seed, max_steps=max_steps)
    random = evaluate_policy(simulator, RandomPolicy(num_candidates(simulator),
                                                     simulator.slate_size, seed=seed),
                             n_sessions, seed=seed, max_steps=max_steps)
    std_err = math.hypot(trained.return_std_err, random.return_std_err)
    return {"trained": trained.mean_return, "trained_se": trained.return_std_err,
            "random": random.mean_return, "random_se": random.return_std_err,
            "z": (trained.mean_return - random.mean_return) / std_err if std_err
            else float("nan")}

"""Policies and simulators by name, as the ``recgym`` commands take them.

A policy is ``random``, ``max`` / ``mix`` (the logging policies of IRecGAN sec. 7.1,
which read the ground truth of a synthetic world) or the path of a saved
stable-baselines3 model; a simulator is the user model behind a registered env id.
gymnasium, torch and stable-baselines3 are imported only when a function runs.

A stable-baselines3 zip keeps its spaces, schedules and classes as pickles, and loading
them runs whatever code the file carries. :func:`load_sb3_model` never unpickles them:
it reads the zip's JSON, gives SB3 the spaces of the env the model is used in and
rebuilds each schedule, class and the policy kwargs from its readable fields (classes
only by name, from SB3, recgym and torch: a class pickled by reference is read from the
pickle's opcodes, never loaded), and refuses a file that carries any other pickled
object unless the user passes ``trust=True`` (``--trust-model``), which is then plain
``ALGO.load``.
"""

from __future__ import annotations

import base64
import io
import json
import pickletools
import re
import zipfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gymnasium as gym

    from recgym.core import Policy, UserSimulator

REFERENCE_POLICIES = ("random", "max", "mix")
# stable-baselines3 algorithms whose saved models a policy may be (tests check they exist)
SB3_ALGORITHMS = ("a2c", "ddpg", "dqn", "ppo", "sac", "td3")


@dataclass
class EnvParts:
    """What the commands need of a registered env: its simulator and its agent's view.

    Attributes:
        simulator: the batched user model.
        observation_keys: the simulator keys the env's observation holds.
        observation_space: one user's observation space.
        action_space: one user's action space.
    """

    simulator: UserSimulator
    observation_keys: tuple[str, ...]
    observation_space: gym.Space
    action_space: gym.Space


def simulator_for_env(env_id: str, kwargs: dict[str, Any]) -> EnvParts:
    """The simulator behind a registered env id, with the keys and spaces its env exposes.

    Raises:
        ValueError: ``env_id`` is not a recgym env.
    """
    import gymnasium as gym

    import recgym

    if env_id not in recgym.ENV_DESCRIPTIONS:
        raise ValueError(f"unknown env {env_id!r}; `recgym list` shows the registered ones")
    vec_env = gym.make_vec(env_id, num_envs=1, vectorization_mode="vector_entry_point", **kwargs)
    unwrapped = vec_env.unwrapped
    return EnvParts(unwrapped.simulator, tuple(unwrapped.observation_keys),
                    unwrapped.single_observation_space, unwrapped.single_action_space)


def _zip_data(path: Path) -> dict[str, Any]:
    """The JSON part of a stable-baselines3 zip (plain JSON: reading it runs nothing)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a stable-baselines3 model zip ({error}); save one "
                         "with model.save(PATH)") from None


def _number(text: str, default: float = 0.0) -> float:
    match = re.search(r"-?\d+(?:\.\d*)?(?:e-?\d+)?", text)
    return float(match.group()) if match else default


def _pickled_class_name(field: Any) -> str | None:
    """``module.name`` of the class a pickled field refers to, read from its opcodes.

    Nothing is unpickled: a class pickled by reference is just its module and name;
    anything else (a class pickled by value, an instance) gives None.
    """
    if not isinstance(field, dict):
        return None
    try:
        operations = [(op.name, arg) for op, arg, _ in pickletools.genops(
            base64.b64decode(str(field.get(":serialized:", ""))))]
    except ValueError:  # not base64, or not a pickle
        return None
    significant = [(name, arg) for name, arg in operations
                   if name not in ("PROTO", "FRAME", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT",
                                   "STOP")]
    names = [name for name, _ in significant]
    if names == ["GLOBAL"]:
        return str(significant[0][1]).replace(" ", ".")
    if len(names) == 3 and names[2] == "STACK_GLOBAL" and all(
            "UNICODE" in name for name in names[:2]):
        return f"{significant[0][1]}.{significant[1][1]}"
    return None


def _qualified(classes: list[type]) -> dict[str, type]:
    return {f"{cls.__module__}.{cls.__qualname__}": cls for cls in classes}


def _policy_classes(algorithm: Any) -> dict[str, type]:
    """The policies a model of ``algorithm`` may have: SB3's own and recgym's, by name."""
    from recgym.integrations.sb3 import ItemActorCriticPolicy, ItemDQNPolicy

    base = algorithm.policy_aliases["MlpPolicy"]
    candidates = [*algorithm.policy_aliases.values(), ItemActorCriticPolicy, ItemDQNPolicy]
    return _qualified([cls for cls in candidates if issubclass(cls, base)])


def _policy_kwargs_classes() -> dict[str, type]:
    """Classes a policy's kwargs may name: extractors, activations, optimisers (no file code).

    recgym's item extractor, SB3's extractors, torch's activations and optimisers.
    """
    import torch
    from stable_baselines3.common import torch_layers

    from recgym.integrations.sb3 import ItemEmbeddingExtractor

    candidates = [ItemEmbeddingExtractor, *vars(torch_layers).values(),
                  *vars(torch.nn.modules.activation).values(), *vars(torch.optim).values()]
    return _qualified([cls for cls in candidates if isinstance(cls, type)
                       and issubclass(cls, (torch.nn.Module, torch.optim.Optimizer))])


def _embedding_tables(path: Path) -> dict[str, Any]:
    """Zero tables of the shapes of the item embeddings in the zip's policy weights."""
    import torch

    with zipfile.ZipFile(path) as archive:
        if "policy.pth" not in archive.namelist():
            return {}  # no weights: SB3 refuses the file when it loads them
        weights = torch.load(io.BytesIO(archive.read("policy.pth")), map_location="cpu",
                             weights_only=True)
    tables: dict[str, Any] = {}
    for name, tensor in weights.items():
        match = re.search(r"features_extractor\.embeddings\.(\w+)\.weight$", name)
        if match:
            tables.setdefault(match.group(1), torch.zeros(tensor.shape))
    return tables


def _safe_policy_kwargs(fields: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """The policy kwargs rebuilt from the zip's readable fields (None if one cannot be).

    A class is taken by name from :func:`_policy_kwargs_classes`; recgym's item extractor
    gets its tables' shapes from the policy weights (the weights then fill them in).
    """
    from recgym.integrations.sb3 import ItemEmbeddingExtractor

    classes = _policy_kwargs_classes()
    kwargs: dict[str, Any] = {}
    for key, value in fields.items():
        if key.startswith(":"):
            continue
        if isinstance(value, str) and value.startswith("<"):  # the repr of an object
            named = re.fullmatch(r"<class '([\w.]+)'>", value)
            if not named or named.group(1) not in classes:
                return None
            value = classes[named.group(1)]
        kwargs[key] = value
    if kwargs.get("features_extractor_class") is ItemEmbeddingExtractor:
        tables = _embedding_tables(path)
        kwargs["features_extractor_kwargs"] = {"keys": list(tables), "embeddings": tables}
    return kwargs


def _safe_replacements(algorithm: Any, data: dict[str, Any], path: Path,
                       observation_space: gym.Space, action_space: gym.Space) -> dict[str, Any]:
    """Objects that stand in for the zip's pickles, built from the env and readable fields."""
    import gymnasium as gym
    from stable_baselines3.common import buffers, utils
    from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit

    dict_observation = isinstance(observation_space, gym.spaces.Dict)
    replacements: dict[str, Any] = {
        "observation_space": observation_space, "action_space": action_space,
        "rollout_buffer_class": buffers.DictRolloutBuffer if dict_observation
        else buffers.RolloutBuffer,
        "replay_buffer_class": buffers.DictReplayBuffer if dict_observation
        else buffers.ReplayBuffer,
        # training state, not needed to act: start afresh
        "train_freq": TrainFreq(1, TrainFrequencyUnit.STEP),
        "_last_obs": None, "_last_episode_starts": None, "_last_original_obs": None,
        "ep_info_buffer": deque(maxlen=100), "ep_success_buffer": deque(maxlen=100),
    }
    policy = _policy_classes(algorithm).get(_pickled_class_name(data.get("policy_class")) or "")
    if policy is not None:
        replacements["policy_class"] = policy
    if isinstance(data.get("policy_kwargs"), dict) and ":serialized:" in data["policy_kwargs"]:
        policy_kwargs = _safe_policy_kwargs(data["policy_kwargs"], path)
        if policy_kwargs is not None:
            replacements["policy_kwargs"] = policy_kwargs
    for key in ("lr_schedule", "clip_range", "clip_range_vf", "learning_rate"):
        fields = data.get(key)
        if isinstance(fields, dict):
            value = _number(str(fields.get("value_schedule", "")))
            replacements[key] = utils.FloatSchedule(utils.ConstantSchedule(value))
    exploration = data.get("exploration_schedule")
    if isinstance(exploration, dict):
        replacements["exploration_schedule"] = utils.LinearSchedule(
            _number(str(exploration.get("start")), 1.0), _number(str(exploration.get("end"))),
            _number(str(exploration.get("end_fraction")), 0.1))
    return replacements


def load_sb3_model(path: str | Path, algo: str, observation_space: gym.Space | None,
                   action_space: gym.Space | None, *, trust: bool = False) -> Any:
    """Load a stable-baselines3 model zip without running code from it.

    Args:
        path: the zip written by ``model.save``.
        algo: its algorithm, one of :data:`SB3_ALGORITHMS`.
        observation_space: the observation space of the env it is used in.
        action_space: the action space of that env.
        trust: load it as SB3 does, unpickling whatever the file holds (only for files
            from someone you trust).

    Raises:
        ValueError: not a model zip; a model of another algorithm or of other spaces; a
            file carrying pickled objects that cannot be rebuilt safely.
    """
    import stable_baselines3

    path = Path(path)
    algorithm = getattr(stable_baselines3, algo.upper())
    if trust:
        return algorithm.load(path, device="cpu")
    data = _zip_data(path)
    if observation_space is None or action_space is None:
        raise ValueError(f"loading {path} safely needs the env it runs in (its spaces): pass "
                         "--env ID, or --trust-model to unpickle the file's own spaces")
    replacements = _safe_replacements(algorithm, data, path, observation_space, action_space)
    pickled = {key for key, value in data.items()
               if isinstance(value, dict) and ":serialized:" in value}
    if "policy_class" in pickled and "policy_class" not in replacements:
        name = _pickled_class_name(data["policy_class"]) or "a class defined in the file"
        raise ValueError(f"{path} holds a policy ({name}) that is not a {algo.upper()} policy "
                         "of stable-baselines3 or recgym: pass the --algo it was trained with "
                         "(or --trust-model for a policy of your own: loading then runs the "
                         "file's code)")
    unsafe = sorted(pickled - replacements.keys())
    if unsafe:
        raise ValueError(
            f"{path} carries pickled objects recgym cannot rebuild without running code from "
            f"the file: {unsafe}. If you trust whoever wrote it, pass --trust-model "
            "(trust=True): loading then runs the file's code")
    saved = re.search(r"\.(\w+)'>", str(data.get("observation_space", {}).get(":type:", "")))
    saved_type = saved.group(1) if saved else "unknown"
    if saved_type != type(observation_space).__name__:
        raise ValueError(f"{path} was trained on a {saved_type} observation space, this env's "
                         f"is a {type(observation_space).__name__}: use the env it was trained on")
    try:
        return algorithm.load(path, device="cpu", custom_objects=replacements)
    except (RuntimeError, KeyError, ValueError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path} does not fit this env (is it a {algo.upper()} model trained "
                         f"on this env's spaces? --algo sets the algorithm): "
                         f"{first_line[:200]}") from None


def make_policy(spec: str, *, num_items: int, slate_size: int,
                simulator: UserSimulator | None = None,
                observation_keys: tuple[str, ...] = ("clicks",), algo: str = "ppo",
                seed: int = 0, stochastic: bool = False, observation_space: gym.Space | None = None,
                action_space: gym.Space | None = None, trust_model: bool = False) -> Policy:
    """A reference policy by name, or a saved stable-baselines3 model by path.

    Args:
        spec: ``random``, ``max``, ``mix`` or a model file.
        num_items: catalogue size.
        slate_size: items per slate.
        simulator: the synthetic world ``max`` / ``mix`` read their truth from.
        observation_keys: what a saved model was trained to see.
        algo: the stable-baselines3 algorithm of a saved model (one of `SB3_ALGORITHMS`).
        seed: seed of stochastic reference policies.
        stochastic: sample from a saved model's distribution instead of acting greedily.
        observation_space: the env's observation space, which a saved model is given.
        action_space: the env's action space, likewise.
        trust_model: unpickle the model file's own objects (see :func:`load_sb3_model`).

    Raises:
        ValueError: ``max`` / ``mix`` without a synthetic world.
        FileNotFoundError: ``spec`` is neither a reference policy nor a file.
        ModuleNotFoundError: a model file, but stable-baselines3 is not installed.
    """
    from recgym.core import RandomPolicy

    if spec == "random":
        return RandomPolicy(num_items, slate_size, seed=seed)
    if spec in REFERENCE_POLICIES:
        if simulator is None or not hasattr(simulator, "world"):
            raise ValueError(f"policy {spec!r} reads the ground truth of a synthetic world; "
                             "use it with SyntheticMDP-v0 (and the --env-arg of the logs)")
        from recgym.simulators.synthetic_mdp import logging_policy

        return logging_policy(spec, simulator, seed=seed)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"policy {spec!r} is neither one of {REFERENCE_POLICIES} "
                                "nor a file")
    try:
        import stable_baselines3  # noqa: F401
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError("loading a model needs stable-baselines3: "
                                  "pip install recgym[sb3]", name=error.name) from error
    from recgym.core import SB3Policy

    model = load_sb3_model(path, algo, observation_space, action_space, trust=trust_model)
    return SB3Policy(model, observation_keys, slate_size, deterministic=not stochastic)

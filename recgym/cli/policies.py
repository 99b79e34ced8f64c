"""Policies and simulators by name, as the ``recgym`` commands take them.

A policy is ``random``, ``max`` / ``mix`` (the logging policies of IRecGAN sec. 7.1,
which read the ground truth of a synthetic world) or the path of a saved
stable-baselines3 model; a simulator is the user model behind a registered env id.
gymnasium, torch and stable-baselines3 are imported only when a function runs.

A stable-baselines3 zip keeps its spaces, schedules and classes as pickles, and loading
them runs whatever code the file carries. :func:`load_sb3_model` never unpickles them:
it reads the zip's JSON, gives SB3 the spaces of the env the model is used in and
rebuilds each schedule and class from its readable fields, and refuses a file that
carries any other pickled object unless the user passes ``trust=True``
(``--trust-model``), which is then plain ``ALGO.load``.
"""

from __future__ import annotations

import json
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


def _safe_replacements(algorithm: Any, data: dict[str, Any], observation_space: gym.Space,
                       action_space: gym.Space) -> dict[str, Any]:
    """Objects that stand in for the zip's pickles, built from the env and readable fields."""
    import gymnasium as gym
    from stable_baselines3.common import buffers, utils
    from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit

    dict_observation = isinstance(observation_space, gym.spaces.Dict)
    policies = {cls.__name__: cls for cls in algorithm.policy_aliases.values()}
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
    init = str(data.get("policy_class", {}).get("__init__", ""))
    name = re.search(r"function (\w+)\.__init__", init)
    if name and name.group(1) in policies:
        replacements["policy_class"] = policies[name.group(1)]
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
    replacements = _safe_replacements(algorithm, data, observation_space, action_space)
    pickled = {key for key, value in data.items()
               if isinstance(value, dict) and ":serialized:" in value}
    if "policy_class" in pickled and "policy_class" not in replacements:
        init = str(data["policy_class"].get("__init__", ""))
        raise ValueError(f"{path} holds a policy ({init.split('.')[0].split()[-1]}) that is "
                         f"not a {algo.upper()} policy: pass the --algo it was trained with")
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

"""Gymnasium adapters over a batched user simulator.

:class:`RecVectorEnv` is the primary path: ``N`` users stepped in one torch call, with
Gymnasium's next-step autoreset. :class:`RecEnv` is the batch-of-one case with numpy I/O.
User ``i`` of a vector env reset with ``seed=s`` follows exactly the trajectory of a
single env reset with ``seed=s + i`` (see :mod:`recgym.core.random`).
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from torch import Tensor

from recgym.core import validation
from recgym.core.batch import SimulationBatch, as_slate_tensor
from recgym.core.simulator import UserSimulator
from recgym.core.threads import own_threads

_MAX_SEED = 2**63 - 1


def user_seed(seed: Any, users: int = 1) -> int | None:
    """``seed`` as a Python int (numpy and integral floats accepted), checked for ``users``.

    User ``i`` is seeded with ``seed + i``, so ``seed`` must leave room for all of them in
    the int64 range of the random streams.
    """
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Real) or \
            (not isinstance(seed, numbers.Integral) and not float(seed).is_integer()):
        raise TypeError(f"seed must be an integer, got {seed!r} ({type(seed).__name__})")
    value = int(seed)
    if not 0 <= value <= _MAX_SEED - users:
        raise ValueError(f"seed must be in [0, {_MAX_SEED - users}] so that the seeds of all "
                         f"{users} users (seed + i) fit in int64, got {value}")
    return value


def observation_space_for(simulator: UserSimulator, keys: Sequence[str]) -> gym.Space:
    """The single-user space of the chosen observation keys (bare space if only one)."""
    spaces = simulator.observation_spaces()
    unknown = [key for key in keys if key not in spaces]
    if unknown or not keys:
        raise ValueError(
            f"observation_keys {list(keys)} must be a non-empty subset of {sorted(spaces)}"
        )
    if len(keys) == 1:
        return spaces[keys[0]]
    return gym.spaces.Dict({key: spaces[key] for key in keys})


def to_numpy_observation(observation: dict[str, Tensor], keys: Sequence[str]):
    """Numpy copy of the chosen observation keys (bare array if only one key)."""
    if len(keys) == 1:
        return observation[keys[0]].cpu().numpy().copy()
    return {key: observation[key].cpu().numpy().copy() for key in keys}


def _first_user(observation):
    """User 0 of a batched observation (an array or a dict of arrays)."""
    if isinstance(observation, dict):
        return {key: value[0] for key, value in observation.items()}
    return observation[0]


def one_user_compute(method: Callable) -> Callable:
    """Decorator: run a single env's method in the cheapest torch mode for one user.

    ``inference_mode`` skips autograd's bookkeeping on every op (about a tenth of a
    one-user step); oneDNN is off because its per-call setup makes a one-user RNN step
    (IRecGAN-v0's LSTM) about twice as slow as torch's own kernel. Tensors the env keeps
    become inference tensors: read them freely, modify them only through the env.
    """
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any):
        onednn = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False
        try:
            with torch.inference_mode():
                return method(*args, **kwargs)
        finally:
            torch.backends.mkldnn.enabled = onednn

    return wrapper


RENDER_MODES = ["ansi"]
_RENDER_MAX_IDS = 20  # an integer observation key with more ids than this is left out


def _ids(values: np.ndarray) -> str:
    return "[" + " ".join(str(int(v)) for v in np.asarray(values).reshape(-1)) + "]"


def render_users(simulator: UserSimulator, batch: SimulationBatch,
                 last: tuple[Tensor, Tensor, Tensor] | None) -> list[str]:
    """One short text per user: last slate, click and reward, recent history, true state.

    The history lines are the simulator's integer observation keys of at most 20 ids (its
    item-id histories, feedback and, in synthetic worlds, the true state); float features
    are left out. A simulator may add lines with a ``describe(state) -> list[str]`` hook
    (one string per user of the batch).

    Args:
        simulator: the user model.
        batch: the users' simulation (its state and elapsed steps).
        last: ``(slates (N, k), clicked (N,), reward (N,))`` of the last step, None before
            (tensors: the envs keep them as the step returned them and convert here, so
            an unrendered step pays nothing).
    """
    observation = {key: value.cpu().numpy() for key, value in batch.observe().items()
                   if not value.dtype.is_floating_point and value[0].numel() <= _RENDER_MAX_IDS}
    describe = getattr(simulator, "describe", None)
    extra = describe(batch.state) if describe is not None else None
    elapsed = batch.elapsed.cpu().numpy()
    texts = []
    for user in range(batch.num_users):
        if last is None:
            lines = [f"step {int(elapsed[user])}: no slate shown yet"]
        else:
            slates, clicked, reward = (value.cpu().numpy() for value in last)
            click = int(clicked[user])
            lines = [f"step {int(elapsed[user])}: slate {_ids(slates[user])} -> "
                     f"{'no click' if click < 0 else f'click {click}'}, "
                     f"reward {float(reward[user]):.3g}"]
        lines += [f"{key}: {_ids(value[user]) if value[user].ndim else int(value[user])}"
                  for key, value in observation.items()]
        if extra is not None:
            lines.append(extra[user])
        texts.append("\n".join(lines))
    return texts


def num_candidates(simulator: UserSimulator) -> int:
    """How many ids a slate position can take (the catalogue unless the model says otherwise)."""
    return int(getattr(simulator, "num_candidates", simulator.num_items))


def slate_action_space(simulator: UserSimulator, single_item: bool) -> gym.Space:
    """``MultiDiscrete([n_candidates] * k)``, or ``Discrete(n_candidates)`` for one item."""
    if single_item:
        if simulator.slate_size != 1:
            raise ValueError(f"single_item needs slate_size 1, got {simulator.slate_size}")
        return gym.spaces.Discrete(num_candidates(simulator))
    return gym.spaces.MultiDiscrete(
        np.full(simulator.slate_size, num_candidates(simulator), dtype=np.int64))


class RecEnv(gym.Env):
    """One simulated user as a Gymnasium env (numpy in, numpy out).

    Args:
        simulator: the user model.
        observation_keys: which of the simulator's observation keys the agent sees.
        single_item: act with one item id (``Discrete``) instead of a slate of one.
        device: where the simulation runs.
        num_threads: torch intra-op threads of the simulation (None: the variable
            ``RECGYM_NUM_THREADS``, else 1; see :mod:`recgym.core.threads`). The caller's
            own setting is restored after every call.
        render_mode: ``"ansi"``: :meth:`render` returns a short text of the last slate,
            the click, the user's recent history and the true state where there is one;
            any other mode renders nothing (Gymnasium's ``make`` warns about it, and
            stable-baselines3's ``make_vec_env`` asks for ``"rgb_array"`` by default).

    The episode terminates when the user leaves; time limits come from the registered
    ``max_episode_steps`` (Gymnasium's ``TimeLimit``).
    """

    metadata: dict[str, Any] = {"render_modes": RENDER_MODES, "render_fps": 1}

    def __init__(self, simulator: UserSimulator, *, observation_keys: Sequence[str],
                 single_item: bool = False, device: torch.device | str = "cpu",
                 num_threads: int | None = None, render_mode: str | None = None) -> None:
        self.simulator = simulator
        self.observation_keys = tuple(observation_keys)
        self.single_item = validation.flag("single_item", single_item)
        self.render_mode = render_mode
        self._last: tuple[Tensor, Tensor, Tensor] | None = None
        self.observation_space = observation_space_for(simulator, self.observation_keys)
        self.action_space = slate_action_space(simulator, single_item)
        self._num_candidates = num_candidates(simulator)
        self.batch = SimulationBatch(simulator, 1, device=validation.device(device),
                                     num_threads=num_threads)
        self._seeded = False
        self._needs_reset = True

    @one_user_compute
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start a new session; ``seed`` restarts this user's random stream."""
        seed = user_seed(seed)
        super().reset(seed=seed)
        if seed is not None or not self._seeded:
            self.batch.seed([seed if seed is not None else
                             int(self.np_random.integers(_MAX_SEED))])
            self._seeded = True
        self.batch.reset()
        self._needs_reset = False
        self._last = None
        return _first_user(self.batch.observe_numpy(self.observation_keys)), {}

    @one_user_compute
    def step(self, action):
        """Show the user a slate of ``k`` item ids.

        Written for the batch of one: one-element tensors convert with ``bool``/``int``/
        ``float`` directly and info values are indexed in numpy, since each torch index
        or call on a tiny tensor costs microseconds, as much as the arithmetic.
        """
        if self._needs_reset:
            raise RuntimeError("the session is over (or never started): call env.reset() first")
        slate = as_slate_tensor(action, self.simulator.slate_size, self._num_candidates,
                                self.batch.device, single_item=self.single_item)
        reward, clicked, terminated, _, info = self.batch.step(slate)
        self._last = (slate, clicked, reward)
        self._needs_reset = done = bool(terminated)
        observation = _first_user(self.batch.observe_numpy(self.observation_keys))
        step_info = {"clicked": int(clicked)}
        step_info.update({key: value.cpu().numpy()[0, ...] for key, value in info.items()})
        return observation, float(reward), done, False, step_info

    def render(self) -> str | None:
        """With ``render_mode="ansi"``: the last slate, click, recent history and true state."""
        if self.render_mode != "ansi":
            return None
        return render_users(self.simulator, self.batch, self._last)[0]


class RecVectorEnv(VectorEnv):
    """``num_envs`` simulated users stepped together in one torch call.

    Args:
        simulator: the user model.
        num_envs: number of users ``N``.
        observation_keys: which of the simulator's observation keys the agent sees.
        single_item: act with one item id per user (``Discrete``) instead of slates.
        max_episode_steps: sessions are truncated after this many steps (None: never).
        device: where the simulation runs.
        compile: fuse each step with ``torch.compile`` (see
            :class:`~recgym.core.batch.SimulationBatch`); same trajectories, faster at scale.
        num_threads: torch intra-op threads of each reset and step (None: the variable
            ``RECGYM_NUM_THREADS``, else 1; see :mod:`recgym.core.threads`). The caller's
            own setting is restored after every call, so an agent keeps its threads.
        render_mode: ``"ansi"``: :meth:`render` returns one short text per user (last
            slate, click, recent history, true state where there is one).

    Autoreset is Gymnasium's next-step mode: after a user's session ends, the next
    ``step`` ignores that user's action, starts a new session and returns its first
    observation with reward 0. ``infos["clicked"]`` holds each user's clicked item (-1: none).
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP,
                                "render_modes": RENDER_MODES, "render_fps": 1}

    def __init__(self, simulator: UserSimulator, num_envs: int, *,
                 observation_keys: Sequence[str], single_item: bool = False,
                 max_episode_steps: int | None = None, device: torch.device | str = "cpu",
                 compile: bool = False, num_threads: int | None = None,
                 render_mode: str | None = None) -> None:
        self.simulator = simulator
        self.num_envs = validation.integer("num_envs", num_envs, minimum=1)
        self.observation_keys = tuple(observation_keys)
        self.single_item = validation.flag("single_item", single_item)
        if max_episode_steps is not None:
            max_episode_steps = validation.integer("max_episode_steps", max_episode_steps,
                                                   minimum=1)
        num_envs = self.num_envs
        self.render_mode = render_mode
        self._last: tuple[Tensor, Tensor, Tensor] | None = None
        self.single_observation_space = observation_space_for(simulator, self.observation_keys)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.single_action_space = slate_action_space(simulator, single_item)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.batch = SimulationBatch(simulator, num_envs, max_episode_steps=max_episode_steps,
                                     device=validation.device(device),
                                     compile=validation.flag("compile", compile),
                                     num_threads=num_threads)
        self._autoreset = torch.zeros(num_envs, dtype=torch.bool, device=self.batch.device)
        self._seeded = False
        self._started = False

    @property
    def num_threads(self) -> int:
        """Torch intra-op threads of each reset and step (the caller's are restored after)."""
        return self.batch.num_threads

    @own_threads
    def reset(self, *, seed: int | Sequence[int] | None = None,
              options: dict[str, Any] | None = None):
        """Start new sessions; ``seed=s`` seeds user ``i`` with ``s + i``.

        ``seed`` may also be a list of ``num_envs`` seeds. ``options={"reset_mask": m}``
        resets only the users where the boolean array ``m`` is true.
        """
        if seed is not None and not isinstance(seed, (list, tuple, np.ndarray, Tensor)):
            seed = user_seed(seed, self.num_envs)
        super().reset(seed=seed if isinstance(seed, int) else None)
        mask = None
        if options and "reset_mask" in options:
            mask = torch.as_tensor(np.asarray(options["reset_mask"], dtype=bool),
                                   device=self.batch.device)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"reset_mask must have shape ({self.num_envs},), got "
                                 f"{tuple(mask.shape)}")
        if seed is None and not self._seeded:
            seed = int(self.np_random.integers(_MAX_SEED - self.num_envs))
        if seed is not None:
            if isinstance(seed, int):
                seeds = torch.arange(self.num_envs, dtype=torch.int64) + seed
            else:
                if len(seed) != self.num_envs:
                    raise ValueError(f"seed list needs {self.num_envs} entries, got {len(seed)}")
                seeds = torch.as_tensor([user_seed(s) for s in seed], dtype=torch.int64)
            self.batch.seed(seeds, mask)
            self._seeded = True
        self.batch.reset(mask)
        self._started = True
        if mask is None:
            self._last = None
        self._autoreset = (self._autoreset & ~mask) if mask is not None else \
            torch.zeros_like(self._autoreset)
        return self.observe(), {}

    @own_threads
    def step(self, actions):
        """Show every user a slate: ``actions`` is an int array of shape ``(N, k)``."""
        if not self._started:
            raise RuntimeError("the users have no session yet: call envs.reset() before "
                               "envs.step()")
        slate = as_slate_tensor(actions, self.simulator.slate_size,
                                num_candidates(self.simulator), self.batch.device,
                                batch_size=self.num_envs, single_item=self.single_item)
        restarting = self._autoreset if bool(self._autoreset.any()) else None
        reward, clicked, terminated, truncated, info = self.batch.step(slate, restarting)
        self._autoreset = terminated | truncated
        self._last = (slate, clicked, reward)
        infos = {"clicked": clicked.cpu().numpy()}
        infos.update({key: value.cpu().numpy() for key, value in info.items()})
        return (self.observe(), reward.cpu().numpy(), terminated.cpu().numpy(),
                truncated.cpu().numpy(), infos)

    def render(self) -> tuple[str, ...] | None:
        """With ``render_mode="ansi"``: one text per user, as :meth:`RecEnv.render` gives."""
        if self.render_mode != "ansi":
            return None
        return tuple(render_users(self.simulator, self.batch, self._last))

    def observe(self):
        """Current observation of every user, as the observation space describes it.

        The arrays are the caller's to keep or change (see ``SimulationBatch.observe_numpy``).
        """
        return self.batch.observe_numpy(self.observation_keys)


@dataclass
class EnvSetup:
    """What an env family builds from its constructor arguments.

    Attributes:
        simulator: the batched user model.
        observation_keys: the simulator keys the agent sees.
        single_item: act with one item id (``Discrete``) instead of a slate.
    """

    simulator: UserSimulator
    observation_keys: tuple[str, ...]
    single_item: bool = False


class FamilyEnv(RecEnv):
    """The single env of a registered family: ``build_simulator(*args, **kwargs)`` makes it.

    Each env module sets ``build_simulator`` (a ``staticmethod`` returning an
    :class:`EnvSetup`) on one :class:`FamilyEnv` and one :class:`FamilyVectorEnv`
    subclass, so both paths take the same arguments and build the same simulator.
    """

    build_simulator: Callable[..., EnvSetup]

    def __init__(self, *args: Any, device: torch.device | str = "cpu",
                 num_threads: int | None = None, render_mode: str | None = None,
                 **kwargs: Any) -> None:
        setup = self.build_simulator(*args, device=validation.device(device), **kwargs)
        super().__init__(setup.simulator, observation_keys=setup.observation_keys,
                         single_item=setup.single_item, device=device,
                         num_threads=num_threads, render_mode=render_mode)


class FamilyVectorEnv(RecVectorEnv):
    """The vector env of a registered family (see :class:`FamilyEnv`).

    ``num_envs`` comes first; ``max_episode_steps`` truncates sessions (``gym.make_vec``
    passes the registered limit; None, the default when the class is built directly, never
    truncates); ``compile`` fuses each step with ``torch.compile``; ``num_threads`` sets the
    torch threads of each step (see :mod:`recgym.core.threads`).
    """

    build_simulator: Callable[..., EnvSetup]

    def __init__(self, num_envs: int = 1, *args: Any, max_episode_steps: int | None = None,
                 device: torch.device | str = "cpu", compile: bool = False,
                 num_threads: int | None = None, render_mode: str | None = None,
                 **kwargs: Any) -> None:
        num_envs = validation.integer("num_envs", num_envs, minimum=1)
        setup = self.build_simulator(*args, device=validation.device(device), **kwargs)
        super().__init__(setup.simulator, num_envs, observation_keys=setup.observation_keys,
                         single_item=setup.single_item, max_episode_steps=max_episode_steps,
                         device=device, compile=compile, num_threads=num_threads,
                         render_mode=render_mode)

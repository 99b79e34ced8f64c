"""A batch of simulated sessions: the one engine behind every env adapter and roll-out.

:class:`SimulationBatch` owns the users' state, their random streams and their step
counts. It resets chosen users, steps the others, validates slates and applies a time
limit. The Gymnasium vector env, the single env, the stable-baselines3 adapter and the
evaluation roll-outs are thin layers over it, so all of them share one behaviour.
"""

from __future__ import annotations

import functools
import itertools
import types
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from recgym.core.random import UserRandom
from recgym.core.simulator import State, UserSimulator
from recgym.core.threads import own_threads, resolve_num_threads


def merge_states(mask: Tensor, new: State, old: State) -> State:
    """Per user, take ``new`` where ``mask`` is set and ``old`` elsewhere."""
    merged = {}
    for key, old_value in old.items():
        shaped = mask.view(-1, *([1] * (old_value.dim() - 1)))
        merged[key] = torch.where(shaped, new[key], old_value)
    return merged


def as_slate_tensor(action: object, slate_size: int, num_items: int, device: torch.device,
                    batch_size: int | None = None, single_item: bool = False) -> Tensor:
    """Validate an action and return it as an int64 ``(B, k)`` tensor of item ids.

    Args:
        action: a slate ``(k,)`` (or ``(B, k)`` with ``batch_size``); with ``single_item``
            one item id ``()`` (or ``(B,)``), for ``Discrete`` action spaces.
        slate_size: ``k``.
        num_items: ids must lie in ``[0, num_items)``.
        device: where the result lives.
        batch_size: ``B`` for a batch of actions, None for one.
        single_item: the action is an item id rather than a slate of one.

    Raises:
        TypeError: the action is not an integer array.
        ValueError: wrong shape, or ids outside ``[0, num_items)``.
    """
    if single_item:
        want_shape = () if batch_size is None else (batch_size,)
        expected = "() (one item id)" if batch_size is None else f"({batch_size},)"
    else:
        want_shape = (slate_size,) if batch_size is None else (batch_size, slate_size)
        expected = f"({slate_size},)" if batch_size is None else f"({batch_size}, {slate_size})"
    if isinstance(action, Tensor):
        tensor = action
    else:
        array = np.asarray(action)
        if array.dtype.kind not in "iuf":
            raise TypeError(f"slate must be an integer array of shape {expected}, got {action!r}")
        tensor = torch.from_numpy(array)
    if tensor.dtype.is_floating_point or tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(
            f"slate must hold integer item ids, got dtype {tensor.dtype}; pass an int array of "
            f"shape {expected}, or wrap the env in recgym.core.TopKSlate to act with scores"
        )
    if tuple(tensor.shape) != want_shape:
        raise ValueError(f"slate must have shape {expected}, got {tuple(tensor.shape)}")
    tensor = tensor.to(device=device, dtype=torch.int64).reshape(-1, slate_size)
    low, high = torch.aminmax(tensor)
    if low.item() < 0 or high.item() >= num_items:
        bad = tensor[(tensor < 0) | (tensor >= num_items)]
        raise ValueError(
            f"slate item ids must lie in [0, {num_items}), got {bad[:5].tolist()}; "
            f"valid ids are 0 .. {num_items - 1}"
        )
    return tensor


_HAND_OVER_BYTES = 1 << 16  # smaller observations are copied: cheaper than the alias check


def _tensors_of(simulator: UserSimulator):
    """The tensors a simulator keeps: attributes (also in tuples, lists and dicts) and modules."""
    for value in vars(simulator).values():
        if isinstance(value, dict):
            value = tuple(value.values())
        if isinstance(value, (tuple, list)):
            yield from (item for item in value if isinstance(item, Tensor))
        elif isinstance(value, Tensor):
            yield value
        elif isinstance(value, torch.nn.Module):
            yield from value.parameters()
            yield from value.buffers()


def _own_code(method):
    """The bound method re-created with a private copy of its code object.

    torch.compile caches compiled graphs per code object; a private copy keeps each
    batch's graphs (specialised to its size and simulator) apart from other batches'.
    """
    function = method.__func__
    code = function.__code__.replace(co_name=f"{function.__name__}_{id(method.__self__):x}")
    private = types.FunctionType(code, function.__globals__, code.co_name,
                                 function.__defaults__, function.__closure__)
    return types.MethodType(private, method.__self__)


def _holds_rnn(simulator: UserSimulator) -> bool:
    """Whether a module the simulator holds contains an ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``."""
    return any(isinstance(module, torch.nn.RNNBase)
               for value in vars(simulator).values() if isinstance(value, torch.nn.Module)
               for module in value.modules())


def _tracing_rnns(compiled: Callable) -> Callable:
    """``compiled`` called with Dynamo's RNN support on.

    Dynamo breaks the graph at an ``nn.LSTM`` / ``nn.GRU`` call, and even at a read of their
    weights, unless its (experimental) RNN support is on: IRecGAN-v0's U and RecSimu-v0's
    hand-written GRU step then run partly or wholly eager, and the frames after the break
    are shared by every batch, so a process with several compiled sizes hits Dynamo's
    recompile limit. With the support on (only while a step compiles or runs), both steps
    compile whole, with the same trajectories as eager. The flag is set and restored
    directly (about 3 µs a call; ``config.patch`` costs 21 µs).
    """
    config = torch._dynamo.config

    @functools.wraps(compiled)
    def wrapper(*args, **kwargs):
        if config.allow_rnn:
            return compiled(*args, **kwargs)
        config.allow_rnn = True
        try:
            return compiled(*args, **kwargs)
        finally:
            config.allow_rnn = False

    return wrapper


class SimulationBatch:
    """``num_users`` sessions of one simulator, stepped together.

    Args:
        simulator: the user model.
        num_users: batch size ``B``.
        max_episode_steps: sessions are truncated after this many steps (None: never).
        device: where state and random streams live.
        compile: fuse each step (simulator step and autoreset merge) with
            ``torch.compile``. The same trajectories as eager (clicks, states, ends;
            a learned reward may differ in its last float digits, fused arithmetic
            rounds differently), faster for large batches, at the price of a compilation
            (~10 s) on the first steps.
        num_threads: torch intra-op threads of each reset, step and observation (the
            caller's own setting is restored after each); None: the environment variable
            ``RECGYM_NUM_THREADS``, else 1 (see :mod:`recgym.core.threads`).
    """

    def __init__(self, simulator: UserSimulator, num_users: int, *,
                 max_episode_steps: int | None = None,
                 device: torch.device | str = "cpu", compile: bool = False,
                 num_threads: int | None = None) -> None:
        if num_users < 1:
            raise ValueError(f"num_users must be >= 1, got {num_users}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
        self.simulator = simulator
        self.num_users = num_users
        self.max_episode_steps = max_episode_steps
        self.device = torch.device(device)
        self.num_threads = resolve_num_threads(num_threads)
        self.rng = UserRandom.from_seeds(range(num_users), device=self.device)
        self.elapsed = torch.zeros(num_users, dtype=torch.int64, device=self.device)
        self.state: State = {}
        self.reset()  # the first sessions, on the batch's own threads like every later one
        self.compile = compile
        self._set_advance()

    def _set_advance(self) -> None:
        self._advance = self._advance_eager
        if self.compile:
            self._advance = torch.compile(_own_code(self._advance_eager), dynamic=False)
            if _holds_rnn(self.simulator):
                self._advance = _tracing_rnns(self._advance)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_advance"]  # a compiled function does not pickle; rebuilt on load
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._set_advance()

    def seed(self, seeds: Sequence[int] | Tensor, mask: Tensor | None = None) -> None:
        """Restart the random streams of the users in ``mask`` (all if None)."""
        seeds = torch.as_tensor(seeds, dtype=torch.int64, device=self.device)
        self.rng.reseed(seeds, mask)

    @own_threads
    def reset(self, mask: Tensor | None = None) -> None:
        """Begin new sessions for the users in ``mask`` (all if None)."""
        if mask is None:
            self.state = self.simulator.reset(self.num_users, self.rng)
            # out of place: a single env's tensors are inference tensors (one_user_compute)
            self.elapsed = torch.zeros_like(self.elapsed)
            return
        fresh = self.simulator.reset(self.num_users, self.rng.masked(mask))
        self.state = merge_states(mask, fresh, self.state)
        self.elapsed = self.elapsed.masked_fill(mask, 0)

    @own_threads
    def observe(self) -> dict[str, Tensor]:
        """The simulator's observation of every user."""
        return self.simulator.observe(self.state)

    def observe_numpy(self, keys: Sequence[str]):
        """:meth:`observe` of the chosen keys as numpy arrays (a bare array if one key).

        The caller owns every array: one that would share memory with a tensor the batch
        or its simulator keeps is a copy. A large observation the simulator computes
        afresh is handed over without the copy: GANUserModel-v0's item features (7.6 MB
        at N = 1,024) were allocated twice per step, and skipping the copy made its step
        1.3x faster (benchmarks/results/env_throughput_ganusermodel_v0.md).
        """
        observation = self.observe()
        handed: set[int] = set()  # memory already given to the caller in this call
        arrays = {}
        for key in keys:
            tensor = observation[key]
            if tensor.device.type != "cpu":
                arrays[key] = tensor.cpu().numpy()  # .cpu() already copied
            elif (tensor.numel() * tensor.element_size() >= _HAND_OVER_BYTES
                  and (address := tensor.untyped_storage().data_ptr()) not in handed
                  and not self._keeps(address)):
                arrays[key] = tensor.numpy()
                handed.add(address)
            else:
                arrays[key] = tensor.numpy().copy()
        return arrays[keys[0]] if len(keys) == 1 else arrays

    def _keeps(self, address: int) -> bool:
        """Whether the state or a tensor the simulator keeps lies in the memory at ``address``.

        The state comes first: the simulator's tensors (27 for RecSimu-v0, 58 µs to list)
        are only looked through for a tensor the state does not hold.
        """
        held = itertools.chain(self.state.values(), _tensors_of(self.simulator))
        return any(tensor.untyped_storage().data_ptr() == address for tensor in held)

    def _advance_eager(self, state: State, slate: Tensor, elapsed: Tensor,
                       restarting: Tensor | None):
        """One step as a function of tensors (the unit ``compile=True`` fuses)."""
        if restarting is None:
            out = self.simulator.step(state, slate, self.rng)
            return out.state, elapsed + 1, out.reward, out.clicked, out.terminated, out.info
        stepping = ~restarting
        out = self.simulator.step(state, slate, self.rng.masked(stepping))
        fresh = self.simulator.reset(self.num_users, self.rng.masked(restarting))
        return (merge_states(restarting, fresh, out.state),
                (elapsed + 1).masked_fill(restarting, 0),
                out.reward.masked_fill(restarting, 0.0),
                out.clicked.masked_fill(restarting, -1),
                out.terminated & stepping,
                out.info)

    @own_threads
    def step(self, slate: Tensor, restarting: Tensor | None = None):
        """Show every user a slate; users in ``restarting`` start a new session instead.

        ``restarting`` is Gymnasium's next-step autoreset: those users ignore their slate,
        draw a fresh session and report reward 0, no click and neither flag. A session
        reaching ``max_episode_steps`` is truncated, also when it terminates on that step
        (Gymnasium's ``TimeLimit`` convention).

        Returns:
            ``(reward, clicked, terminated, truncated, info)``, tensors of shape ``(B,)``
            (info values with leading ``B``).
        """
        self.state, self.elapsed, reward, clicked, terminated, info = self._advance(
            self.state, slate, self.elapsed, restarting)
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            # as Gymnasium's TimeLimit: the limit truncates even a step that also terminates
            truncated = self.elapsed >= self.max_episode_steps
        return reward, clicked, terminated, truncated, info

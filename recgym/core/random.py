"""Counter-based random streams, one per simulated user.

A batched simulator must give user ``i`` of a vector env seeded with ``s`` exactly the
trajectory a single env seeded with ``s + i`` gives (Gymnasium's seeding convention for
vector envs). One ``torch.Generator`` per env cannot do that: the numbers a user gets
would depend on how many other users share the batch. Instead every user owns a stream
identified by a key derived from its seed, and the ``c``-th number of the stream is a
keyed hash of ``c``. Draws are pure functions of (key, counter), so they are the same in
a batch of one and a batch of 16,384, on any device.

The hash is a 32-bit xor-shift-multiply finaliser applied to a Weyl sequence
``key + c * increment (mod 2**32)`` whose odd increment is itself drawn from the seed (so
two users' streams are different sequences, not shifts of one). Both steps are
bijections of 32-bit words, so a stream never repeats within 2**32 draws. The arithmetic
runs in int64 holding 32-bit values, where a wrapped product keeps the correct low bits.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

import torch
from torch import Tensor

P = ParamSpec("P")
R = TypeVar("R")

_MASK32 = 0xFFFFFFFF
_MUL1 = 0x7FEB352D
_MUL2 = 0x846CA68B
_GOLDEN = 0x9E3779B9
_TO_UNIT = 2.0**-24


def _mix32(x: Tensor) -> Tensor:
    """Bijective 32-bit integer finaliser on int64 tensors holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = (x * _MUL1) & _MASK32
    x = x ^ (x >> 15)
    x = (x * _MUL2) & _MASK32
    return x ^ (x >> 16)


def _mix32_int(x: int) -> int:
    """:func:`_mix32` on a Python integer in [0, 2**32)."""
    x ^= x >> 16
    x = (x * _MUL1) & _MASK32
    x ^= x >> 15
    x = (x * _MUL2) & _MASK32
    return x ^ (x >> 16)


def seed_to_key(seeds: Tensor) -> tuple[Tensor, Tensor]:
    """A 32-bit offset and an odd 32-bit increment per stream, from int64 seeds."""
    low = seeds & _MASK32
    high = (seeds >> 32) & _MASK32
    key = _mix32(low ^ _GOLDEN)
    increment = _mix32((high + _mix32((low + 0x85EBCA6B) & _MASK32)) & _MASK32) | 1
    return key, increment


def stream_values(key: Tensor, increment: Tensor, position: Tensor) -> Tensor:
    """The uniforms at ``position`` (int64, broadcast against the keys) of each stream."""
    bits = _mix32((position * increment + key) & _MASK32)
    return (bits >> 8).to(torch.float32) * _TO_UNIT


class UserRandom:
    """Independent, reproducible uniform streams for a batch of users.

    Args:
        seeds: int64 tensor of shape ``(B,)``, one seed per user.

    A draw only advances the counters of the users in ``active``; the others keep their
    position, so masked-out users consume nothing (what a single env does when it is
    not stepped).
    """

    def __init__(self, seeds: Tensor) -> None:
        self.key, self.increment = seed_to_key(seeds.to(torch.int64))
        self.counter = torch.zeros_like(self.key)

    @classmethod
    def from_seeds(cls, seeds: Sequence[int] | Tensor, device: torch.device | str = "cpu"):
        """Streams for the given per-user seeds."""
        return cls(torch.as_tensor(seeds, dtype=torch.int64, device=device))

    @property
    def batch_size(self) -> int:
        """Number of users (streams)."""
        return self.key.shape[0]

    def reseed(self, seeds: Tensor, mask: Tensor | None = None) -> None:
        """Restart the streams of the users in ``mask`` (all if None) from new seeds."""
        key, increment = seed_to_key(seeds.to(device=self.key.device, dtype=torch.int64))
        if mask is None:
            self.key, self.increment = key, increment
            self.counter = torch.zeros_like(key)
        else:
            self.key = torch.where(mask, key, self.key)
            self.increment = torch.where(mask, increment, self.increment)
            self.counter = self.counter.masked_fill(mask, 0)

    def uniform(self, n: int, active: Tensor | None = None) -> Tensor:
        """Draw ``n`` uniforms in [0, 1) per user, float32 of shape ``(B, n)``.

        Args:
            n: how many numbers each user draws.
            active: bool ``(B,)``; only these users' counters advance. Inactive users
                still receive numbers (so shapes stay fixed) but will draw the same ones
                again next time.
        """
        if self.key.shape[0] == 1 and self.key.device.type == "cpu" \
                and not torch.compiler.is_compiling():
            return self._uniform_one_user(n, active)
        positions = self.counter[:, None] + torch.arange(n, device=self.counter.device)
        values = stream_values(self.key[:, None], self.increment[:, None], positions)
        if active is None:
            self.counter = self.counter + n
        else:
            self.counter = self.counter + n * active.to(torch.int64)
        return values

    def _uniform_one_user(self, n: int, active: Tensor | None) -> Tensor:
        """:meth:`uniform` for the batch of one a single env steps, in Python integers.

        The same numbers as the tensor path (a test checks it): for one user the dozen
        tensor operations of the hash cost more than the arithmetic itself. The counter
        advances out of place: a single env's is an inference tensor (see
        :func:`recgym.core.env.one_user_compute`), which only inference mode may change
        in place.
        """
        key, increment, counter = int(self.key), int(self.increment), int(self.counter)
        values = [(_mix32_int((position * increment + key) & _MASK32) >> 8) * _TO_UNIT
                  for position in range(counter, counter + n)]
        if active is None or bool(active):
            self.counter = self.counter + n
        return torch.tensor([values], dtype=torch.float32)

    def masked(self, active: Tensor) -> MaskedUserRandom:
        """A view whose draws advance only the users in ``active``."""
        return MaskedUserRandom(self, active)


class MaskedUserRandom:
    """A :class:`UserRandom` seen through a fixed mask of active users."""

    def __init__(self, base: UserRandom, active: Tensor) -> None:
        self.base = base
        self.active = active

    @property
    def batch_size(self) -> int:
        """Number of users (streams)."""
        return self.base.batch_size

    def uniform(self, n: int, active: Tensor | None = None) -> Tensor:
        """As :meth:`UserRandom.uniform`, restricted to this view's active users."""
        mask = self.active if active is None else self.active & active
        return self.base.uniform(n, mask)


def isolated_global_rng(function: Callable[P, R]) -> Callable[P, R]:
    """Decorator: torch's global random state is the same after the call as before it.

    Weight initialisation (``nn.Module`` constructors) and dropout draw from torch's global
    generator, so a fit seeds it for reproducibility. Wrapped in this decorator that seed
    stays local: fitting a model in a process never changes another component's draws.
    """
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            return function(*args, **kwargs)

    return wrapper

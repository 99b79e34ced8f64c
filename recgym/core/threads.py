"""How many torch intra-op threads a simulation step uses: one by default, the caller's after.

A simulation step is many small tensor ops. On a quiet machine a second thread speeds the
learned envs up by at most about 1.5x at N = 1,024 users (SyntheticMDP-v0 runs slower on
two); as soon as another CPU-bound process shares the cores (the agent's update, another
env runner, a fit) each parallel op waits at OpenMP's barrier for a thread that is not
running, and a step on two threads is 2-15x slower than on one. So every
:class:`~recgym.core.batch.SimulationBatch` (behind the single env, the vector env, the
stable-baselines3 adapter and the roll-outs) runs its reset, step and observation with its
own thread count and then gives the caller back its own setting: an agent in the same
process keeps the threads it chose for its update.

The count comes from the env's ``num_threads`` argument, else from the environment
variable ``RECGYM_NUM_THREADS`` (read when the env is built), else 1. See the "Thread
policy" section of docs/scaling.md for the measurements and the policy for fitting, RLlib
env runners and torchrun ranks.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import torch

from recgym.core import validation

NUM_THREADS_VARIABLE = "RECGYM_NUM_THREADS"
DEFAULT_NUM_THREADS = 1


def resolve_num_threads(num_threads: Any = None) -> int:
    """The intra-op thread count of a simulation: ``num_threads``, else the variable, else 1.

    Raises:
        TypeError: ``num_threads`` is not an integer.
        ValueError: ``num_threads`` is below 1, or ``RECGYM_NUM_THREADS`` is set to
            anything but a positive integer.
    """
    if num_threads is not None:
        return validation.integer("num_threads", num_threads, minimum=1)
    text = os.environ.get(NUM_THREADS_VARIABLE, "").strip()
    if not text:
        return DEFAULT_NUM_THREADS
    if not text.isdecimal() or int(text) < 1:
        raise ValueError(f"the environment variable {NUM_THREADS_VARIABLE} must be a positive "
                         f"integer (torch threads per simulation step), got {text!r}; unset "
                         f"it for the default of {DEFAULT_NUM_THREADS}")
    return int(text)


def own_threads(method: Callable) -> Callable:
    """Decorator: run ``method`` with ``self.num_threads`` torch threads, then restore the caller's.

    Nested calls see the count already set and change nothing; ``torch.get_num_threads``
    and ``torch.set_num_threads`` cost well under a microsecond each.
    """
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any):
        caller = torch.get_num_threads()
        if caller == self.num_threads:
            return method(self, *args, **kwargs)
        torch.set_num_threads(self.num_threads)
        try:
            return method(self, *args, **kwargs)
        finally:
            torch.set_num_threads(caller)

    return wrapper

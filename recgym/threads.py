"""recgym's thread policy for torch, kept free of heavy imports (it runs on ``import recgym``).

A process forked after torch has run a parallel (OpenMP) region inherits a thread pool
whose worker threads did not survive the fork; the child's next parallel op then waits on
them forever. Gymnasium's ``AsyncVectorEnv``, SB3's ``SubprocVecEnv`` and
``multiprocessing`` pools fork by default on Linux, so an agent that touched torch before
building its workers would hang inside the first env step. recgym therefore gives every
forked child one torch thread, as torch's own ``DataLoader`` does for its workers: one env
per worker process is a batch of one, which runs fastest on one thread anyway. A child that
wants more calls ``torch.set_num_threads`` itself after the fork.

This is one part of recgym's thread policy; the other, the threads of each simulation
step (one by default, the caller's restored afterwards), lives beside the step in
:mod:`recgym.core.threads`, since the core may not import this root module. The whole
policy (envs, fits, RLlib runners, torchrun ranks) is in docs/scaling.md, "Thread policy".
"""

from __future__ import annotations

import os
import sys

_guarded = False


def _one_torch_thread_in_child() -> None:
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def guard_forked_children() -> None:
    """Give each process forked from this one a single torch thread (idempotent)."""
    global _guarded
    if not _guarded and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_one_torch_thread_in_child)
        _guarded = True

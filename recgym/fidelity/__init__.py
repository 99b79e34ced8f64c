"""Simulators scored against a known world: can a simulator tell which policy is better?

:func:`score` fits a simulator kind (or takes a fitted simulator) on logs of a reference
world, rolls a policy set out in both, and reports rank agreement, value error, regret,
transfer of PPO, and calibration and likelihood on held-out page views. See
``docs/fidelity.md`` for how to read the numbers.
"""

from __future__ import annotations

from recgym.fidelity.kinds import KINDS, PRIVILEGED_KINDS, get_kind
from recgym.fidelity.metrics import Interval
from recgym.fidelity.policies import PolicySpec, policy_set, train_ppo
from recgym.fidelity.score import FidelityReport, score
from recgym.fidelity.worlds import WORLDS, WorldInfo, held_out_logs, make_logs, make_world

__all__ = ["KINDS", "PRIVILEGED_KINDS", "WORLDS", "FidelityReport", "Interval", "PolicySpec",
           "WorldInfo", "get_kind", "held_out_logs", "make_logs", "make_world", "policy_set",
           "score", "train_ppo"]

"""The batched simulation contract and its Gymnasium adapters.

Everything here simulates a batch of users at once as torch tensors; a single Gymnasium
env is the batch-of-one case. The stable-baselines3 adapter lives in
:mod:`recgym.core.sb3` so that importing recgym never requires stable-baselines3.
"""

from __future__ import annotations

from recgym.core.batch import SimulationBatch, as_slate_tensor, merge_states
from recgym.core.env import EnvSetup, FamilyEnv, FamilyVectorEnv, RecEnv, RecVectorEnv
from recgym.core.policy import Policy, RandomPolicy, SB3Policy, sample_without_replacement
from recgym.core.random import UserRandom
from recgym.core.simulator import GroundTruth, State, Step, UserSimulator
from recgym.core.wrappers import TopKSlate, TopKSlateVector, scores_to_slate

__all__ = [
    "EnvSetup",
    "FamilyEnv",
    "FamilyVectorEnv",
    "GroundTruth",
    "Policy",
    "RandomPolicy",
    "RecEnv",
    "RecVectorEnv",
    "SB3Policy",
    "SimulationBatch",
    "State",
    "Step",
    "TopKSlate",
    "TopKSlateVector",
    "UserRandom",
    "UserSimulator",
    "as_slate_tensor",
    "merge_states",
    "sample_without_replacement",
    "scores_to_slate",
]

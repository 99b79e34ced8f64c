"""The synthetic m-state MDP of IRecGAN (Bai et al. 2019, sec. 7.1): a world with a known truth."""

from recgym.simulators.synthetic_mdp.policies import (
    LOGGING_POLICIES,
    MaxRewardPolicy,
    MixRewardPolicy,
    logging_policy,
)
from recgym.simulators.synthetic_mdp.users import SyntheticMDP, SyntheticWorld, observation_spaces

__all__ = ["LOGGING_POLICIES", "MaxRewardPolicy", "MixRewardPolicy", "SyntheticMDP",
           "SyntheticWorld", "logging_policy", "observation_spaces"]

"""RecSimu (Zhao et al., AAAI 2020): GAN user simulator with a 2K-class discriminator."""

from recgym.simulators.recsimu.users import RecSimuUsers

__all__ = ["RecSimuUsers"]

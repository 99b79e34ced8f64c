"""The generative adversarial user model of Chen et al. (ICML 2019)."""

from recgym.simulators.gan_user.users import GANUsers

__all__ = ["GANUsers"]

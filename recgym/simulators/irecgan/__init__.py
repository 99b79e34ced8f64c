"""IRecGAN (Bai et al., NeurIPS 2019): user behaviour model, discriminator, adversarial training."""

from recgym.simulators.irecgan.users import IRecGANUsers

__all__ = ["IRecGANUsers"]

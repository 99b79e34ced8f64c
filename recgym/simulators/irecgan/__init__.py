"""IRecGAN (Bai et al., NeurIPS 2019): user behaviour model, discriminator, adversarial training."""

"""RecSimu (Zhao et al., AAAI 2020): GAN user simulator with a 2K-class discriminator."""

"""The generative adversarial user model of Chen et al. (ICML 2019)."""

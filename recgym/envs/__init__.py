"""Environment families, one module each: simulator, single env and vector env together."""

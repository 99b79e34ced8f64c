"""Bridges from recgym to the engines teams already run, each behind an optional extra.

* :mod:`recgym.integrations.rllib`: every recgym id in RLlib (Ray), the batched vector path
  inside each env runner (``pip install "recgym[ray]"``), and
  :mod:`recgym.integrations.rllib_module`: a PPO RLModule that embeds item ids
  (``rl_module_spec(id)``);
* :mod:`recgym.integrations.sb3`: stable-baselines3 policies for every id
  (``policy_kwargs(id)``: item-id embeddings, Plackett-Luce slates); its observation layout
  (:mod:`recgym.integrations.layout`) is shared with the RLlib module;
* :mod:`recgym.integrations.minari`: logs to and from Minari offline-RL datasets, and the
  ``recgym export-minari`` / ``import-minari`` commands (``pip install "recgym[minari]"``).

Nothing here is imported by ``import recgym``; each module imports its engine lazily or
at its own import. Data-parallel fitting under ``torchrun`` needs no bridge: it is
:mod:`recgym.core.distributed`, used by the fitting loops themselves. See docs/scaling.md.
"""

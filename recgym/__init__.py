"""recgym: Gymnasium environments for RL recommendation with user simulators learned from logs.

Importing the package registers every environment id with Gymnasium; the registrations
are strings, so nothing heavy is imported until an env is made. It also makes forked
children safe for torch (:mod:`recgym.threads`).
"""

from __future__ import annotations

from recgym.registration import ENV_DESCRIPTIONS, register_envs
from recgym.threads import guard_forked_children

__version__ = "0.1.0"
__all__ = ["ENV_DESCRIPTIONS", "__version__"]

register_envs()
guard_forked_children()

"""Learned users from a checkpoint file: the shipped default or one a user fitted.

Every learned simulator's users class derives from :class:`CheckpointUsers`, so the path
resolution, the file checks (:mod:`recgym.core.checkpoint`) and the error messages are
written once; each class says only which kind it reads and how to build itself from the
loaded dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from recgym.core.checkpoint import load_checkpoint


class CheckpointUsers:
    """Mixin: ``from_checkpoint(path or None, **kwargs)`` for a batched users class.

    Subclasses set ``checkpoint_kind`` (the ``kind`` their files hold),
    ``default_checkpoint`` (the shipped file in ``envs_data/``) and ``fit_command`` (the
    command that writes such files), and implement :meth:`from_loaded`.
    """

    checkpoint_kind: ClassVar[str]
    default_checkpoint: ClassVar[str]
    fit_command: ClassVar[str]

    @classmethod
    def checkpoint_path(cls, checkpoint: str | Path | None) -> Path:
        """The given file, or the shipped default in ``envs_data/``."""
        if checkpoint is not None:
            return Path(checkpoint)
        from recgym.data import envs_data_path

        return envs_data_path() / cls.default_checkpoint

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path | None = None, **kwargs: Any):
        """Users of a checkpoint written by ``fit_command`` (None: the shipped one)."""
        path = cls.checkpoint_path(checkpoint)
        rebuild = f"{cls.fit_command} --data LOGS --out {path.name}"
        return cls.from_loaded(load_checkpoint(path, cls.checkpoint_kind, rebuild=rebuild),
                               **kwargs)

    @classmethod
    def from_loaded(cls, loaded: dict[str, Any], **kwargs: Any):
        """Build the users from a loaded, checked checkpoint dict."""
        raise NotImplementedError

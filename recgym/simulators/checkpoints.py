"""Loading the checkpoint behind a learned-simulator env: the shipped default or a user's."""

from __future__ import annotations

from pathlib import Path

import torch


def load_env_checkpoint(checkpoint: str | Path | None, default_name: str, description: str,
                        fit_command: str) -> dict:
    """Load a checkpoint (tensors and plain types only, ``weights_only=True``).

    Args:
        checkpoint: a file, or None for ``envs_data/<default_name>`` (shipped).
        default_name: the shipped file's name.
        description: what the checkpoint holds, for the error message.
        fit_command: the ``recgym fit ...`` subcommand that writes such a file.
    """
    if checkpoint is None:
        from recgym.data import envs_data_path

        checkpoint = envs_data_path() / default_name
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{description} checkpoint {path} not found; fit one with "
                                f"`{fit_command} --data LOGS --out {path.name}`")
    return torch.load(path, map_location="cpu", weights_only=True)

"""Where recgym's shipped data (``envs_data/``) and users' downloaded datasets live.

``envs_data/`` sits at the repository root, beside the ``recgym`` package. It is found
from a source checkout or an editable install (the package's parent folder), from
``$RECGYM_ENVS_DATA``, or from ``<prefix>/share/recgym/envs_data`` where a wheel built
with setuptools ``data-files`` would put it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SHIPPED_DATASETS: tuple[str, ...] = ("ml-latest-small", "open-bandit-dataset-small")


def _candidates() -> list[Path]:
    found = []
    env = os.environ.get("RECGYM_ENVS_DATA")
    if env:
        found.append(Path(env).expanduser())
    found.append(Path(__file__).resolve().parents[2] / "envs_data")
    found.append(Path(sys.prefix) / "share" / "recgym" / "envs_data")
    return found


def envs_data_path() -> Path:
    """Return the folder holding recgym's shipped data (``envs_data/``).

    Raises:
        FileNotFoundError: no copy was found; the message lists where it looked.
    """
    tried = _candidates()
    for path in tried:
        if (path / "README.md").is_file():
            return path
    raise FileNotFoundError(
        "recgym's shipped data folder envs_data/ was not found; looked in "
        + ", ".join(str(p) for p in tried)
        + ". Use a source checkout (pip install -e .) or set RECGYM_ENVS_DATA."
    )


def shipped_dataset_path(name: str) -> Path:
    """Return the folder of a dataset shipped in ``envs_data/`` (see `SHIPPED_DATASETS`)."""
    if name not in SHIPPED_DATASETS:
        raise KeyError(f"{name!r} is not shipped with recgym; shipped: {list(SHIPPED_DATASETS)}")
    path = envs_data_path() / name
    if not path.is_dir():
        raise FileNotFoundError(f"shipped dataset folder {path} is missing")
    return path


def default_data_root() -> Path:
    """Where downloads go by default: ``$RECGYM_DATA`` or ``~/.cache/recgym/data``."""
    env = os.environ.get("RECGYM_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "recgym" / "data"

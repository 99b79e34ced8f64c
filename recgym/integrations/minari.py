"""Recgym logs to and from Minari datasets, the offline-RL format of the Farama Foundation.

One session of the log is one Minari episode of ``N`` page views:

============  ===================================  =========================================
field         shape / space                        content
============  ===================================  =========================================
observations  ``(N + 1, H)``, ``MultiDiscrete``    the last ``H`` clicked items before each
              (``num_items + 1`` values)           page view, oldest first (``num_items``:
                                                   none yet); the last row follows the
                                                   final page view
actions       ``(N, k)``, ``MultiDiscrete``        the slate shown
rewards       ``(N,)``                             the ``reward`` column, else 1 per click
terminations  ``(N,)``                             True at the last page view (the log ends
                                                   the session there)
truncations   ``(N,)``                             False
infos         ``(N + 1, ...)`` per key             every other column of the log (``click``,
                                                   ``propensity``, ``feedback``, ``user_id``,
                                                   ``candidates``, ``timestamp``, extra
                                                   numeric columns), plus ``session_id``,
                                                   ``step`` and ``row`` (row in the log);
                                                   entry ``t + 1`` belongs to page view
                                                   ``t`` and entry 0 (the reset) is a filler
============  ===================================  =========================================

The dataset's ``metadata.json`` gets a ``recgym`` entry (schema version, ``num_items``, the
log's columns and dtypes, whether rewards were logged) and an item table, when the log
has one, is written beside the Minari data as ``recgym_items.parquet``; with them
:func:`import_minari` rebuilds the log exactly (same rows, order, values and dtypes).

Requires ``minari`` (``pip install "recgym[minari]"``); its arrow backend needs no extras.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recgym.data import LogDataset, load_logs
from recgym.data.schema import SCHEMA_VERSION

ITEMS_FILE = "recgym_items.parquet"
BOOKKEEPING = ("session_id", "step", "row")
_MINARI_HINT = 'the Minari export needs the minari package: pip install "recgym[minari]"'


def _minari():
    try:
        import minari
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(_MINARI_HINT, name=error.name) from error
    return minari


def click_histories(clicks: np.ndarray, history: int, num_items: int) -> np.ndarray:
    """The last ``history`` clicks before each of ``N`` page views and after the last one.

    Args:
        clicks: ``(N,)`` clicked item per page view, -1 for none.
        history: ``H``.
        num_items: the padding id (no click yet).

    Returns:
        int64 ``(N + 1, H)``, oldest click first.
    """
    clicked = clicks >= 0
    seen = np.concatenate([[0], np.cumsum(clicked)])
    padded = np.concatenate([np.full(history, num_items, np.int64), clicks[clicked]])
    return padded[seen[:, None] + np.arange(history)]


def _info_columns(logs: pd.DataFrame) -> list[str]:
    """Columns carried in infos: all but the slate and reward (and the bookkeeping ones)."""
    skip = {"slate", "reward", *BOOKKEEPING}
    columns = [name for name in logs.columns if name not in skip]
    for name in columns:
        if name == "candidates":
            lengths = logs["candidates"].map(len)
            if lengths.nunique() > 1:
                raise ValueError("candidates lists have different lengths "
                                 f"({sorted(lengths.unique())[:5]}...); the Minari export "
                                 "needs one display-set size: pad them or drop the column")
        elif not (pd.api.types.is_numeric_dtype(logs[name])
                  or pd.api.types.is_bool_dtype(logs[name])):
            raise ValueError(f"column {name!r} has dtype {logs[name].dtype}; the Minari "
                             "export carries numeric columns only: encode it as numbers "
                             "or drop it")
    return columns


def _filler(values: np.ndarray) -> np.ndarray:
    """Entry 0 of an info array (the reset, before any page view): -1, NaN or False."""
    fill = np.empty((1, *values.shape[1:]), dtype=values.dtype)
    fill[...] = np.nan if values.dtype.kind == "f" else (False if values.dtype.kind == "b"
                                                         else -1)
    return fill


def _episodes(dataset: LogDataset, history: int, carried: list[str]) -> Iterator[Any]:
    from minari.data_collector import EpisodeBuffer

    logs = dataset.logs.assign(row=np.arange(len(dataset.logs), dtype=np.int64))
    logs = logs.sort_values(["session_id", "step"], kind="stable")
    has_reward = "reward" in logs.columns
    info_columns = [*BOOKKEEPING, *carried]
    slates = dataset.slates()[logs["row"].to_numpy()]
    bounds = np.flatnonzero(np.diff(logs["session_id"].to_numpy())) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [len(logs)]])
    columns = {name: (np.stack(logs[name].to_numpy()) if name == "candidates"
                      else logs[name].to_numpy()) for name in info_columns}
    clicks = logs["click"].to_numpy()
    rewards = (logs["reward"].to_numpy(np.float64) if has_reward
               else (clicks >= 0).astype(np.float64))
    for episode, (start, stop) in enumerate(zip(starts, stops, strict=True)):
        part = slice(start, stop)
        terminations = np.zeros(stop - start, bool)
        terminations[-1] = True
        infos = {}
        for name, values in columns.items():
            block = np.concatenate([_filler(values[part]), values[part]])
            infos[name] = block if block.ndim > 1 else block.tolist()
        yield EpisodeBuffer(
            id=episode, observations=click_histories(clicks[part], history, dataset.num_items),
            actions=slates[part], rewards=rewards[part].tolist(), terminations=terminations,
            truncations=np.zeros(stop - start, bool), infos=infos)


def export_minari(logs: LogDataset | str | os.PathLike, dataset_id: str, *, history: int = 10,
                  data_path: str | os.PathLike | None = None, data_format: str = "arrow",
                  description: str | None = None, overwrite: bool = False,
                  progress: bool = False):
    """Write a log as a Minari dataset (one episode per session; see the module docstring).

    Args:
        logs: a `LogDataset` or a log file.
        dataset_id: Minari id, ``namespace/name-vN`` (e.g. ``recgym/synthetic-mix-v0``).
        history: ``H``, clicks in each observation.
        data_path: Minari's dataset folder (default: ``$MINARI_DATASETS_PATH``, else
            ``~/.minari/datasets``).
        data_format: Minari backend, ``arrow`` (default, no extra dependency) or ``hdf5``
            (needs h5py).
        description: free text stored with the dataset.
        overwrite: replace a dataset already at ``dataset_id``, such as the partial one an
            interrupted export leaves behind.
        progress: show a progress bar over the sessions.

    Returns:
        The written ``minari.MinariDataset``.

    Raises:
        FileExistsError: ``dataset_id`` exists and ``overwrite`` is False.
    """
    minari = _minari()
    if history < 1:
        raise ValueError(f"history must be >= 1, got {history}")
    if data_path is not None:
        os.environ["MINARI_DATASETS_PATH"] = str(Path(data_path).expanduser())
    from minari.storage import get_dataset_path

    target = Path(get_dataset_path(dataset_id))
    if target.exists() and not overwrite:
        raise FileExistsError(f"Minari dataset {dataset_id} already exists in {target}; "
                              "pass overwrite=True (recgym export-minari --overwrite) to "
                              "replace it")
    dataset = logs if isinstance(logs, LogDataset) else load_logs(logs)
    if len(dataset) == 0:
        raise ValueError("the log is empty: nothing to export")
    carried = _info_columns(dataset.logs)  # refused before anything on disk changes
    k = dataset.slate_size
    observation_space = gym.spaces.MultiDiscrete(np.full(history, dataset.num_items + 1))
    action_space = gym.spaces.MultiDiscrete(np.full(k, dataset.num_items))
    # Minari's storages consume the buffers in one pass, so episodes stream to disk as the
    # bar advances instead of all being built first.
    episodes = tqdm(_episodes(dataset, history, carried), total=dataset.num_sessions,
                    desc="export-minari", unit="session", disable=not progress)
    shutil.rmtree(target, ignore_errors=True)
    try:
        with warnings.catch_warnings():
            # Minari asks for an author, a code link and an env spec, which a log lacks.
            warnings.filterwarnings("ignore", category=UserWarning, module="minari")
            written = minari.create_dataset_from_buffers(
                dataset_id, episodes, observation_space=observation_space,
                action_space=action_space, algorithm_name="recgym logging policy",
                description=description or f"recgym log: {dataset!r}", data_format=data_format)
        logs_frame = dataset.logs
        written.storage.update_metadata({"recgym": {
            "schema_version": SCHEMA_VERSION, "num_items": dataset.num_items,
            "history": history, "columns": list(logs_frame.columns),
            "dtypes": {name: str(logs_frame[name].dtype) for name in logs_frame.columns},
            "items": ITEMS_FILE if dataset.items is not None else None}})
        if dataset.items is not None:
            dataset.items.to_parquet(_dataset_dir(written) / ITEMS_FILE)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # an error or Ctrl-C leaves no partial dataset
        raise
    return written


def _dataset_dir(dataset: Any) -> Path:
    """The folder holding a Minari dataset's ``data`` folder."""
    return Path(dataset.storage.data_path).parent


def import_minari(dataset: Any, *, data_path: str | os.PathLike | None = None) -> LogDataset:
    """Rebuild the recgym log of a dataset written by :func:`export_minari`.

    Args:
        dataset: a ``minari.MinariDataset`` or its id.
        data_path: Minari's dataset folder when ``dataset`` is an id.
    """
    minari = _minari()
    if data_path is not None:
        os.environ["MINARI_DATASETS_PATH"] = str(Path(data_path).expanduser())
    if isinstance(dataset, str):
        dataset = minari.load_dataset(dataset)
    meta = dataset.storage.metadata.get("recgym")
    if meta is None:
        raise ValueError(f"{dataset.spec.dataset_id} was not written by recgym's "
                         "export_minari (its metadata has no 'recgym' entry)")
    parts: dict[str, list] = {}
    for episode in dataset.iterate_episodes():
        pieces = {name: np.asarray(values)[1:] for name, values in episode.infos.items()}
        pieces["slate"] = np.asarray(episode.actions, dtype=np.int64)
        pieces["reward"] = np.asarray(episode.rewards, dtype=np.float64)
        for name, values in pieces.items():
            parts.setdefault(name, []).append(values)
    arrays = {name: np.concatenate(values) for name, values in parts.items()}
    order = np.argsort(arrays.pop("row"), kind="stable")
    frame = {}
    for name in meta["columns"]:
        values = arrays[name][order]
        if name in ("slate", "candidates"):
            frame[name] = list(values.astype(np.int64))
        else:
            frame[name] = values.astype(meta["dtypes"][name])
    items = None
    if meta.get("items"):
        items = pd.read_parquet(_dataset_dir(dataset) / meta["items"])
    return LogDataset(pd.DataFrame(frame), items, meta["num_items"])

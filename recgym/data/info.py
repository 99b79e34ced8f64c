"""Plain-text summaries of logs and datasets, for ``recgym data info`` and notebooks.

`describe_logs` reports what a page-view log holds before anyone trains on it: sessions,
users, items, slate size, steps per session, click rate, feedback classes, propensities
and which schema columns exist. `describe_interactions` does the same for rating /
implicit data, and `describe_target` accepts whatever a user has at hand: a log file, a
dataset folder in any format recgym reads, or a dataset name.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from recgym.data.dataset import LogDataset, load_logs
from recgym.data.logfiles import ITEMS_SUFFIX
from recgym.data.schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

# Above this many ratings, `describe_target` skips building display sets for the summary.
MAX_RATINGS_FOR_PAGEVIEWS = 2_000_000


def _commas(number: float) -> str:
    return f"{int(number):,}"


def _spread(values: np.ndarray) -> str:
    if len(values) == 0:
        return "none"
    return (f"min {_commas(values.min())}, median {np.median(values):,.1f}, "
            f"mean {values.mean():,.2f}, max {_commas(values.max())}")


def _time_range(seconds: np.ndarray) -> str:
    first, last = pd.to_datetime([seconds.min(), seconds.max()], unit="s", utc=True)
    span = f"unix {int(seconds.min())} .. {int(seconds.max())}"
    return f"{first:%Y-%m-%d} .. {last:%Y-%m-%d} (UTC; {span})"


def _stats(stats: dict[str, int]) -> str:
    return ", ".join(f"{name.replace('_', ' ')} {count:,}" for name, count in stats.items())


def _counts(series: pd.Series, limit: int = 10) -> str:
    counts = series.value_counts().sort_index()
    total = counts.sum()
    parts = [f"{value}: {_commas(count)} ({100 * count / total:.1f}%)"
             for value, count in counts.head(limit).items()]
    more = f", ... ({len(counts) - limit} more)" if len(counts) > limit else ""
    return ", ".join(parts) + more


def describe_logs(data: LogDataset | pd.DataFrame | str | os.PathLike,
                  title: str | None = None) -> str:
    """Return a printable summary of a page-view log (validated first if not a LogDataset)."""
    if isinstance(data, (str, os.PathLike)):
        title = title or str(data)
        data = load_logs(data)
    elif isinstance(data, pd.DataFrame):
        data = LogDataset(data)
    logs = data.logs
    lines = [f"log: {title}" if title else "log:"]
    sessions = logs.groupby("session_id").size().to_numpy()
    users = f"{_commas(logs['user_id'].nunique())}" if "user_id" in logs else "(no user_id column)"
    lines.append(f"  page views: {_commas(len(logs))}   sessions: {_commas(len(sessions))}   "
                 f"users: {users}")
    slates = data.slates()
    click = logs["click"].to_numpy()
    clicked = click[click >= 0]
    lines.append(f"  items: {_commas(data.num_items)} in catalogue, "
                 f"{_commas(len(np.unique(slates)))} shown, "
                 f"{_commas(len(np.unique(clicked)))} clicked")
    candidates = " (candidates column present)" if "candidates" in logs else ""
    lines.append(f"  slate size: {data.slate_size}{candidates}")
    lines.append(f"  steps per session: {_spread(sessions)}")
    lines.append(f"  click rate: {100 * len(clicked) / len(logs):.2f}% of page views "
                 f"({_commas(len(clicked))} clicks, {_commas(len(logs) - len(clicked))} without)")
    if "feedback" in logs:
        lines.append(f"  feedback classes: {_counts(logs['feedback'])}")
    if "reward" in logs:
        rewards = logs["reward"].to_numpy()
        lines.append(f"  reward: mean {rewards.mean():.4g}, sum {rewards.sum():,.6g}, "
                     f"non-zero {_commas((rewards != 0).sum())}")
    if "propensity" in logs:
        propensities = logs["propensity"].to_numpy()
        lines.append(f"  propensity: min {propensities.min():.4g}, "
                     f"median {np.median(propensities):.4g}, max {propensities.max():.4g}")
    if "timestamp" in logs:
        lines.append(f"  time: {_time_range(logs['timestamp'].to_numpy())}")
    present_opt = [c for c in OPTIONAL_COLUMNS if c in logs]
    missing_opt = [c for c in OPTIONAL_COLUMNS if c not in logs]
    extra = [c for c in logs.columns if c not in REQUIRED_COLUMNS and c not in OPTIONAL_COLUMNS]
    lines.append(f"  columns: required {', '.join(REQUIRED_COLUMNS)}; optional "
                 f"{', '.join(present_opt) or 'none'}; extra {', '.join(extra) or 'none'}")
    lines.append(f"  absent optional columns: {', '.join(missing_opt) or 'none'}")
    if data.items is not None:
        cols = list(data.items.columns)
        shown = ", ".join(map(str, cols[:8])) + (", ..." if len(cols) > 8 else "")
        lines.append(f"  item table: {_commas(len(data.items))} rows, {len(cols)} columns "
                     f"({shown})")
    else:
        lines.append("  item table: none")
    return "\n".join(lines)


def describe_interactions(
    frame: pd.DataFrame,
    title: str | None = None,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str | None = "rating",
    time_col: str | None = "timestamp",
) -> str:
    """Return a printable summary of user-item interactions (ratings or implicit)."""
    lines = [f"interactions: {title}" if title else "interactions:"]
    n_users = frame[user_col].nunique()
    n_items = frame[item_col].nunique()
    density = len(frame) / max(1, n_users * n_items)
    lines.append(f"  rows: {_commas(len(frame))}   users: {_commas(n_users)}   "
                 f"items: {_commas(n_items)}   density: {100 * density:.3f}%")
    per_user = frame.groupby(user_col).size().to_numpy()
    per_item = frame.groupby(item_col).size().to_numpy()
    lines.append(f"  per user: {_spread(per_user)}")
    lines.append(f"  per item: {_spread(per_item)}")
    if rating_col and rating_col in frame:
        lines.append(f"  ratings: {_counts(frame[rating_col])}")
    if time_col and time_col in frame:
        lines.append(f"  time: {_time_range(frame[time_col].to_numpy())}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- any target


def _describe_movielens(folder: Path | None, name: str | None, root: str | None) -> str:
    from recgym.data.movielens import load_movielens, read_movielens_folder
    from recgym.data.pageviews import movielens_to_logs

    ml = read_movielens_folder(folder) if folder else load_movielens(name, root=root)
    parts = [f"MovieLens {ml.name} from {ml.path}",
             describe_interactions(ml.interactions, "ratings (contiguous 0-based ids)"),
             f"  movies: {_commas(ml.num_items)} listed, {_commas(ml.items['year'].notna().sum())} "
             "with a release year"]
    if len(ml.interactions) <= MAX_RATINGS_FOR_PAGEVIEWS:
        logs = movielens_to_logs(ml)
        parts.append(describe_logs(logs, "as page views (ratings_to_logs: 40-item display "
                                         "sets by release year, one session per user)"))
    else:
        parts.append(f"(page-view summary skipped: more than {MAX_RATINGS_FOR_PAGEVIEWS:,} "
                     "ratings)")
    return "\n".join(parts)


def _describe_folder(folder: Path) -> str:
    from recgym.data import bandit, cf, movielens, sessions

    if movielens.detect_movielens_format(folder):
        return _describe_movielens(folder, None, None)
    if (folder / "train.txt").is_file() and (folder / "test.txt").is_file():
        data = cf.load_ml1m_implicit(folder)
        both = pd.concat([data.train.assign(part="train"), data.test.assign(part="test")])
        kept = cf.liang_preprocess(both, min_rating=None, min_user_count=5)
        return "\n".join([
            f"implicit train/test split (user item item ... lines) in {folder}",
            describe_interactions(data.train, "train", rating_col=None, time_col=None),
            describe_interactions(data.test, "test", rating_col=None, time_col=None),
            f"  after Liang preprocessing (users >= 5): {_commas(len(kept))} interactions, "
            f"{_commas(kept['user_id'].nunique())} users, "
            f"{_commas(kept['item_id'].nunique())} items",
        ])
    if (folder / "train.ascii").is_file():
        coat = bandit.load_coat(folder)
        return "\n".join([
            f"Coat (Schnabel et al. 2016) in {folder}",
            describe_interactions(coat.train, "train (self-selected)", time_col=None),
            describe_interactions(coat.test, "test (uniformly random)", time_col=None),
            describe_logs(coat.to_logs("test"), "test as page views (Coat.to_logs)"),
        ])
    if any((folder / p).is_dir() for p in bandit.OBD_POLICIES):
        parts = [f"Open Bandit Dataset in {folder}"]
        for policy in bandit.OBD_POLICIES:
            for campaign in bandit.OBD_CAMPAIGNS:
                if (folder / policy / campaign).is_dir():
                    obd = bandit.load_open_bandit(folder, policy, campaign)
                    parts.append(describe_logs(obd.to_logs(), f"{policy}/{campaign}"))
        return "\n\n".join(parts)
    if (folder / "yoochoose-clicks.dat").is_file() or list(folder.glob("*_train_full.txt")):
        data = sessions.load_yoochoose(folder)
        return "\n".join([f"YooChoose sessions in {folder}: {_stats(data.stats)}",
                          describe_logs(data.to_logs(), "as page views (SessionData.to_logs)")])
    if list(folder.glob("*train-item-views.csv")):
        data = sessions.load_diginetica(folder)
        return "\n".join([f"DIGINETICA sessions in {folder}: {_stats(data.stats)}",
                          describe_logs(data.to_logs(), "as page views (SessionData.to_logs)")])
    log_files = sorted(folder.glob("*.parquet"))
    if log_files:
        return "\n\n".join(describe_logs(path, str(path)) for path in log_files
                           if not path.name.endswith(ITEMS_SUFFIX))
    raise ValueError(f"recgym does not recognise the files in {folder}")


def describe_target(target: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """Summarise a log file, a dataset folder or a dataset name.

    Args:
        target: a ``.parquet`` / ``.csv`` log; a folder in any format recgym loads
            (MovieLens, ML-1M implicit, Coat, Open Bandit, YooChoose, DIGINETICA); or a
            name: ``ml-latest-small`` and ``open-bandit-dataset-small`` (shipped),
            ``ml-100k`` / ``ml-1m`` / ``ml-20m`` (looked up under `root`), or any folder
            name under `root`.
        root: where to look names up.
    """
    path = Path(target).expanduser()
    if path.is_file():
        return describe_logs(path, str(path))
    if path.is_dir():
        return _describe_folder(path)
    if root is not None and (Path(root).expanduser() / str(target)).is_dir():
        return _describe_folder(Path(root).expanduser() / str(target))
    from recgym.data.movielens import MOVIELENS_RELEASES, canonical_movielens_name
    from recgym.data.paths import SHIPPED_DATASETS, shipped_dataset_path

    name = str(target)
    if name in SHIPPED_DATASETS and name != "ml-latest-small":
        return _describe_folder(shipped_dataset_path(name))
    try:
        release = canonical_movielens_name(name)
    except ValueError:
        release = None
    if release in MOVIELENS_RELEASES:
        return _describe_movielens(None, release, None if root is None else str(root))
    raise FileNotFoundError(
        f"{target!r} is neither a file, a folder, nor a known dataset name "
        f"(known: {', '.join(sorted(set(SHIPPED_DATASETS) | set(MOVIELENS_RELEASES)))}; "
        "other datasets: pass their folder)"
    )

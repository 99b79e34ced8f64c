"""Logged bandit feedback with propensities: Open Bandit Dataset (small) and Coat.

* Open Bandit Dataset (Saito et al., 2020, ZOZOTOWN): each record is one item shown at
  one of three positions by a uniform-random or Bernoulli Thompson Sampling policy, with
  the click and the policy's probability of that choice. The small version is a row
  sample, so whole 3-item slates cannot be rebuilt; `OpenBanditData.to_logs` makes each
  record a one-step session whose slate is the shown item, with ``propensity`` from the
  data and ``position`` 0 (left), 1 (centre), 2 (right).
* Coat (Schnabel et al., ICML 2016): 290 users rated 24 self-selected coats (train, not
  missing at random) and 16 uniformly random coats (test, unbiased), with the authors'
  estimated propensities and one-hot user / item features. `Coat.to_logs` makes each
  user one session and each rated coat a one-item page view (click if rating >= 4).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recgym.data.dataset import LogDataset
from recgym.data.pageviews import feedback_from_ratings
from recgym.data.paths import shipped_dataset_path

OBD_POLICIES: tuple[str, ...] = ("random", "bts")
OBD_CAMPAIGNS: tuple[str, ...] = ("all", "men", "women")


@dataclass
class OpenBanditData:
    """One (behaviour policy, campaign) slice of the Open Bandit Dataset.

    Attributes:
        policy: ``"random"`` or ``"bts"``.
        campaign: ``"all"``, ``"men"`` or ``"women"``.
        records: one row per impression: ``timestamp`` (UTC datetime), ``item_id``,
            ``position`` (0-based), ``click`` (0/1), ``propensity``, ``user_feature_0..3``
            (hashed strings) and ``user-item_affinity_<k>`` floats.
        item_context: indexed by ``item_id``: ``item_feature_0`` (float) and
            ``item_feature_1..3`` (hashed strings).
    """

    policy: str
    campaign: str
    records: pd.DataFrame
    item_context: pd.DataFrame

    @property
    def num_items(self) -> int:
        """Number of items of the campaign."""
        return len(self.item_context)

    def to_logs(self) -> LogDataset:
        """Records as one-step sessions in the recgym schema (slate = the shown item).

        User features become integer codes (``user_feature_k``), item features likewise
        in the item table; ``reward`` is the click.
        """
        rec = self.records
        item = rec["item_id"].to_numpy(np.int64)
        clicked = rec["click"].to_numpy(np.int64) == 1
        ts = rec["timestamp"]
        logs = pd.DataFrame({
            "session_id": np.arange(len(rec), dtype=np.int64),
            "step": np.zeros(len(rec), dtype=np.int64),
            "slate": list(item[:, None]),
            "click": np.where(clicked, item, -1),
            "reward": clicked.astype(np.float64),
            "propensity": rec["propensity"].to_numpy(np.float64),
            "timestamp": (ts - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()
            .to_numpy().astype(np.int64),
            "position": rec["position"].to_numpy(np.int64),
        })
        for col in [c for c in rec.columns if c.startswith("user_feature_")]:
            logs[col] = pd.factorize(rec[col])[0].astype(np.int64)
        items = self.item_context.copy()
        for col in items.columns:
            if not pd.api.types.is_numeric_dtype(items[col]):
                items[col] = pd.factorize(items[col])[0].astype(np.int64)
        return LogDataset(logs, items=items, num_items=self.num_items)


def _obd_root(root: str | os.PathLike | None) -> Path:
    if root is None:
        return shipped_dataset_path("open-bandit-dataset-small")
    return Path(root).expanduser()


def load_open_bandit(
    root: str | os.PathLike | None = None, policy: str = "random", campaign: str = "all"
) -> OpenBanditData:
    """Load one slice of the Open Bandit Dataset (small version, or the full one).

    Args:
        root: folder holding ``<policy>/<campaign>/<campaign>.csv[.gz]`` and
            ``item_context.csv`` (the layout of obp's ``obd/``); defaults to the copy
            shipped in ``envs_data/open-bandit-dataset-small``.
        policy: ``"random"`` or ``"bts"``.
        campaign: ``"all"``, ``"men"`` or ``"women"``.
    """
    if policy not in OBD_POLICIES or campaign not in OBD_CAMPAIGNS:
        raise ValueError(f"policy must be one of {OBD_POLICIES} and campaign one of "
                         f"{OBD_CAMPAIGNS}; got {policy!r}, {campaign!r}")
    folder = _obd_root(root) / policy / campaign
    data_file = next((folder / f"{campaign}{ext}" for ext in (".csv.gz", ".csv")
                      if (folder / f"{campaign}{ext}").is_file()), None)
    if data_file is None:
        raise FileNotFoundError(f"no {campaign}.csv[.gz] in {folder}")
    raw = pd.read_csv(data_file, index_col=0)
    raw = raw.rename(columns={"propensity_score": "propensity"})
    raw["timestamp"] = pd.to_datetime(raw["timestamp"], utc=True, format="ISO8601")
    # OBD numbers positions 1..3 (left, centre, right); recgym counts from 0 like obp does.
    raw["position"] = raw["position"].astype(np.int64) - 1
    raw = raw.reset_index(drop=True)
    ctx = pd.read_csv(folder / "item_context.csv", index_col=0).set_index("item_id")
    ctx.index = ctx.index.astype(np.int64)
    return OpenBanditData(policy=policy, campaign=campaign, records=raw, item_context=ctx)


# ----------------------------------------------------------------------------- Coat


@dataclass
class Coat:
    """The Coat shopping dataset (Schnabel et al., 2016).

    Attributes:
        train: ``user_id``, ``item_id``, ``rating`` of self-selected items (6,960 rows).
        test: the same for uniformly random items (4,640 rows).
        propensities: (290, 300) estimated probability that each cell is observed in
            train (the authors' model).
        user_features: (290, 14) one-hot, columns named from ``user_features_map.txt``.
        item_features: (300, 33) one-hot, columns named from ``item_features_map.txt``.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    propensities: np.ndarray
    user_features: pd.DataFrame
    item_features: pd.DataFrame

    @property
    def num_users(self) -> int:
        """Number of users (290)."""
        return self.propensities.shape[0]

    @property
    def num_items(self) -> int:
        """Number of coats (300)."""
        return self.propensities.shape[1]

    def to_logs(self, part: str = "test", positive_threshold: float = 4.0) -> LogDataset:
        """One session per user, one page view per rated coat, in item-id order.

        The slate is the rated coat; it is clicked (and feedback is 1) when its rating is
        at least `positive_threshold`. ``propensity`` is the exposure probability: 16/300
        for the uniformly random test part, the authors' estimate for the train part.
        """
        frame = {"train": self.train, "test": self.test}[part]
        frame = frame.sort_values(["user_id", "item_id"]).reset_index(drop=True)
        item = frame["item_id"].to_numpy(np.int64)
        user = frame["user_id"].to_numpy(np.int64)
        rating = frame["rating"].to_numpy(np.float64)
        fb = feedback_from_ratings(rating, positive_threshold)
        if part == "test":
            per_user = frame.groupby("user_id").size()
            prop = (per_user.reindex(user).to_numpy() / self.num_items).astype(np.float64)
        else:
            prop = self.propensities[user, item].astype(np.float64)
        logs = pd.DataFrame({
            "session_id": user,
            "user_id": user,
            "step": frame.groupby("user_id").cumcount().to_numpy(np.int64),
            "slate": list(item[:, None]),
            "click": np.where(fb == 1, item, -1),
            "feedback": fb,
            "propensity": prop,
            "rating": rating.astype(np.float32),
        })
        return LogDataset(logs, items=self.item_features, num_items=self.num_items)


def _ratings_frame(matrix: np.ndarray) -> pd.DataFrame:
    users, items = np.nonzero(matrix)
    return pd.DataFrame({"user_id": users.astype(np.int64), "item_id": items.astype(np.int64),
                         "rating": matrix[users, items].astype(np.float32)})


def _feature_names(path: Path, n: int, prefix: str) -> list[str]:
    if path.is_file():
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if len(names) == n:
            return names
    return [f"{prefix}_{i}" for i in range(n)]


def load_coat(root: str | os.PathLike) -> Coat:
    """Load Coat from the folder of the authors' ``coat.zip`` (``train.ascii`` etc.)."""
    root = Path(root).expanduser()
    for name in ("train.ascii", "test.ascii"):
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name} is missing (Coat's coat.zip layout)")
    train = np.loadtxt(root / "train.ascii")
    test = np.loadtxt(root / "test.ascii")
    prop_path = root / "propensities.ascii"
    props = np.loadtxt(prop_path) if prop_path.is_file() else np.full(train.shape, np.nan)
    feat = root / "user_item_features"
    user_x = np.loadtxt(feat / "user_features.ascii") if feat.is_dir() else np.zeros(
        (train.shape[0], 0))
    item_x = np.loadtxt(feat / "item_features.ascii") if feat.is_dir() else np.zeros(
        (train.shape[1], 0))
    user_features = pd.DataFrame(
        user_x.astype(np.uint8),
        columns=_feature_names(feat / "user_features_map.txt", user_x.shape[1], "user"),
    )
    user_features.index.name = "user_id"
    item_features = pd.DataFrame(
        item_x.astype(np.uint8),
        columns=_feature_names(feat / "item_features_map.txt", item_x.shape[1], "item"),
    )
    item_features.index.name = "item_id"
    return Coat(train=_ratings_frame(train), test=_ratings_frame(test), propensities=props,
                user_features=user_features, item_features=item_features)

"""Session click logs: YooChoose (RecSys Challenge 2015) and DIGINETICA (CIKM Cup 2016).

These are the e-commerce click streams with purchases that IRecGAN (Bai et al., NeurIPS
2019) and the GAN user model paper use. Both loaders return a `SessionData`: one row per
event with 0-based contiguous item ids, the session, the step within it, the time, and
the feedback class (1 click / view, 2 purchase) with ``reward`` 1.0 for a purchase.

Purchases are attached to the view they follow: the last view of the bought item in the
same session at or before the purchase time (else the last view of it in the session).
A purchase with no view of its item in the session is added as its own step (a click
that was bought), unless ``unmatched_purchases="drop"``; `SessionData.stats` says how
many of each there were. Neither dataset logs impressions: `events_to_logs` (and
`SessionData.to_logs`) turns events into page views with display sets built from the time
around each event (`displays.display_sets_by_time_window` or
`displays.display_sets_by_nearest_time`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recgym.data.dataset import LogDataset
from recgym.data.displays import display_sets_by_nearest_time, display_sets_by_time_window
from recgym.data.schema import FEEDBACK_CLICK, FEEDBACK_PURCHASE


@dataclass
class SessionData:
    """Session events with 0-based item ids.

    Attributes:
        name: dataset name.
        events: ``session_id`` (original), ``step`` (0-based), ``item_id``, ``time`` (float
            seconds), ``timestamp`` (int seconds), ``feedback`` (1 click, 2 purchase),
            ``reward`` (1.0 for a purchase) and dataset-specific extras (``part``,
            ``raw_user_id``).
        items: indexed by ``item_id``: ``raw_item_id`` and features (``category``).
        stats: counts of what was read, matched and dropped.
    """

    name: str
    events: pd.DataFrame
    items: pd.DataFrame
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def num_items(self) -> int:
        """Number of items."""
        return len(self.items)

    def __repr__(self) -> str:
        return (f"SessionData({self.name!r}: {len(self.events):,} events, "
                f"{self.events['session_id'].nunique():,} sessions, {self.num_items:,} items)")

    def to_logs(self, *, size: int = 10, window: float = 3600.0, seed: int = 0) -> LogDataset:
        """The events as page views, with display sets of items active near each event."""
        return events_to_logs(self.events, num_items=self.num_items, items=self.items,
                              size=size, window=window, seed=seed)


def events_to_logs(
    events: pd.DataFrame,
    *,
    num_items: int,
    items: pd.DataFrame | None = None,
    size: int = 10,
    window: float = 3600.0,
    seed: int = 0,
    display: str = "window",
) -> LogDataset:
    """Page views from session events (one clicked item per step), with time-based displays.

    `events` has ``session_id``, ``step``, ``item_id``, ``timestamp`` and optionally
    ``feedback`` / ``reward`` / ``user_id`` and extra columns (kept). Each event becomes a
    page view whose click is the event's item and whose slate is built by
    `display_sets_by_time_window` (``display="window"``) or `display_sets_by_nearest_time`
    (``"nearest"``, which ignores ``window``).
    """
    time_col = "time" if "time" in events.columns else "timestamp"
    clicked = events["item_id"].to_numpy(np.int64)
    times = events[time_col].to_numpy(np.float64)
    if display == "window":
        slates = display_sets_by_time_window(clicked, times, size=size, window=window, seed=seed)
    elif display == "nearest":
        slates = display_sets_by_nearest_time(clicked, times, events["session_id"].to_numpy(),
                                              size=size, seed=seed)
    else:
        raise ValueError(f"display must be 'window' or 'nearest', got {display!r}")
    logs = events.drop(columns=["item_id"]).copy()
    logs["slate"] = list(slates)
    logs["click"] = clicked
    schema_order = ["session_id", "user_id", "step", "slate", "click", "feedback", "reward",
                    "timestamp"]
    leading = [c for c in schema_order if c in logs.columns]
    logs = logs[leading + [c for c in logs.columns if c not in leading]]
    return LogDataset(logs, items=items, num_items=num_items)


def _number_steps(events: pd.DataFrame) -> pd.DataFrame:
    events = events.sort_values(["session_id", "time", "_order"], kind="stable")
    events = events.reset_index(drop=True)
    events["step"] = events.groupby("session_id", sort=False).cumcount().astype(np.int64)
    return events


def _attach_purchases(
    views: pd.DataFrame, purchases: pd.DataFrame, unmatched: str, stats: dict[str, int]
) -> pd.DataFrame:
    """Mark purchased views (feedback 2, reward 1) and add unmatched purchases as steps.

    Both frames hold raw ``session_id``, ``raw_item``, ``time``; views also ``_order``.
    """
    if unmatched not in ("add", "drop"):
        raise ValueError("unmatched_purchases must be 'add' or 'drop'")
    views = views.copy()
    views["feedback"] = FEEDBACK_CLICK
    views["reward"] = 0.0
    purchases = purchases[purchases["session_id"].isin(views["session_id"])]
    stats["purchase_rows"] = len(purchases)
    purchases = purchases.sort_values("time").drop_duplicates(["session_id", "raw_item"])
    stats["purchases"] = len(purchases)
    if len(purchases) == 0:
        stats["purchases_matched"] = stats["purchases_added"] = stats["purchases_dropped"] = 0
        return views
    bought_views = views.reset_index()[["index", "session_id", "raw_item", "time"]].merge(
        purchases[["session_id", "raw_item", "time"]].rename(columns={"time": "bought_at"}),
        on=["session_id", "raw_item"],
    )
    # Prefer the last view at or before the purchase; else the last view of the item.
    bought_views["before"] = bought_views["time"] <= bought_views["bought_at"]
    bought_views = bought_views.sort_values(["before", "time"]).drop_duplicates(
        ["session_id", "raw_item"], keep="last")
    matched_rows = bought_views["index"].to_numpy()
    views.loc[matched_rows, ["feedback", "reward"]] = [FEEDBACK_PURCHASE, 1.0]
    stats["purchases_matched"] = len(bought_views)
    purchase_keys = purchases.set_index(["session_id", "raw_item"]).index
    matched_keys = bought_views.set_index(["session_id", "raw_item"]).index
    lonely = purchases[~purchase_keys.isin(matched_keys)]
    if unmatched == "add" and len(lonely):
        extra = lonely[["session_id", "raw_item", "time"]].copy()
        extra["feedback"] = FEEDBACK_PURCHASE
        extra["reward"] = 1.0
        extra["_order"] = np.arange(len(extra)) + len(views)
        for col in views.columns.difference(extra.columns):
            extra[col] = views.groupby("session_id")[col].first().reindex(
                extra["session_id"]).to_numpy()
        views = pd.concat([views, extra[views.columns]], ignore_index=True)
    stats["purchases_added"] = len(lonely) if unmatched == "add" else 0
    stats["purchases_dropped"] = len(lonely) if unmatched == "drop" else 0
    return views


def _finish(name: str, events: pd.DataFrame, item_features: pd.DataFrame | None,
            stats: dict[str, int]) -> SessionData:
    raw_items = np.unique(events["raw_item"].to_numpy())
    events["item_id"] = np.searchsorted(raw_items, events["raw_item"].to_numpy()).astype(
        np.int64)
    events["timestamp"] = np.floor(events["time"].to_numpy()).astype(np.int64)
    events["session_id"] = events["session_id"].astype(np.int64)
    events = _number_steps(events)
    items = pd.DataFrame({"raw_item_id": raw_items})
    if item_features is not None:
        items = items.merge(item_features, left_on="raw_item_id", right_index=True, how="left")
    items.index = pd.RangeIndex(len(items), name="item_id")
    front = ["session_id", "step", "item_id", "time", "timestamp", "feedback", "reward"]
    rest = [c for c in events.columns if c not in front and c not in ("raw_item", "_order")]
    stats.update(events=len(events), sessions=int(events["session_id"].nunique()),
                 items=len(items))
    return SessionData(name=name, events=events[front + rest], items=items, stats=stats)


# ----------------------------------------------------------------------------- YooChoose


def _read_yoochoose_file(path: Path) -> pd.DataFrame:
    """Read raw ``yoochoose-clicks.dat`` or session-rec's prepared TSV as session/item/time."""
    with open(path) as fh:
        first = fh.readline()
    if first.startswith("SessionId"):
        raw = pd.read_csv(path, sep="\t", dtype={"SessionId": np.int64, "ItemId": np.int64,
                                                 "Time": np.float64})
        return pd.DataFrame({"session_id": raw["SessionId"], "raw_item": raw["ItemId"],
                             "time": raw["Time"]})
    raw = pd.read_csv(path, header=None, usecols=[0, 1, 2], names=["session_id", "ts", "item"],
                      dtype={"session_id": np.int64, "ts": str, "item": np.int64})
    time = pd.to_datetime(raw["ts"], utc=True, format="ISO8601")
    seconds = (time - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()
    return pd.DataFrame({"session_id": raw["session_id"], "raw_item": raw["item"],
                         "time": seconds.to_numpy()})


def _read_yoochoose_buys(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, header=None, names=["session_id", "ts", "item", "price", "quantity"],
                      dtype={"session_id": np.int64, "ts": str, "item": np.int64})
    time = pd.to_datetime(raw["ts"], utc=True, format="ISO8601")
    seconds = (time - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()
    return pd.DataFrame({"session_id": raw["session_id"], "raw_item": raw["item"],
                         "time": seconds.to_numpy()})


def load_yoochoose(
    path: str | os.PathLike,
    *,
    buys: str | os.PathLike | None = None,
    part: str = "all",
    unmatched_purchases: str = "add",
) -> SessionData:
    """Load YooChoose click sessions (and purchases, when a buys file is given or found).

    Args:
        path: ``yoochoose-clicks.dat`` (raw RSC15: ``SessionID,Timestamp,ItemID,Category``),
            a session-rec prepared TSV (``SessionId ItemId Time``), or a folder holding
            either the raw files or session-rec's ``*_train_full.txt`` / ``*_test.txt``.
        buys: ``yoochoose-buys.dat`` (``SessionID,Timestamp,ItemID,Price,Quantity``);
            found automatically next to raw clicks.
        part: for a session-rec folder, ``"train"``, ``"test"`` or ``"all"`` (both, with a
            ``part`` column; item ids are shared).
        unmatched_purchases: ``"add"`` a purchase without a view as its own step, or
            ``"drop"`` it.
    """
    path = Path(path).expanduser()
    stats: dict[str, int] = {}
    if path.is_dir():
        raw_clicks = path / "yoochoose-clicks.dat"
        if raw_clicks.is_file():
            if buys is None and (path / "yoochoose-buys.dat").is_file():
                buys = path / "yoochoose-buys.dat"
            events = _read_yoochoose_file(raw_clicks)
        else:
            files = {"train": sorted(path.glob("*_train_full.txt")),
                     "test": sorted(path.glob("*_test.txt"))}
            wanted = ["train", "test"] if part == "all" else [part]
            if part not in ("all", "train", "test"):
                raise ValueError("part must be 'train', 'test' or 'all'")
            frames = []
            for name in wanted:
                if len(files[name]) != 1:
                    raise FileNotFoundError(
                        f"expected one *_{'train_full' if name == 'train' else 'test'}.txt in "
                        f"{path}, found {[f.name for f in files[name]]}")
                frame = _read_yoochoose_file(files[name][0])
                frame["part"] = name
                frames.append(frame)
            events = pd.concat(frames, ignore_index=True)
    else:
        events = _read_yoochoose_file(path)
    events["_order"] = np.arange(len(events))
    stats["clicks"] = len(events)
    if buys is not None:
        events = _attach_purchases(events, _read_yoochoose_buys(Path(buys)),
                                   unmatched_purchases, stats)
    else:
        events["feedback"] = FEEDBACK_CLICK
        events["reward"] = 0.0
    return _finish("yoochoose", events, None, stats)


# ----------------------------------------------------------------------------- DIGINETICA


def load_diginetica(
    root: str | os.PathLike,
    *,
    views_file: str | None = None,
    unmatched_purchases: str = "add",
) -> SessionData:
    """Load DIGINETICA item views with purchases and item categories.

    Args:
        root: folder with ``train-item-views.csv`` or SR-GNN's
            ``sample_train-item-views.csv`` (``session_id;user_id;item_id;timeframe;
            eventdate``), and optionally ``train-purchases.csv`` and
            ``product-categories.csv``.
        views_file: file name of the views, if not one of the above.
        unmatched_purchases: ``"add"`` or ``"drop"`` purchases without a view in the
            session (the SR-GNN sample holds a subset of the views).

    Event time is the session's first ``eventdate`` (UTC midnight) plus ``timeframe``
    milliseconds (time since the session's first event), so sessions crossing midnight
    stay ordered. Only purchases of sessions present in the views are read.
    """
    root = Path(root).expanduser()
    names = [views_file] if views_file else ["train-item-views.csv",
                                             "sample_train-item-views.csv"]
    views_path = next((root / n for n in names if (root / n).is_file()), None)
    if views_path is None:
        raise FileNotFoundError(f"no DIGINETICA views file ({' or '.join(names)}) in {root}")
    raw = pd.read_csv(views_path, sep=";", dtype={"user_id": "Int64"})
    raw.columns = [c.strip() for c in raw.columns]
    rename = {"sessionId": "session_id", "userId": "user_id", "itemId": "item_id"}
    raw = raw.rename(columns=rename)
    day = pd.to_datetime(raw["eventdate"], utc=True)
    start = day.groupby(raw["session_id"]).transform("min")
    epoch = (start - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy()
    events = pd.DataFrame({
        "session_id": raw["session_id"].to_numpy(np.int64),
        "raw_item": raw["item_id"].to_numpy(np.int64),
        "time": epoch + raw["timeframe"].to_numpy(np.float64) / 1000.0,
        "raw_user_id": raw["user_id"].astype("Int64"),
        "_order": np.arange(len(raw)),
    })
    stats = {"views": len(events)}
    session_start = pd.Series(epoch, index=raw["session_id"].to_numpy()).groupby(level=0).min()
    purchases_path = root / "train-purchases.csv"
    if purchases_path.is_file():
        bought = pd.read_csv(purchases_path, sep=";", dtype={"userId": "Int64"}).rename(
            columns=rename)
        bought = bought[bought["session_id"].isin(session_start.index)]
        # Same clock as the views: the session's first view date plus timeframe.
        base = session_start.reindex(bought["session_id"]).to_numpy()
        purchases = pd.DataFrame({
            "session_id": bought["session_id"].to_numpy(np.int64),
            "raw_item": bought["item_id"].to_numpy(np.int64),
            "time": base + bought["timeframe"].to_numpy(np.float64) / 1000.0,
        })
        events = _attach_purchases(events, purchases, unmatched_purchases, stats)
    else:
        events["feedback"] = FEEDBACK_CLICK
        events["reward"] = 0.0
    features = None
    cat_path = root / "product-categories.csv"
    if cat_path.is_file():
        cats = pd.read_csv(cat_path, sep=";").rename(columns={"itemId": "item", "categoryId":
                                                              "category"})
        features = cats.drop_duplicates("item").set_index("item")[["category"]]
    data = _finish("diginetica", events, features, stats)
    if features is not None:
        data.items["category"] = data.items["category"].astype("Int64")
        data.stats["items_without_category"] = int(data.items["category"].isna().sum())
    return data

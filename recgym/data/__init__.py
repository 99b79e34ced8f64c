"""recgym's data layer: one validated log schema, dataset loaders, splits and display sets.

Plain pandas / numpy / scipy / pyarrow (no torch). The log schema is in `schema`;
loaders in `movielens`, `cf` (Liang et al. preprocessing and strong-generalisation split),
`sessions` (YooChoose, DIGINETICA) and `bandit` (Open Bandit, Coat); ratings and click
streams become page views in `pageviews`; seeded splits in `splits`; summaries in `info`.
"""

from __future__ import annotations

from recgym.data.bandit import Coat, OpenBanditData, load_coat, load_open_bandit
from recgym.data.cf import (
    LIANG_PRESETS,
    ImplicitSplit,
    StrongGeneralizationSplit,
    interactions_to_csr,
    liang_preprocess,
    load_liang_dataset,
    load_ml1m_implicit,
    read_ml20m_ratings,
    read_msd_triplets,
    read_netflix,
    strong_generalization_split,
)
from recgym.data.download import ChecksumError, download_file, extract_zip, sha256_of
from recgym.data.files import atomic_write, save_figure
from recgym.data.info import describe_interactions, describe_logs, describe_target
from recgym.data.movielens import (
    MOVIELENS_RELEASES,
    MovieLens,
    download_movielens,
    load_movielens,
    read_movielens_folder,
    read_ratings,
)
from recgym.data.pageviews import (
    FEEDBACK_CLICK,
    FEEDBACK_PURCHASE,
    FEEDBACK_SKIP,
    display_sets_by_release,
    display_sets_by_time_window,
    events_to_logs,
    feedback_from_events,
    feedback_from_ratings,
    movielens_to_logs,
    ratings_to_logs,
    timelines_to_sessions,
)
from recgym.data.paths import envs_data_path, shipped_dataset_path
from recgym.data.schema import (
    LOG_SCHEMA,
    CleanReport,
    LogDataset,
    LogValidationError,
    Problem,
    load_logs,
    validate_logs,
)
from recgym.data.sessions import SessionData, load_diginetica, load_yoochoose
from recgym.data.splits import (
    Split,
    gan_user_model_split,
    sample_users,
    split_by_session,
    split_by_user,
    split_ids,
)

__all__ = [
    "atomic_write",
    "save_figure",
    "FEEDBACK_CLICK",
    "FEEDBACK_PURCHASE",
    "FEEDBACK_SKIP",
    "LIANG_PRESETS",
    "LOG_SCHEMA",
    "MOVIELENS_RELEASES",
    "ChecksumError",
    "CleanReport",
    "Coat",
    "ImplicitSplit",
    "LogDataset",
    "LogValidationError",
    "MovieLens",
    "OpenBanditData",
    "Problem",
    "SessionData",
    "Split",
    "StrongGeneralizationSplit",
    "describe_interactions",
    "describe_logs",
    "describe_target",
    "display_sets_by_release",
    "display_sets_by_time_window",
    "download_file",
    "download_movielens",
    "envs_data_path",
    "events_to_logs",
    "extract_zip",
    "feedback_from_events",
    "feedback_from_ratings",
    "gan_user_model_split",
    "interactions_to_csr",
    "liang_preprocess",
    "load_coat",
    "load_diginetica",
    "load_liang_dataset",
    "load_logs",
    "load_ml1m_implicit",
    "load_movielens",
    "load_open_bandit",
    "load_yoochoose",
    "movielens_to_logs",
    "ratings_to_logs",
    "read_ml20m_ratings",
    "read_movielens_folder",
    "read_msd_triplets",
    "read_netflix",
    "read_ratings",
    "sample_users",
    "sha256_of",
    "shipped_dataset_path",
    "split_by_session",
    "split_by_user",
    "split_ids",
    "strong_generalization_split",
    "timelines_to_sessions",
    "validate_logs",
]

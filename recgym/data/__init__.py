"""recgym's data layer: one validated log schema, dataset loaders, splits and display sets.

Plain pandas / numpy / scipy / pyarrow (no torch). The log schema's columns are in
`schema`, its checks in `checks` (on values parsed by `typed_columns`), log files in
`logfiles`, and `LogDataset` / `load_logs` in `dataset`. Loaders are in `movielens`, `cf`
(Liang et al. preprocessing and strong-generalisation split), `sessions` (YooChoose,
DIGINETICA) and `bandit` (Open Bandit, Coat); ratings and click streams become page views
in `pageviews`, with display sets from `displays`; seeded splits are in `splits`,
summaries in `info`.
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
from recgym.data.checks import LogValidationError, Problem, validate_logs
from recgym.data.dataset import CleanReport, LogDataset, load_logs
from recgym.data.displays import display_sets_by_release, display_sets_by_time_window
from recgym.data.download import ChecksumError, download_file, extract_zip, sha256_of
from recgym.data.files import atomic_write, load_progress, save_figure, save_progress
from recgym.data.info import describe_interactions, describe_logs, describe_target
from recgym.data.logfiles import LogFileError
from recgym.data.movielens import (
    MOVIELENS_RELEASES,
    MovieLens,
    download_movielens,
    load_movielens,
    read_movielens_folder,
    read_ratings,
)
from recgym.data.pageviews import (
    feedback_from_events,
    feedback_from_ratings,
    movielens_to_logs,
    ratings_to_logs,
    timelines_to_sessions,
)
from recgym.data.paths import envs_data_path, shipped_dataset_path
from recgym.data.schema import (
    FEEDBACK_CLICK,
    FEEDBACK_PURCHASE,
    FEEDBACK_SKIP,
    LOG_SCHEMA,
    feedback_from_clicks,
)
from recgym.data.sessions import SessionData, events_to_logs, load_diginetica, load_yoochoose
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
    "load_progress",
    "save_figure",
    "save_progress",
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
    "LogFileError",
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
    "feedback_from_clicks",
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

"""``recgym export-minari`` / ``import-minari``: logs to and from Minari offline-RL datasets.

The conversion itself is `recgym.integrations.minari`; it needs the optional ``minari``
package, imported only when a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from recgym.cli.arguments import parquet_output, positive_int


def cmd_export_minari(args: argparse.Namespace) -> None:
    """Write a log as a Minari dataset, with a progress bar over its sessions."""
    from recgym.integrations.minari import export_minari

    written = export_minari(args.logs, args.dataset_id, history=args.history,
                            data_path=args.data_path, data_format=args.data_format,
                            overwrite=args.overwrite, progress=True)
    print(f"wrote {written.total_episodes:,} episodes ({written.total_steps:,} steps) to "
          f"Minari dataset {args.dataset_id} in {Path(written.storage.data_path).parent}")


def cmd_import_minari(args: argparse.Namespace) -> None:
    """Rebuild the recgym log of a dataset written by ``export-minari``."""
    from recgym.integrations.minari import import_minari

    dataset = import_minari(args.dataset_id, data_path=args.data_path)
    dataset.save(args.out)
    print(f"wrote {len(dataset):,} page views of {dataset.num_sessions:,} sessions to {args.out}")


def add_minari_commands(subparsers: Any) -> None:
    """Add ``export-minari`` and ``import-minari`` to the ``recgym`` parser."""
    export = subparsers.add_parser(
        "export-minari", help="write a log as a Minari offline-RL dataset",
        description="One episode per session: click-history observations (N + 1), slates "
                    "as actions, every other log column in infos (see "
                    "recgym.integrations.minari).")
    export.add_argument("logs", help="log file (Parquet / CSV, log schema)")
    export.add_argument("dataset_id", help="Minari id, e.g. recgym/synthetic-mix-v0")
    export.add_argument("--history", type=positive_int, default=10,
                        help="clicks per observation (H)")
    export.add_argument("--data-path", help="Minari dataset folder (default "
                                            "$MINARI_DATASETS_PATH or ~/.minari/datasets)")
    export.add_argument("--data-format", choices=("arrow", "hdf5"), default="arrow")
    export.add_argument("--overwrite", action="store_true",
                        help="replace a dataset already at DATASET_ID (e.g. the partial one "
                             "of an interrupted export)")
    export.set_defaults(func=cmd_export_minari)
    back = subparsers.add_parser("import-minari",
                                 help="rebuild a recgym log from a dataset of export-minari")
    back.add_argument("dataset_id", help="Minari id written by recgym export-minari")
    back.add_argument("--out", required=True, type=parquet_output,
                      help="output log file (.parquet) in an existing folder")
    back.add_argument("--data-path", help="Minari dataset folder")
    back.set_defaults(func=cmd_import_minari)

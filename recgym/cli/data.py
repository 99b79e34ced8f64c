"""``recgym data info TARGET [--root DIR]``: what a log or dataset holds."""

from __future__ import annotations

import argparse
from typing import Any

INFO_HELP = """\
TARGET is any of:
  a log file          my_logs.parquet (as written by LogDataset.save), or .csv / .tsv
  a dataset folder    e.g. ~/data/movielens-100k, .../coat, .../yoochoose-clicks-100k
  a dataset name      ml-latest-small, open-bandit-dataset-small (shipped with recgym);
                      ml-100k, ml-1m, ml-20m (found under --root); any folder name under --root
"""


def cmd_info(args: argparse.Namespace) -> None:
    """Print the summary of ``args.target`` (an invalid log or unknown target raises)."""
    from recgym.data.info import describe_target

    print(describe_target(args.target, root=args.root))


def add_data_commands(subparsers: Any) -> None:
    """Add the ``data`` command (with its ``info`` subcommand) to the ``recgym`` parser."""
    data = subparsers.add_parser("data", help="inspect logs and datasets",
                                 description="Inspect logs and datasets.")
    sub = data.add_subparsers(dest="data_command", metavar="{info}", required=True)
    info = sub.add_parser(
        "info", help="print what a log or dataset holds",
        description="Print what a log or dataset holds: sessions, users, items, steps per "
        "session, click rate, feedback, and which columns exist.",
        epilog=INFO_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    info.add_argument("target", metavar="TARGET", help="log file, dataset folder or name")
    info.add_argument("--root", default=None, help="folder to look dataset names up in")
    info.set_defaults(func=cmd_info)

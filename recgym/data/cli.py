"""The ``recgym data`` command: ``recgym data info TARGET [--root DIR]``.

`add_data_commands` adds it to the top-level argparse sub-parsers; each leaf parser sets
``func``, so the top-level CLI runs ``args.func(args)``. Errors (an invalid log, an
unknown target) go to stderr with exit status 1.
``python -m recgym.data.cli info TARGET`` runs it stand-alone.
"""

from __future__ import annotations

import argparse
import sys

INFO_HELP = """\
TARGET is any of:
  a log file          my_logs.parquet (as written by LogDataset.save), or .csv / .tsv
  a dataset folder    e.g. ../shared/data/movielens-100k, .../coat, .../yoochoose-clicks-100k
  a dataset name      ml-latest-small, open-bandit-dataset-small (shipped with recgym);
                      ml-100k, ml-1m, ml-20m (found under --root); any folder name under --root
"""


def add_data_commands(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``data`` command (with its ``info`` subcommand) to `subparsers`."""
    data = subparsers.add_parser("data", help="inspect logs and datasets",
                                 description="Inspect logs and datasets.")
    sub = data.add_subparsers(dest="data_command", metavar="{info}")
    sub.required = True
    info = sub.add_parser(
        "info", help="print what a log or dataset holds",
        description="Print what a log or dataset holds: sessions, users, items, steps per "
        "session, click rate, feedback, and which columns exist.",
        epilog=INFO_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    info.add_argument("target", metavar="TARGET", help="log file, dataset folder or name")
    info.add_argument("--root", default=None, help="folder to look dataset names up in")
    info.set_defaults(func=run_info)
    return data


def run_info(args: argparse.Namespace) -> int:
    """Print the summary of ``args.target`` and return 0.

    On a bad log or an unknown target it prints the error to stderr and raises
    ``SystemExit(1)``, so the exit status is right however the caller dispatches.
    """
    from recgym.data.info import describe_target
    from recgym.data.schema import LogValidationError

    try:
        print(describe_target(args.target, root=args.root))
    except (LogValidationError, FileNotFoundError, ValueError) as err:
        print(f"recgym data info: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m recgym.data.cli info TARGET``."""
    parser = argparse.ArgumentParser(prog="recgym")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())

"""The ``recgym`` command: envs, simulators, CF policies, off-policy evaluation, data.

One module per command group (``envs``, ``fit``, ``train``, ``rl``, ``ope``, ``data``,
``minari``), each adding its subcommands with an ``add_*_commands(subparsers)`` function.
Modules of this package import only argparse and the standard library at module level,
and each handler imports torch, pandas, stable-baselines3 or agents itself, so ``recgym
--help`` answers at once. A user error (bad input) prints one line ``recgym: error: ...``
and exits with status 2; ``recgym --debug COMMAND ...`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

import recgym
from recgym.cli.data import add_data_commands
from recgym.cli.envs import add_env_commands
from recgym.cli.fidelity import add_fidelity_commands
from recgym.cli.fit import add_fit_commands
from recgym.cli.minari import add_minari_commands
from recgym.cli.ope import add_ope_commands
from recgym.cli.rl import add_rl_commands
from recgym.cli.train import add_train_commands

# Errors that bad input raises, and a missing third-party package (the user installs it);
# anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, KeyError,
               ModuleNotFoundError)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line ``recgym: error: ...`` (status 2)."""

    def error(self, message: str) -> NoReturn:
        """Print the one-line error and exit with status 2."""
        self.exit(2, f"recgym: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``recgym`` command (imports nothing heavy)."""
    parser = _Parser(prog="recgym", description="Recommender-system simulators for RL: envs, "
                     "user simulators, CF policies, off-policy evaluation and data.")
    parser.add_argument("--version", action="version", version=recgym.__version__)
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one line")
    commands = parser.add_subparsers(dest="command", required=True)
    add_env_commands(commands)
    add_fit_commands(commands)
    add_fidelity_commands(commands)
    add_data_commands(commands)
    add_ope_commands(commands)
    add_minari_commands(commands)
    add_train_commands(commands)
    add_rl_commands(commands)
    return parser


def _is_bug(error: BaseException) -> bool:
    """A module of recgym or agents that cannot be found is a bug, not the user's to fix."""
    return (isinstance(error, ModuleNotFoundError)
            and (error.name or "").split(".")[0] in ("recgym", "agents"))


def _message(error: BaseException) -> str:
    """The text of an error (a KeyError's without the quotes ``str`` adds)."""
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return str(error)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``recgym ARGV`` (default: ``sys.argv[1:]``) and return its exit status.

    0 on success (and for ``--help``), 2 for a usage or user error, which is printed as one
    line on stderr (``--debug`` raises it instead, with its traceback).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error already printed
        return int(stop.code or 0)
    try:
        args.func(args)
    except USER_ERRORS as error:
        if args.debug or _is_bug(error):
            raise
        print(f"recgym: error: {_message(error)}", file=sys.stderr)
        return 2
    return 0

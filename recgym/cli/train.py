"""``recgym train {mult-vae,mult-dae,ract,cf-sfl,ease,popularity} --data NAME_OR_PATH``.

The collaborative-filtering models live in ``agents.cf``; the CLI is the one part of recgym
that may import agents, and does so only when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from recgym.cli.arguments import key_value

# the keys of agents.cf.train.MODEL_NAMES (a test keeps them equal), known without torch
CF_MODELS = ("mult-vae", "mult-dae", "ract", "cf-sfl", "ease", "popularity")


def heldout_users(text: str) -> int | float:
    """``--heldout``: a fraction of the users in (0, 1), or a whole count >= 1."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or (value >= 1 and not value.is_integer()):
        raise argparse.ArgumentTypeError(
            f"expected a fraction of the users in (0, 1) or a whole count >= 1, got {text!r}")
    return value if value < 1 else int(value)


def _quiet(*_: object) -> None:
    """Print nothing (ranks other than 0 under torchrun)."""


def cmd_train(args: argparse.Namespace) -> None:
    """Train one CF model; print the split, the test metrics and where files went."""
    from agents.cf.train import check_overrides, load_cf_data, run
    from recgym.core.distributed import is_main_process
    from recgym.data.cf import LIANG_SEED

    overrides = dict(args.overrides)
    check_overrides(args.model, overrides)
    split_seed = LIANG_SEED if args.split_seed is None else args.split_seed
    data = load_cf_data(args.data, seed=split_seed, heldout=args.heldout, data_root=args.root)
    report = print if is_main_process() else _quiet
    report(f"{data.name}\n{data.summary}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = run(args.model, data, seed=args.seed, out_dir=out, resume=args.resume,
                 progress=not args.no_progress, overrides=overrides)
    for name, value in record["test"].items():
        report(f"test {name}: {value['mean']:.4f} ± {value['sem']:.4f} ({value['users']} users)")
    stem = f"{args.model}-{data.name}-seed{args.seed}"
    report(f"train {record['train_seconds']:.1f}s; wrote {out / stem}.pt/.json"
           + ("/.png" if record["history"] else ""))


def add_train_commands(subparsers: Any) -> None:
    """Add ``train MODEL --data ...`` to the ``recgym`` parser."""
    command = subparsers.add_parser(
        "train", help="train a collaborative-filtering model (Mult-VAE/DAE, RaCT, CF-SFL, ...)",
        description="Train a CF model on a MovieLens-style dataset (Liang et al. "
                    "preprocessing, strong generalisation), evaluate Recall@20/50 and "
                    "NDCG@100 on the test users, and write a checkpoint, a learning curve "
                    "and a JSON record to --out.")
    command.add_argument("model", choices=CF_MODELS)
    command.add_argument("--data", required=True,
                         help="ml-latest-small (shipped), ml-100k, ml-1m, ml-20m, ml-1m-lcf, "
                              "a folder, or planted-<users>x<items>[-s<seed>] (a synthetic "
                              "matrix with planted preferences)")
    command.add_argument("--root", "--data-root", dest="root", default=None, metavar="DIR",
                         help="folder holding the datasets (default: $RECGYM_DATA, else "
                              "~/.cache/recgym/data)")
    command.add_argument("--heldout", type=heldout_users, default=0.1,
                         help="validation (= test) users: a fraction (< 1) or a count "
                              "(default 0.1)")
    command.add_argument("--split-seed", type=int, default=None,
                         help="seed of the user split (default: 98765, Liang et al.'s)")
    command.add_argument("--seed", type=int, default=0, help="model seed")
    command.add_argument("--set", dest="overrides", action="append", default=[],
                         type=key_value, metavar="KEY=VALUE",
                         help="config option, e.g. --set steps=6 --set actor_epochs=75 "
                              "(repeatable)")
    command.add_argument("--out", default="runs/cf", help="output folder (default runs/cf)")
    command.add_argument("--resume", action="store_true",
                         help="continue from the checkpoint in --out")
    command.add_argument("--no-progress", action="store_true", help="hide progress bars")
    command.set_defaults(func=cmd_train)

"""``recgym train {mult-vae,mult-dae,ract,cf-sfl,ease,popularity} --data NAME_OR_PATH``.

`add_train_commands` adds the ``train`` command to the ``recgym`` argument parser; the
heavy imports (torch models, data) happen only when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

CF_MODELS = ("mult-vae", "mult-dae", "ract", "cf-sfl", "ease", "popularity")


def add_train_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``train MODEL --data ...`` to an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "train", help="train a collaborative-filtering model (Mult-VAE/DAE, RaCT, CF-SFL, ...)",
        description="Train a CF model on a MovieLens-style dataset (Liang et al. "
                    "preprocessing, strong generalisation), evaluate Recall@20/50 and "
                    "NDCG@100 on the test users, and write a checkpoint, a learning curve "
                    "and a JSON record to --out.")
    p.add_argument("model", choices=CF_MODELS)
    p.add_argument("--data", required=True,
                   help="ml-latest-small, ml-100k, ml-1m, ml-20m, ml-1m-lcf, or a folder")
    p.add_argument("--data-root", default=None,
                   help="folder holding the datasets (default: recgym's, then ../shared/data)")
    p.add_argument("--heldout", type=float, default=0.1,
                   help="validation (= test) users: a fraction (< 1) or a count (default 0.1)")
    p.add_argument("--split-seed", type=int, default=None,
                   help="seed of the user split (default: 98765, Liang et al.'s)")
    p.add_argument("--seed", type=int, default=0, help="model seed")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config option, e.g. --set steps=6 --set actor_epochs=75 (repeatable)")
    p.add_argument("--out", default="runs/cf", help="output folder (default runs/cf)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run_train_command)
    return p


def _quiet(*_: object) -> None:
    """Print nothing (ranks other than 0 under torchrun)."""


def run_train_command(args: argparse.Namespace) -> int:
    """Run ``recgym train``; prints the split, the test metrics and where files went."""
    from agents.cf.train import load_cf_data, parse_overrides, run
    from recgym.data.cf import LIANG_SEED
    from recgym.integrations.distributed import is_main_process

    try:
        overrides = parse_overrides(args.overrides)
        heldout: int | float = args.heldout if args.heldout < 1 else int(args.heldout)
        split_seed = LIANG_SEED if args.split_seed is None else args.split_seed
        data = load_cf_data(args.data, seed=split_seed, heldout=heldout,
                            data_root=args.data_root)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"recgym train: {err}") from None
    report = print if is_main_process() else _quiet
    report(f"{data.name}\n{data.summary}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        record = run(args.model, data, seed=args.seed, out_dir=out, resume=args.resume,
                     progress=not args.no_progress, overrides=overrides)
    except ValueError as err:
        raise SystemExit(f"recgym train: {err}") from None
    for name, value in record["test"].items():
        report(f"test {name}: {value['mean']:.4f} ± {value['sem']:.4f} ({value['users']} users)")
    stem = f"{args.model}-{data.name}-seed{args.seed}"
    report(f"train {record['train_seconds']:.1f}s; wrote {out / stem}.pt/.json"
          + ("/.png" if record["history"] else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m agents.cf.cli train ract --data ...``."""
    parser = argparse.ArgumentParser(prog="recgym")
    add_train_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())

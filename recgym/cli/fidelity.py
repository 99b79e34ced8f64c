"""``recgym fidelity``: fit a simulator kind on logs of a known world and score it.

```
recgym fidelity --world synthetic-mdp --logging mix --sessions 10000 --simulator irecgan \
    --out-dir runs/fidelity
```

Prints the per-policy table (true vs simulated value) and the summary metrics, and
writes them as Markdown and CSV with the plot into ``--out-dir``. ``--simulator`` may also
be a fitted checkpoint (``recgym fit irecgan-user`` output, e.g. the shipped
``IRecGAN-v0`` user, or ``recgym fit choice-continuation`` output): it is scored as it is,
against fresh held-out sessions.

The expensive parts (the logs, the fit, each policy's roll-outs, PPO) are saved as they
finish into ``OUT_DIR/STEM.progress/``; a killed run continues with ``--resume`` and
writes the table an uninterrupted run would have (bit-identical numbers).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recgym.cli.arguments import key_value, positive_int
from recgym.cli.resume import add_resume_options, continues_interrupted_run, run_arguments

# command-line world names -> recgym.fidelity.WORLDS (a test keeps them equal); the kinds
# are recgym.fidelity.KINDS, both known here without importing torch
WORLDS = {"synthetic-mdp": "default", "synthetic-mdp-large": "large",
          "synthetic-mdp-decoupled": "decoupled", "synthetic-mdp-clickbait": "clickbait"}
KINDS = ("irecgan", "count", "count-privileged", "item-rate", "logistic",
         "choice-continuation", "gan-user-pw", "gan-user-lstm", "recsimu")
LOGGING = ("random", "max", "mix")
CHECKPOINT_KINDS = ("irecgan-user", "choice-continuation")
"""Checkpoint kinds ``--simulator FILE.pt`` scores (the users they rebuild read clicks)."""


def simulator_argument(value: str) -> str:
    """A kind name or an existing ``.pt`` checkpoint file."""
    if value in KINDS:
        return value
    if value.endswith(".pt"):
        if not Path(value).is_file():
            raise argparse.ArgumentTypeError(f"checkpoint {value} does not exist")
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is neither a simulator kind {KINDS} nor a "
                                     "checkpoint file (.pt)")


def fitted_simulator(path: str, world: Any) -> Any:
    """The users of a fitted checkpoint, sized for ``world`` (refuses other kinds)."""
    from recgym.core.checkpoint import read_checkpoint_file
    from recgym.fidelity.kinds import IRecGANKindUsers
    from recgym.simulators.choice_continuation import ChoiceContinuationUsers

    kind = read_checkpoint_file(path).get("kind")
    if kind not in CHECKPOINT_KINDS:
        raise ValueError(f"--simulator {path} holds a {kind!r} checkpoint; fidelity scores "
                         f"{list(CHECKPOINT_KINDS)} checkpoints or fits a kind {KINDS}")
    if kind == "choice-continuation":
        return ChoiceContinuationUsers.from_checkpoint(path)
    return IRecGANKindUsers.from_checkpoint(path, slate_size=world.slate_size,
                                            history_length=world.history_length)


class SavedParts:
    """The ``parts`` of :func:`recgym.fidelity.score` that save each part as it finishes.

    Part ``name`` is pickled into ``folder`` (atomically) with the state of the global
    torch, NumPy and Python generators after it; a part found there is loaded instead of
    run and the generators are set to that state, so what follows runs as if the part
    had just been computed. The run's arguments are saved with the first part.
    """

    def __init__(self, folder: Path, run: dict[str, Any]) -> None:
        self.folder, self.run = folder, run
        self.loaded: list[str] = []

    def __call__(self, name: str, function: Callable[..., Any], *args: Any,
                 **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``, saved as ``name``; or what was saved as ``name``."""
        import pickle
        import random

        import numpy as np
        import torch

        from recgym.data import atomic_write, save_progress

        path = self.folder / f"{re.sub(r'[^A-Za-z0-9.-]+', '_', name)}.pkl"
        if path.exists():  # written by this command (see --resume)
            value, generators = pickle.loads(path.read_bytes())
            torch.set_rng_state(generators["torch"])
            np.random.set_state(generators["numpy"])
            random.setstate(generators["python"])
            self.loaded.append(name)
            return value
        value = function(*args, **kwargs)
        generators = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                      "python": random.getstate()}
        if not (self.folder / "run.json").exists():
            save_progress(self.folder / "run.json", self.run)
        with atomic_write(path, suffix=".pkl") as temporary:
            temporary.write_bytes(pickle.dumps((value, generators)))
        return value


def result_stem(args: argparse.Namespace) -> str:
    """The file name (no suffix) of the results of ``args`` in ``--out-dir``."""
    simulator = Path(args.simulator).stem if args.simulator.endswith(".pt") else args.simulator
    return f"fidelity_{args.world}_{args.logging if args.logs is None else 'logs'}_{simulator}"


def progress_folder(args: argparse.Namespace) -> Path:
    """Where ``recgym fidelity`` keeps the finished parts of a run until it ends."""
    return Path(args.out_dir) / f"{result_stem(args)}.progress"


def cmd_fidelity(args: argparse.Namespace) -> None:
    """Generate (or load) logs, fit the kind, score it, print and write the results.

    Each expensive part is saved as it finishes (:class:`SavedParts`) into the progress
    folder, removed once the results are written; ``--resume`` continues a killed run.
    """
    import shutil

    import torch

    from recgym.data import atomic_write, load_progress
    from recgym.fidelity import held_out_logs, make_logs, make_world, score

    torch.set_num_threads(args.threads)
    world = make_world(WORLDS[args.world], seed=args.world_seed)
    fitted = args.simulator.endswith(".pt")
    if fitted and args.ensemble:
        raise ValueError("--ensemble refits a kind; a checkpoint is scored as it is: drop "
                         "--ensemble or pass a kind name")
    folder = progress_folder(args)
    run = run_arguments(args, "world", "world_seed", "logging", "sessions", "logs",
                        "held_out", "simulator", "set", "eval_sessions", "ppo_timesteps",
                        "ensemble", "seed", "threads")
    if continues_interrupted_run(folder, args):
        load_progress(folder / "run.json", run)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    parts = SavedParts(folder, run)
    simulator = fitted_simulator(args.simulator, world) if fitted else args.simulator
    if args.logs is not None:
        from recgym.data import LogDataset

        logs = LogDataset.load(args.logs).logs
        held = parts("held-out-logs", held_out_logs, world, args.logging,
                     args.held_out) if fitted else None
    else:
        print(f"generating {args.sessions:,} {args.logging} sessions of {args.world}",
              flush=True)
        logs = parts("logs", make_logs, world, args.logging, args.sessions, seed=args.seed)
        held = parts("held-out-logs", held_out_logs, world, args.logging, args.held_out)
    report = score(simulator, world=world, logs=logs, held_out=held,
                   n_sessions=args.eval_sessions, seed=args.seed,
                   ppo_timesteps=args.ppo_timesteps, kind_options=dict(args.set),
                   ensemble=args.ensemble, progress=True, parts=parts)
    if parts.loaded:
        report.notes.append(f"resumed: {len(parts.loaded)} parts ({', '.join(parts.loaded)}) "
                            "were loaded from the interrupted run; their times are those "
                            "of loading")
    text = report.to_markdown()
    print(text)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = result_stem(args)
    with atomic_write(out / f"{stem}.md") as temporary:
        temporary.write_text(text)
    with atomic_write(out / f"{stem}.csv") as temporary:
        temporary.write_text(report.table.to_csv(index=False))
    with atomic_write(out / f"{stem}_summary.csv") as temporary:
        temporary.write_text(report.summary.to_csv(index=False))
    report.plot(out / f"{stem}.png")
    if folder.exists():
        shutil.rmtree(folder)
    print(f"wrote {out / stem}.md, .csv, _summary.csv and .png")


def add_fidelity_commands(subparsers: Any) -> None:
    """Add the ``fidelity`` command to the ``recgym`` parser."""
    command = subparsers.add_parser(
        "fidelity", help="score a simulator kind against a world with a known truth",
        description="Fit a simulator kind on logs of a synthetic world, roll a policy set "
        "out in the world and in the simulator, and report whether the simulator ranks "
        "and values the policies as the world does (docs/fidelity.md). The expensive "
        "parts are saved as they finish (pickles: --resume only runs of your own); "
        "--resume continues a killed run to the table an uninterrupted run writes.")
    command.add_argument("--world", choices=tuple(WORLDS), default="synthetic-mdp",
                         help="the reference world (default: the paper's m=10, n=50, k=10)")
    command.add_argument("--world-seed", type=int, default=0, help="seed of its tables")
    command.add_argument("--logging", choices=LOGGING, default="mix",
                         help="logging policy of the generated logs")
    command.add_argument("--sessions", type=positive_int, default=10_000,
                         help="logged sessions to fit on")
    command.add_argument("--logs", default=None,
                         help="fit on this log file of the world instead (Parquet / CSV); "
                              "with a checkpoint: the logs it was fitted on (their support)")
    command.add_argument("--held-out", type=positive_int, default=2000,
                         help="fresh sessions of --logging for calibration and likelihood")
    command.add_argument("--simulator", type=simulator_argument, default="irecgan",
                         metavar="{" + ",".join(KINDS) + "} or FILE.pt",
                         help="simulator kind to fit, or a fitted checkpoint to score "
                              f"(kinds {list(CHECKPOINT_KINDS)})")
    command.add_argument("--set", type=key_value, action="append", default=[],
                         metavar="KEY=VALUE",
                         help="option of the kind's fit, e.g. epochs=2 (repeatable)")
    command.add_argument("--eval-sessions", type=positive_int, default=2000,
                         help="roll-outs per policy in the world and in the simulator")
    command.add_argument("--ppo-timesteps", type=int, default=0,
                         help="PPO steps in the world and in the simulator, for transfer "
                              "(0: skip; ~120000 is about 2 minutes per PPO on one core)")
    command.add_argument("--ensemble", type=int, default=0,
                         help="refit the kind this many times on bootstrap resamples of the "
                              "sessions: per-policy ensemble interval and disagreement flag "
                              "(0: none; the benchmark uses 3-5)")
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--threads", type=positive_int, default=1, help="torch threads")
    command.add_argument("--out-dir", default="runs/fidelity", help="folder for the results")
    add_resume_options(command, "OUT_DIR/fidelity_..._KIND.progress/: the logs, the fit, "
                                "each policy's roll-outs and PPO as they finish")
    command.set_defaults(func=cmd_fidelity)

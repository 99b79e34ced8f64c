"""Score simulator kinds against a reference world: rank, value, regret, transfer, likelihood.

For each logging policy, log size and seed, logs of the world are generated, every kind
is fitted and scored by :func:`recgym.fidelity.score` (the same policy set, roll-outs on
the same user streams in the world and the simulator, PPO trained in each), and the
headline numbers are checked against the targets of ``docs/fidelity.md``.

    OMP_NUM_THREADS=1 python benchmarks/fidelity.py --world default --logging random mix \
        --sessions 10000 --kinds irecgan count count-privileged item-rate logistic --seeds 0

Writes ``benchmarks/results/fidelity_<world>.md`` (rewritten after every kind, so a long
run leaves its finished part), ``fidelity_<world>.runs.jsonl`` (one line per fit, rewritten
atomically after every fit; ``--append`` keeps the runs it held) and the plots
``fidelity_<world>_<logging>_<kind>.png`` (first seed).

While it runs, ``fidelity_<world>.progress.json`` keeps each finished (logging, kind, seed)
fit and ``fidelity_<world>.progress/`` the finished parts of the others (the world's PPO,
the logs, the fit, each policy's roll-outs: :func:`recgym.fidelity.score`'s ``parts``): a
killed run continues with ``--resume`` (same arguments, ``--append`` included) from there,
to the results it would have written; ``--overwrite`` starts afresh (with ``--append``,
from the runs the file held before the killed command); without either, the progress is
refused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path

import torch

from recgym.cli.arguments import key_value
from recgym.cli.fidelity import SavedParts
from recgym.cli.resume import add_resume_options, continues_interrupted_run, run_arguments
from recgym.data import atomic_write, load_progress, save_progress
from recgym.fidelity import (
    KINDS,
    WORLDS,
    FidelityReport,
    held_out_logs,
    make_logs,
    make_world,
    score,
    train_ppo,
)
from recgym.fidelity.score import markdown_table
from recgym.simulators.synthetic_mdp import LOGGING_POLICIES

# the shipped IRecGAN-v0 user's configuration (envs_data/irecgan-user-synthetic-mdp.md)
KIND_OPTIONS = {"irecgan": {"hidden_size": 256, "embedding_dim": 50, "num_layers": 2,
                            "epochs": 10, "batch_size": 64}}
TARGETS = {"kendall_tau": (">=", 0.8), "regret": ("<=", 0.05),
           "median_relative_error": ("<=", 0.15), "transfer": (">=", 0.8)}
HEADLINE = ("kendall_tau", "spearman", "median_relative_error", "regret")


def _meets(metric: str, value: float) -> bool:
    sign, bound = TARGETS[metric]
    return value >= bound if sign == ">=" else value <= bound


def _interval(row: dict | None) -> str:
    if row is None:
        return "-"
    return f"{row['value']:.2f} [{row['low']:.2f}, {row['high']:.2f}]"


def _headline(runs: list[dict]) -> str:
    """One row per (logging, kind, seed): headline metrics on the targets' subset."""
    lines = []
    for run in runs:
        subset = "deployable" if run["logging"] == "random" else "deployable-in-support"
        found = {(r["metric"], r["subset"]): r for r in run["summary"]}
        row = {"logging": run["logging"], "kind": run["kind"], "seed": run["seed"],
               "subset": subset}
        verdicts = []
        for metric in HEADLINE:
            entry = found.get((metric, subset))
            row[metric] = _interval(entry)
            if metric in TARGETS and entry is not None:
                verdicts.append(f"{metric}:{'yes' if _meets(metric, entry['value']) else 'no'}")
        row["tau world vs world"] = _interval(found.get(("kendall_tau", "world-vs-world")))
        transfer = found.get(("transfer", "ppo"))
        row["transfer"] = _interval(transfer)
        if transfer is not None:
            verdicts.append(f"transfer:{'yes' if _meets('transfer', transfer['value']) else 'no'}")
        errors = found.get(("confident_errors", "out-of-support"))
        row["out-of-support confident errors"] = (
            f"{int(errors['value'])} of {errors['n_policies']}" if errors else "-")
        status = {name: found.get((f"status_{name}", "deployable")) for name in
                  ("covered", "flagged", "within-tolerance", "confident-error")}
        row["deployable: covered / flagged / within 15% / confident error"] = (
            " / ".join(str(int(status[n]["value"])) for n in status)
            if all(status.values()) else "-")
        row["log-lik / page"] = _interval(found.get(("log_likelihood", "held-out")))
        row["ECE"] = _interval(found.get(("ece", "held-out")))
        row["targets met"] = ", ".join(verdicts)
        lines.append(row)
    import pandas as pd

    return markdown_table(pd.DataFrame(lines))


def _stored_report(run: dict) -> str:
    """The Markdown of a run read back from the ``.runs.jsonl`` file."""
    import pandas as pd

    report = FidelityReport(f"{run['kind']} on {run['logging']} logs, seed {run['seed']}",
                            pd.DataFrame(run["table"]), pd.DataFrame(run["summary"]),
                            pd.DataFrame(), run["timings"])
    return report.to_markdown() + f"\nTotal {run['seconds']:.0f} s.\n"


def _across_seeds(runs: list[dict]) -> str:
    """Mean over seeds (min - max) of the headline metrics, per logging policy and kind."""
    import pandas as pd

    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["logging"], run["kind"]), []).append(run)
    lines = []
    for (logging, kind), group in groups.items():
        subset = "deployable" if logging == "random" else "deployable-in-support"
        row = {"logging": logging, "kind": kind, "seeds": len(group)}
        for metric, wanted in [*((m, subset) for m in HEADLINE),
                               ("kendall_tau", "world-vs-world"), ("transfer", "ppo"),
                               ("log_likelihood", "held-out")]:
            values = [r["value"] for run in group for r in run["summary"]
                      if r["metric"] == metric and r["subset"] == wanted]
            name = metric if wanted != "world-vs-world" else "tau world vs world"
            row[name] = (f"{sum(values) / len(values):.2f} ({min(values):.2f} - "
                         f"{max(values):.2f})") if values else "-"
        lines.append(row)
    return markdown_table(pd.DataFrame(lines))


def _write(path: Path, args: argparse.Namespace, runs: list[dict], reports: list[str],
           extra: dict) -> None:
    machine = (f"{platform.platform()}, Python {platform.python_version()}, torch "
               f"{torch.__version__}, {os.cpu_count()} CPU cores, torch threads "
               f"{torch.get_num_threads()}; load average at start {extra['load_start']}, "
               f"now {tuple(round(x, 2) for x in os.getloadavg())} (other engineers' tests "
               "ran on the same 2 cores)")
    references = "\n".join(
        f"* {world_part}" for world_part in extra["references"]) or "* -"
    text = "\n".join([
        f"# Fidelity of simulator kinds on the `{args.world}` world",
        "",
        "Generated by `benchmarks/fidelity.py`; how to read it: `docs/fidelity.md`.",
        "",
        "```bash",
        extra["command"],
        "```",
        "",
        f"Machine: {machine}.",
        "",
        f"Roll-outs: {args.eval_sessions} sessions per policy in the world and in the "
        f"simulator (same user streams); PPO budget {args.ppo_timesteps} steps in each "
        f"(64 users x 32 steps per update); held-out: {args.held_out} fresh sessions of "
        "the same logging policy. Intervals: 95%.",
        "",
        "Reference (computed once):",
        "",
        references,
        "",
        "## Headline (targets: tau >= 0.8, regret <= 5%, median relative error <= 15%, "
        "transfer >= 80%; on mix logs over in-support policies)",
        "",
        _headline(runs) if runs else "(no run finished yet)",
        "",
        "Across seeds (log and fit seeds; mean, min - max):",
        "",
        _across_seeds(runs) if runs else "-",
        "",
        "## Per kind",
        "",
        *reports,
    ])
    with atomic_write(path) as temporary:
        temporary.write_text(text + "\n")


def _unit_folder(folder: Path, *names: object) -> Path:
    """Where the parts of one unit (seed; seed and logging; seed, logging and kind) go."""
    return folder / "_".join(str(name) for name in names)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (continuing a killed run with ``--resume``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", choices=WORLDS, default="default")
    parser.add_argument("--logging", nargs="+", choices=LOGGING_POLICIES,
                        default=["random", "mix"])
    parser.add_argument("--sessions", type=int, default=10_000, help="logged sessions")
    parser.add_argument("--kinds", nargs="+", choices=tuple(KINDS),
                        default=["irecgan", "count", "count-privileged", "item-rate",
                                 "logistic", "choice-continuation", "gan-user-pw",
                                 "gan-user-lstm", "recsimu"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--eval-sessions", type=int, default=2000)
    parser.add_argument("--held-out", type=int, default=2000)
    parser.add_argument("--ppo-timesteps", type=int, default=64 * 32 * 60,
                        help="PPO steps in the world and in each simulator (0: none)")
    parser.add_argument("--ensemble", type=int, default=5,
                        help="bootstrap refits per kind for intervals and disagreement "
                             "flags (0: none)")
    parser.add_argument("--set", type=key_value, action="append", default=[],
                        metavar="KEY=VALUE", dest="kind_options",
                        help="option of every listed kind's fit, over the defaults, e.g. "
                             "logging_model=true with --kinds choice-continuation (repeatable)")
    parser.add_argument("--out", default="benchmarks/results", help="results folder")
    parser.add_argument("--append", action="store_true",
                        help="keep the runs already in fidelity_<world>.runs.jsonl (e.g. "
                             "earlier seeds) and add these; a killed --append command "
                             "continues with --append --resume, keeping the runs the file "
                             "held when it started (without --append the file is started "
                             "afresh)")
    add_resume_options(parser, "OUT/fidelity_<world>.progress.json, the finished (logging, "
                               "kind, seed) fits, and OUT/fidelity_<world>.progress/, the "
                               "finished parts of the others (pickles: resume only runs of "
                               "your own)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"fidelity_{args.world}.md"
    runs_path = out / f"fidelity_{args.world}.runs.jsonl"
    progress = out / f"fidelity_{args.world}.progress.json"
    folder = out / f"fidelity_{args.world}.progress"
    settings = run_arguments(args, "world", "logging", "sessions", "kinds", "seeds",
                             "eval_sessions", "held_out", "ppo_timesteps", "ensemble",
                             "kind_options", "append")
    if continues_interrupted_run(progress, args):
        state = load_progress(progress, settings)  # refuses other arguments
        del state["run"]
        print(f"resuming: {len(state['runs'])} fits done", flush=True)
    else:
        earlier: list[dict] = []
        if args.append and progress.exists():  # --overwrite: the file before that command
            earlier = json.loads(progress.read_text())["earlier"]
        elif args.append and runs_path.exists():
            earlier = [json.loads(line) for line in runs_path.read_text().splitlines() if line]
        shutil.rmtree(folder, ignore_errors=True)
        command = [argument for argument in (sys.argv[1:] if argv is None else argv)
                   if argument not in ("--resume", "--overwrite")]
        state = {"earlier": earlier, "runs": [], "reports": [], "references": {},
                 "extra": {"command": "OMP_NUM_THREADS=1 python benchmarks/fidelity.py "
                                      + shlex.join(command),
                           "load_start": str(tuple(round(x, 2) for x in os.getloadavg()))}}
        if args.append and earlier:
            state["extra"]["command"] += ("\n# appended to the runs of earlier commands "
                                          "(see the table)")
    runs, references = state["runs"], state["references"]
    earlier_reports = [_stored_report(run) for run in state["earlier"]]

    def keep() -> None:
        """Save the progress, then the runs file, atomically: earlier runs + finished fits."""
        save_progress(progress, settings, **state)
        with atomic_write(runs_path) as temporary:
            temporary.write_text("".join(json.dumps(run) + "\n"
                                         for run in [*state["earlier"], *runs]))

    def write() -> None:
        extra = {**state["extra"], "references": list(references.values())}
        _write(path, args, [*state["earlier"], *runs], [*earlier_reports, *state["reports"]],
               extra)

    keep()
    done = {(run["logging"], run["kind"], run["seed"]) for run in runs}
    world = make_world(args.world)
    for seed in args.seeds:
        if all((logging, kind, seed) in done for logging in args.logging
               for kind in args.kinds):
            continue
        parts = SavedParts(_unit_folder(folder, seed), settings)
        started = time.perf_counter()
        world_ppo = parts("ppo-world", train_ppo, world, args.ppo_timesteps, seed=seed) \
            if args.ppo_timesteps > 0 else None
        references.setdefault(f"{seed}", f"seed {seed}: PPO in the world trained in "
                                         f"{time.perf_counter() - started:.0f} s"
                              + (" (loaded: resumed)" if parts.loaded else ""))
        for logging in args.logging:
            if all((logging, kind, seed) in done for kind in args.kinds):
                continue
            parts = SavedParts(_unit_folder(folder, seed, logging), settings)
            started = time.perf_counter()
            logs = parts("logs", make_logs, world, logging, args.sessions, seed=seed * 100_000)
            held = parts("held-out-logs", held_out_logs, world, logging, args.held_out)
            references.setdefault(
                f"{seed} {logging}",
                f"seed {seed}, {logging}: {len(logs):,} logged page views, {len(held):,} "
                f"held-out, made in {time.perf_counter() - started:.1f} s"
                + (" (loaded: resumed)" if parts.loaded else ""))
            for kind in args.kinds:
                if (logging, kind, seed) in done:
                    continue
                print(f"== {args.world} {logging} {kind} seed {seed}", flush=True)
                unit = _unit_folder(folder, seed, logging, kind)
                parts = SavedParts(unit, settings)
                started = time.perf_counter()
                report = score(kind, world=world, logs=logs, held_out=held,
                               n_sessions=args.eval_sessions, seed=seed,
                               ppo_timesteps=args.ppo_timesteps, world_ppo=world_ppo,
                               kind_options={**KIND_OPTIONS.get(kind, {}),
                                             **dict(args.kind_options)},
                               ensemble=args.ensemble,
                               progress=True, parts=parts)
                seconds = time.perf_counter() - started
                if parts.loaded:
                    report.notes.append(
                        f"resumed: {len(parts.loaded)} parts ({', '.join(parts.loaded)}) were "
                        "loaded from the interrupted run; their times are those of loading")
                report.kind = f"{kind} on {logging} logs, seed {seed}"
                if seed == args.seeds[0]:
                    report.plot(out / f"fidelity_{args.world}_{logging}_{kind}.png")
                run = {"world": args.world, "logging": logging, "kind": kind, "seed": seed,
                       "sessions": args.sessions, "ensemble": args.ensemble,
                       "kind_options": dict(args.kind_options),
                       "seconds": seconds,
                       "timings": report.timings, "summary": report.summary.to_dict("records"),
                       "table": report.table.to_dict("records")}
                runs.append(json.loads(json.dumps(run, default=float)))
                state["reports"].append(report.to_markdown() + f"\nTotal {seconds:.0f} s.\n")
                keep()
                write()
                shutil.rmtree(unit, ignore_errors=True)
                print(report.to_markdown(), flush=True)
            shutil.rmtree(_unit_folder(folder, seed, logging), ignore_errors=True)
        shutil.rmtree(_unit_folder(folder, seed), ignore_errors=True)
    write()
    shutil.rmtree(folder, ignore_errors=True)
    progress.unlink()
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

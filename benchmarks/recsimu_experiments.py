r"""RecSimu's experiments on public data: Figures 6, 7, 8 and Table 1 analogues.

For each dataset and seed: item embeddings (skip-gram, shared by every model of that
seed), then F1 / AUC on each session's last tuple for the baselines (Random, LR, GRU,
GAN, GAN-s), RecSimu and its variants (RecSimu-1: K + 1 outputs; RecSimu-2: beta = 0;
RecSimu-3: no adversarial terms); optionally the sensitivity to N and lambda; and the
generator's MAP / NDCG@40 against popularity and a GRU4Rec-style next-item model.

    python benchmarks/recsimu_experiments.py --data ml-latest-small --seeds 0 1 2
    python benchmarks/recsimu_experiments.py --data ml-100k --root ../shared/data --seeds 0 1 2
    python benchmarks/recsimu_experiments.py --data diginetica \\
        --root ../shared/data/diginetica-cikm2016 --seeds 0 1 2

Results (mean +- std over seeds) go to benchmarks/results/recsimu_experiments_<data>.md.
Each finished seed's results are kept in ``OUT.progress.json`` (atomically; with ``--runs``
also appended there): a killed run continues with ``--resume`` (same arguments) from the
next seed, to the table it would have written; ``--overwrite`` starts afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import pandas as pd
import torch

from recgym.cli.resume import add_resume_options, continues_interrupted_run, run_arguments
from recgym.data import atomic_write, load_progress, save_progress
from recgym.simulators.recsimu.baselines import BASELINES, BaselineTraining, fit_baseline
from recgym.simulators.recsimu.data import (
    BrowsingSequences,
    TupleSplit,
    load_browsing_logs,
    make_tuples,
    split_last_tuples,
)
from recgym.simulators.recsimu.embeddings import train_item_embeddings
from recgym.simulators.recsimu.fit import RecSimuTraining, fit_recsimu
from recgym.simulators.recsimu.generator_eval import (
    generator_ranks,
    gru4rec_ranks,
    map_and_ndcg,
    popularity_ranks,
)
from recgym.simulators.recsimu.model import RecSimuConfig

VARIANTS = {
    "RecSimu": ({}, {}),
    "RecSimu-1": ({"per_feedback_fake": False}, {}),
    "RecSimu-2": ({}, {"beta": 0.0}),
    "RecSimu-3": ({}, {"adversarial": False}),
}


def _summary(values: list[float]) -> str:
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {spread:.4f}"


def _read_runs(path: str) -> list[dict]:
    file = Path(path)
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()] \
        if file.exists() else []


def _append_missing(path: str, entries: list[dict]) -> None:
    """Append to the runs file those of ``entries`` it lacks (a kill may come between saves)."""
    present = _read_runs(path)
    missing = [entry for entry in entries if entry not in present]
    if missing:  # one write, so parallel runs of other seeds can share the file
        with open(path, "a") as handle:
            handle.write("".join(json.dumps(entry) + "\n" for entry in missing))


@dataclass
class Experiment:
    """The data and budgets every seed of one dataset shares."""

    logs: pd.DataFrame
    num_items: int
    sequences: BrowsingSequences
    split: TupleSplit
    training: RecSimuTraining
    baseline_training: BaselineTraining
    command: str


def run_seed(args: argparse.Namespace, seed: int, experiment: Experiment) -> list[dict]:
    """Every experiment of one seed: one entry per (table, name) result."""
    sequences, split, num_items = experiment.sequences, experiment.split, experiment.num_items
    entries = []

    def record(table: str, name: str, metrics: dict[str, float]) -> None:
        entries.append({"table": table, "name": name, "seed": seed,
                        "command": experiment.command, **metrics})

    def fit(vectors, config_changes=None, training_changes=None):
        config = RecSimuConfig(num_items=num_items, num_feedback=sequences.num_feedback,
                               **{"state_length": args.state_length, **(config_changes or {})})
        return fit_recsimu(experiment.logs, config=config, item_vectors=vectors, progress=False,
                           training=replace(experiment.training, seed=seed,
                                            **(training_changes or {})))

    started = time.perf_counter()
    vectors = train_item_embeddings(sequences.sessions(), num_items,
                                    epochs=args.embedding_epochs, seed=seed)
    if not args.sensitivity_only:
        for name in BASELINES:
            metrics = fit_baseline(name, split, vectors, sequences.num_feedback,
                                   replace(experiment.baseline_training, seed=seed))
            record("feedback", name, {"f1": metrics.f1, "auc": metrics.auc})
        for name, (config_changes, training_changes) in VARIANTS.items():
            result = fit(vectors, config_changes, training_changes)
            record("feedback", name, {"f1": result.test.f1, "auc": result.test.auc})
            if name == "RecSimu":
                record("ranking", "RecSimu generator",
                       map_and_ndcg(generator_ranks(result.model, split.test)))
        record("ranking", "popularity",
               map_and_ndcg(popularity_ranks(split.train, split.test, num_items)))
        record("ranking", "GRU4Rec-style", map_and_ndcg(gru4rec_ranks(
            split.train, split.test, num_items, epochs=args.epochs, seed=seed)))
    for state_length in args.sensitivity_n:
        result = fit(vectors, {"state_length": state_length})
        record("sensitivity", f"N = {state_length}",
               {"f1": result.test.f1, "auc": result.test.auc})
    for lam in args.sensitivity_lambda:
        result = fit(vectors, training_changes={"lam": lam})
        record("sensitivity", f"lambda = {lam}", {"f1": result.test.f1, "auc": result.test.auc})
    print(f"seed {seed} done in {time.perf_counter() - started:.0f} s", flush=True)
    return entries


def run(args: argparse.Namespace, progress: Path, command: str) -> list[str]:
    """All experiments for one dataset, continuing the run saved in ``progress``.

    Returns the Markdown lines.
    """
    logs, num_items = load_browsing_logs(args.data, args.root)
    sequences = BrowsingSequences.from_logs(logs, num_items=num_items)
    training = RecSimuTraining(adversarial_epochs=args.epochs,
                               generator_pretrain_epochs=args.pretrain_epochs,
                               discriminator_pretrain_epochs=args.pretrain_epochs,
                               embedding_epochs=args.embedding_epochs)
    split = split_last_tuples(make_tuples(sequences, args.state_length))
    experiment = Experiment(logs, num_items, sequences, split, training,
                            BaselineTraining(epochs=args.epochs + args.pretrain_epochs),
                            command)
    if args.report:
        records = _read_runs(args.runs)
    else:
        settings = run_arguments(args, "data", "root", "seeds", "state_length", "epochs",
                                 "pretrain_epochs", "embedding_epochs", "sensitivity_n",
                                 "sensitivity_lambda", "sensitivity_only", "runs")
        seeds = load_progress(progress, settings)["seeds"] \
            if continues_interrupted_run(progress, args) else []
        for seed in args.seeds[len(seeds):]:
            seeds.append(run_seed(args, seed, experiment))
            save_progress(progress, settings, seeds=seeds)
            if args.runs:
                _append_missing(args.runs, seeds[-1])
        if args.runs:  # seeds saved by a run killed before it appended them
            _append_missing(args.runs, [entry for entries in seeds for entry in entries])
        records = _read_runs(args.runs) if args.runs else [
            entry for entries in seeds for entry in entries]

    tables: dict[str, dict[str, dict[str, list[float]]]] = {}
    for entry in records:
        metrics = {k: v for k, v in entry.items() if k not in ("table", "name", "seed", "command")}
        for key, value in metrics.items():
            tables.setdefault(entry["table"], {}).setdefault(entry["name"], {}).setdefault(
                key, []).append(value)
    commands = sorted({entry["command"] for entry in records})
    lines = [f"# RecSimu on {args.data}", "", "Commands:", "", "```", *commands, "```", "",
             f"({date.today().isoformat()}; {os.cpu_count()} cores, {platform.machine()}, torch "
             f"{torch.__version__}.) Seeds: {sorted({entry['seed'] for entry in records})}.", "",
             f"{len(split.train):,} training, {len(split.valid):,} validation and "
             f"{len(split.test):,} test tuples (test: each session's last tuple), N = "
             f"{args.state_length}, K = {sequences.num_feedback}; mean ± std over seeds.", ""]
    headings = {"feedback": ("Feedback prediction (Figures 6 and 7)", "model", ("f1", "auc")),
                "ranking": ("Generator against the logs (Table 1)", "recommender",
                            ("map", "ndcg@40")),
                "sensitivity": ("Sensitivity (Figure 8)", "setting", ("f1", "auc"))}
    for table, (heading, row, keys) in headings.items():
        if table not in tables:
            continue
        names = {"f1": "F1", "auc": "AUC", "map": "MAP", "ndcg@40": "NDCG@40"}
        lines += [f"## {heading}", "", f"| {row} | seeds | "
                  + " | ".join(names[k] for k in keys) + " |", "|---" * (len(keys) + 2) + "|"]
        lines += [f"| {name} | {len(m[keys[0]])} | " + " | ".join(_summary(m[k]) for k in keys)
                  + " |" for name, m in tables[table].items()]
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run, write the results table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ml-latest-small")
    parser.add_argument("--root")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--state-length", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10, help="adversarial epochs")
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--embedding-epochs", type=int, default=5)
    parser.add_argument("--sensitivity-n", type=int, nargs="*", default=[])
    parser.add_argument("--sensitivity-lambda", type=float, nargs="*", default=[])
    parser.add_argument("--sensitivity-only", action="store_true",
                        help="skip the baselines, variants and ranking (Figure 8 only)")
    parser.add_argument("--runs", help="JSON-lines file the results are appended to; the "
                        "table then covers every run in it (e.g. seeds run in parallel)")
    parser.add_argument("--report", action="store_true",
                        help="train nothing: write the table of the runs in --runs")
    parser.add_argument("--out", help="results file")
    add_resume_options(parser, "OUT.progress.json, one entry per finished seed")
    args = parser.parse_args(argv)
    name = args.data.replace("/", "_")
    out = Path(args.out or f"benchmarks/results/recsimu_experiments_{name}.md")
    progress = out.with_suffix(".progress.json")
    command = " ".join(["python benchmarks/recsimu_experiments.py", *(
        argument for argument in (sys.argv[1:] if argv is None else argv)
        if argument not in ("--resume", "--overwrite"))])
    lines = run(args, progress, command)
    with atomic_write(out) as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not args.report:
        progress.unlink()


if __name__ == "__main__":
    main()

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

Results (mean +- std over seeds) go to benchmarks/results/recsimu_<data>.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import torch

from recgym.data import atomic_write
from recgym.simulators.recsimu.baselines import BASELINES, BaselineTraining, fit_baseline
from recgym.simulators.recsimu.data import (
    BrowsingSequences,
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


def run(args: argparse.Namespace) -> list[str]:
    """All experiments for one dataset; returns the Markdown lines."""
    logs, num_items = load_browsing_logs(args.data, args.root)
    sequences = BrowsingSequences.from_logs(logs, num_items=num_items)
    training = RecSimuTraining(adversarial_epochs=args.epochs,
                               generator_pretrain_epochs=args.pretrain_epochs,
                               discriminator_pretrain_epochs=args.pretrain_epochs,
                               embedding_epochs=args.embedding_epochs)
    baseline_training = BaselineTraining(epochs=args.epochs + args.pretrain_epochs)
    feedback: dict[str, dict[str, list[float]]] = {}
    ranking: dict[str, dict[str, list[float]]] = {}
    sensitivity: dict[str, dict[str, list[float]]] = {}

    def record(table, name, metrics) -> None:
        for key, value in metrics.items():
            table.setdefault(name, {}).setdefault(key, []).append(value)

    for seed in args.seeds:
        started = time.perf_counter()
        split = split_last_tuples(make_tuples(sequences, args.state_length))
        vectors = train_item_embeddings(sequences.sessions(), num_items,
                                        epochs=args.embedding_epochs, seed=seed)
        for name in BASELINES:
            metrics = fit_baseline(name, split, vectors, sequences.num_feedback,
                                   replace(baseline_training, seed=seed))
            record(feedback, name, {"f1": metrics.f1, "auc": metrics.auc})
        full = None
        for name, (config_changes, training_changes) in VARIANTS.items():
            config = RecSimuConfig(num_items=num_items, num_feedback=sequences.num_feedback,
                                   state_length=args.state_length, **config_changes)
            fit = fit_recsimu(logs, config=config, item_vectors=vectors, progress=False,
                              training=replace(training, seed=seed, **training_changes))
            record(feedback, name, {"f1": fit.test.f1, "auc": fit.test.auc})
            full = fit if name == "RecSimu" else full
        record(ranking, "RecSimu generator", map_and_ndcg(generator_ranks(full.model,
                                                                          full.split.test)))
        record(ranking, "popularity", map_and_ndcg(popularity_ranks(full.split.train,
                                                                    full.split.test,
                                                                    num_items)))
        record(ranking, "GRU4Rec-style", map_and_ndcg(gru4rec_ranks(
            full.split.train, full.split.test, num_items, epochs=args.epochs, seed=seed)))
        for state_length in args.sensitivity_n:
            config = RecSimuConfig(num_items=num_items, num_feedback=sequences.num_feedback,
                                   state_length=state_length)
            fit = fit_recsimu(logs, config=config, item_vectors=vectors, progress=False,
                              training=replace(training, seed=seed))
            record(sensitivity, f"N = {state_length}", {"f1": fit.test.f1, "auc": fit.test.auc})
        for lam in args.sensitivity_lambda:
            config = RecSimuConfig(num_items=num_items, num_feedback=sequences.num_feedback,
                                   state_length=args.state_length)
            fit = fit_recsimu(logs, config=config, item_vectors=vectors, progress=False,
                              training=replace(training, seed=seed, lam=lam))
            record(sensitivity, f"lambda = {lam}", {"f1": fit.test.f1, "auc": fit.test.auc})
        print(f"seed {seed} done in {time.perf_counter() - started:.0f} s", flush=True)

    command = "python benchmarks/recsimu_experiments.py " + " ".join(sys.argv[1:])
    lines = [f"# RecSimu on {args.data}", "",
             f"Command: `{command}` ({date.today().isoformat()}; {os.cpu_count()} cores, "
             f"{platform.machine()}, torch {torch.__version__}).", "",
             f"{len(split.train):,} training, {len(split.valid):,} validation and "
             f"{len(split.test):,} test tuples (test: each session's last tuple), N = "
             f"{args.state_length}, K = {sequences.num_feedback}; mean ± std over seeds "
             f"{args.seeds}.", "",
             "## Feedback prediction (Figures 6 and 7)", "",
             "| model | F1 | AUC |", "|---|---|---|"]
    lines += [f"| {name} | {_summary(m['f1'])} | {_summary(m['auc'])} |"
              for name, m in feedback.items()]
    lines += ["", "## Generator against the logs (Table 1)", "",
              "| recommender | MAP | NDCG@40 |", "|---|---|---|"]
    lines += [f"| {name} | {_summary(m['map'])} | {_summary(m['ndcg@40'])} |"
              for name, m in ranking.items()]
    if sensitivity:
        lines += ["", "## Sensitivity (Figure 8)", "", "| setting | F1 | AUC |", "|---|---|---|"]
        lines += [f"| {name} | {_summary(m['f1'])} | {_summary(m['auc'])} |"
                  for name, m in sensitivity.items()]
    return lines


def main() -> None:
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
    parser.add_argument("--out", help="results file")
    args = parser.parse_args()
    lines = run(args)
    out = Path(args.out or f"benchmarks/results/recsimu_{args.data.replace('/', '_')}.md")
    with atomic_write(out) as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

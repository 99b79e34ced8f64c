"""Prec@1 / Prec@2 of the GAN user model and reference click models (Chen et al. 2019, Table 1).

Page views with the paper's display sets: MovieLens (the rated movie and 39 movies
released near the time of the rating) or a session log (YooChoose / DIGINETICA: the
clicked item and the 9 items other sessions clicked nearest in time). Users (sessions for
session logs) split 50 / 12.5 / 37.5% per seed. Item features, the same for every model:
genre flags (MovieLens; no release year, which leaks how the display sets are built;
with --cooccurrence also the co-occurrence embeddings below) or
co-occurrence embeddings of the training clicks (session logs, which have no item
features), plus the log click count among training page views. GAN-PW and GAN-LSTM are
fitted with the Shannon entropy (maximum likelihood) and then with the L2 regulariser
(the mini-max game of eq. 5 started from that entropy solution). Mean and standard
deviation over seeds.

    python benchmarks/gan_user_fidelity.py --data ml-latest-small --seeds 0 1 2
    python benchmarks/gan_user_fidelity.py --data ml-latest-small --cooccurrence
    python benchmarks/gan_user_fidelity.py --data ml-100k --root ../shared/data --seeds 0 1 2
    python benchmarks/gan_user_fidelity.py --data yoochoose \
        --root ../shared/data/yoochoose-clicks-100k --seeds 0 1 2

Each finished seed is kept in ``OUT.progress.json`` (atomically): a killed run continues
with ``--resume`` (same arguments) from the next seed, to the table it would have written;
``--overwrite`` starts afresh.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from recgym.cli.resume import add_resume_options, continues_interrupted_run, run_arguments
from recgym.data import atomic_write, gan_user_model_split, load_progress, save_progress
from recgym.simulators.gan_user.baselines import BASELINE_NAMES, BASELINES, baseline_precision
from recgym.simulators.gan_user.fit import (
    GANUserTraining,
    PageViews,
    default_features,
    fit_gan_user,
    page_view_dataset,
)
from recgym.simulators.gan_user.model import GANUserConfig

# Chen et al. (2019), Table 1, Prec@1 / Prec@2 in %: (mean, std) pairs.
PAPER = {
    "MovieLens": {"IKNN": ((38.8, 1.9), (40.3, 1.9)), "W&D-LR": ((61.5, 0.7), (73.8, 1.2)),
                  "GAN-PW": ((66.6, 0.7), (75.4, 1.3)), "GAN-LSTM": ((67.4, 0.5), (76.3, 1.2))},
    "YooChoose": {"IKNN": ((39.3, 1.5), (69.8, 2.1)), "W&D-LR": ((51.9, 0.8), (75.8, 1.5)),
                  "GAN-PW": ((52.9, 0.7), (75.7, 1.4)), "GAN-LSTM": ((52.7, 0.3), (75.9, 1.2))},
}


def main(argv: list[str] | None = None) -> None:
    """Run every model on every seed and write the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ml-latest-small",
                        help="MovieLens name, yoochoose, diginetica, or a log file")
    parser.add_argument("--root", help="folder holding the dataset")
    parser.add_argument("--max-sessions", type=int, help="random subset of a session log")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30, help="entropy (maximum likelihood)")
    parser.add_argument("--adversarial-epochs", type=int, default=10, help="L2 game")
    parser.add_argument("--hidden", type=int, default=64, help="reward network width")
    parser.add_argument("--cooccurrence", action="store_true",
                        help="MovieLens: append co-occurrence embeddings to the genre flags")
    parser.add_argument("--out")
    add_resume_options(parser, "OUT.progress.json, one entry per finished seed")
    args = parser.parse_args(argv)
    suffix = "_cooccurrence" if args.cooccurrence else ""
    out = Path(args.out or f"benchmarks/results/gan_user_fidelity_{args.data}{suffix}.md")
    progress = out.with_suffix(".progress.json")
    settings = run_arguments(args, "data", "root", "max_sessions", "seeds", "epochs",
                             "adversarial_epochs", "hidden", "cooccurrence")
    runs = load_progress(progress, settings)["runs"] \
        if continues_interrupted_run(progress, args) else []
    command = " ".join(["python benchmarks/gan_user_fidelity.py", *(
        argument for argument in (sys.argv[1:] if argv is None else argv)
        if argument not in ("--resume", "--overwrite"))])
    for seed in args.seeds[len(runs):]:
        runs.append(run_seed(args, seed))
        save_progress(progress, settings, runs=runs)
        write_table(args, runs, out, command)
    progress.unlink()


def run_seed(args: argparse.Namespace, seed: int) -> dict:
    """Fit and test every model on one seed's split.

    Returns ``{"results": {model: [Prec@1, Prec@2]}, "size": [...], "seconds": s}``, the
    size being the page views, train / valid / test page views, users and display set.
    """
    started = time.time()
    dataset = page_view_dataset(args.data, root=args.root, seed=seed,
                                max_sessions=args.max_sessions)
    split = gan_user_model_split(dataset.logs, seed=seed)
    train, valid, test = (PageViews.from_logs(part, history=10)
                          for part in (split.train, split.val, split.test))
    size = [len(dataset.logs), len(train), len(valid), len(test),
            len(np.unique(dataset.logs["user_id"])), train.display.shape[1]]
    features = default_features(dataset, train, cooccurrence=args.cooccurrence)
    results = {}
    for state in ("pw", "lstm"):
        config = GANUserConfig(feature_dim=features.shape[1], state=state, hidden=args.hidden)
        training = GANUserTraining(epochs=args.epochs, seed=seed, regularizer="l2",
                                   adversarial_epochs=args.adversarial_epochs)
        entropy = fit_gan_user(train, valid, features, config=config, test=test,
                               training=GANUserTraining(epochs=args.epochs, seed=seed),
                               progress=False)
        l2 = fit_gan_user(train, valid, features, initial=entropy.model, test=test,
                          training=training, progress=False)
        results[f"GAN-{state.upper()} (entropy)"] = entropy.test_precision
        results[f"GAN-{state.upper()} (L2, from entropy)"] = l2.test_precision
        print(f"seed {seed} GAN-{state.upper()}: entropy {entropy.test_precision} after "
              f"{sum(h['phase'] == 'entropy' for h in entropy.history)} epochs; L2 "
              f"{l2.test_precision}", flush=True)
    for name in BASELINES:
        results[BASELINE_NAMES[name]] = baseline_precision(name, train, test, features,
                                                           seed=seed)
    print(f"seed {seed} done ({time.time() - started:.0f} s)", flush=True)
    return {"results": {name: [float(precision[1]), float(precision[2])]
                        for name, precision in results.items()},
            "size": size, "seconds": time.time() - started}


def write_table(args: argparse.Namespace, runs: list[dict], out: Path, command: str) -> None:
    """Write (and print) the table of the seeds done so far, with the paper's numbers."""

    def cell(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{100 * statistics.fmean(values):.1f} ± {100 * spread:.1f}"

    seeds = args.seeds[:len(runs)]
    events, n_train, n_valid, n_test, users, shown = runs[0]["size"]
    minutes = sum(run["seconds"] for run in runs) / 60
    lines = [f"# GAN user model fidelity on {args.data}", "",
             f"Command: `{command}` ({date.today().isoformat()}, {minutes:.0f} min on a shared "
             f"2-core CPU); seeds {seeds}; Prec@k in %, mean ± std over seeds.", "",
             f"Data (seed {seeds[0]}): {events:,} page views of {users:,} users "
             f"(sessions for session logs), {shown} items per display set; train / valid / "
             f"test {n_train:,} / {n_valid:,} / {n_test:,} page views. Chance: Prec@1 "
             f"{100 / shown:.1f}, Prec@2 {200 / shown:.1f}.", "",
             "| model | Prec@1 | Prec@2 |", "|---|---|---|"]
    lines += [f"| {name} | {cell([run['results'][name][0] for run in runs])} | "
              f"{cell([run['results'][name][1] for run in runs])} |"
              for name in runs[0]["results"]]
    paper = "YooChoose" if args.data == "yoochoose" else (
        "MovieLens" if args.data.startswith("ml-") else None)
    if paper is not None:
        lines += ["", f"Chen et al. (2019), Table 1, {paper} (their features and data; not "
                      "directly comparable):", "", "| model | Prec@1 | Prec@2 |", "|---|---|---|"]
        lines += [f"| {name} | {p1[0]} ± {p1[1]} | {p2[0]} ± {p2[1]} |"
                  for name, (p1, p2) in PAPER[paper].items()]
    with atomic_write(out) as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()

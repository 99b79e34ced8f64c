"""Prec@1 / Prec@2 of the GAN user model and reference click models (Chen et al. 2019, Table 1).

MovieLens page views with the paper's display sets (the rated movie and 39 movies
released near the time of the rating), users split 50 / 12.5 / 37.5% per seed; item
features: genre flags and the log click count among training page views (the same for
every model). Mean and standard deviation over seeds.

    python benchmarks/gan_user_fidelity.py --data ml-latest-small --seeds 0 1 2
    python benchmarks/gan_user_fidelity.py --data ml-100k --root ../shared/data --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import date
from pathlib import Path

import torch

from recgym.data import atomic_write, gan_user_model_split, load_movielens, movielens_to_logs
from recgym.simulators.gan_user.baselines import BASELINES, baseline_precision
from recgym.simulators.gan_user.fit import (
    GANUserTraining,
    PageViews,
    fit_gan_user,
    item_features,
    with_popularity,
)
from recgym.simulators.gan_user.model import GANUserConfig


def main() -> None:
    """Run every model on every seed and write the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ml-latest-small")
    parser.add_argument("--root")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out")
    args = parser.parse_args()
    movielens = load_movielens(args.data, root=args.root)
    results: dict[str, list[dict[int, float]]] = {}
    for seed in args.seeds:
        logs = movielens_to_logs(movielens, seed=seed).logs
        split = gan_user_model_split(logs, seed=seed)
        train, valid, test = (PageViews.from_logs(part, history=10)
                              for part in (split.train, split.val, split.test))
        features = torch.from_numpy(with_popularity(item_features(movielens.items), train))
        for state in ("pw", "lstm"):
            config = GANUserConfig(feature_dim=features.shape[1], state=state, hidden=64)
            fit = fit_gan_user(train, valid, features, config=config, test=test,
                               training=GANUserTraining(epochs=args.epochs, seed=seed),
                               progress=False)
            results.setdefault(f"GAN-{state.upper()} (entropy)", []).append(
                fit.test_precision)
        for name in BASELINES:
            results.setdefault(name, []).append(baseline_precision(name, train, test, features,
                                                                   seed=seed))
        print(f"seed {seed} done", flush=True)

    def cell(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{100 * statistics.fmean(values):.1f} ± {100 * spread:.1f}"

    lines = [f"# GAN user model fidelity on {args.data}", "",
             f"Command: `python benchmarks/gan_user_fidelity.py {' '.join(sys.argv[1:])}` "
             f"({date.today().isoformat()}); seeds {args.seeds}; Prec@k in %, mean ± std.", "",
             "| model | Prec@1 | Prec@2 |", "|---|---|---|"]
    lines += [f"| {name} | {cell([r[1] for r in runs])} | {cell([r[2] for r in runs])} |"
              for name, runs in results.items()]
    out = Path(args.out or f"benchmarks/results/gan_user_fidelity_{args.data}.md")
    with atomic_write(out) as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

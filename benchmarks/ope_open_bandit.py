"""Open Bandit Dataset (small): the random policy's click rate from Thompson-sampling logs.

The uniform-random policy's click rate is estimated off-policy from the Bernoulli
Thompson sampling logs and compared with its on-policy rate in the random logs. This is
the evaluation-of-OPE experiment of the Open Bandit paper (Saito et al., 2020), on the
10,000-row samples shipped with obp: each row is one item shown at one of three positions;
the target is uniform over the campaign's items at that position
(``pi(a | x) = 1 / n_items``), the logged ``propensity`` is Thompson sampling's
probability of the shown item at its position, and the reward model conditions on the
position (``context_column="position"``). Writes ``benchmarks/results/ope_open_bandit.md``::

    nice -n 10 .venv/bin/python benchmarks/ope_open_bandit.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recgym.core import RandomPolicy
from recgym.data import load_open_bandit
from recgym.evaluation import ope

RESULTS = Path(__file__).parent / "results"
ESTIMATORS = ["dm", "ips", "snips", "dr", "switch-dr", "sim"]


def on_policy_rate(clicks: np.ndarray, n_bootstrap: int, alpha: float, seed: int
                   ) -> tuple[float, float, float]:
    """Mean click of the random logs with a percentile bootstrap interval."""
    rng = np.random.default_rng(seed)
    draws = [clicks[rng.integers(0, len(clicks), len(clicks))].mean()
             for _ in range(n_bootstrap)]
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return float(clicks.mean()), float(low), float(high)


def main() -> None:
    """Run the comparison for the three campaigns and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None,
                        help="OBD folder (default: the copy shipped in envs_data)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "ope_open_bandit.md"))
    args = parser.parse_args()
    started = time.perf_counter()
    rows = []
    for campaign in ("all", "men", "women"):
        random_logs = load_open_bandit(args.root, "random", campaign)
        bts = load_open_bandit(args.root, "bts", campaign)
        truth, low, high = on_policy_rate(random_logs.records["click"].to_numpy(float),
                                          args.bootstrap, 0.05, args.seed)
        logs = bts.to_logs()
        target = RandomPolicy(bts.num_items, 1, seed=args.seed)
        estimators = [ope.SimulatorRollout(n_sessions=20_000, n_refits=10)
                      if name == "sim" else name for name in ESTIMATORS]
        table = ope.evaluate(target, logs, estimators, context_column="position",
                             n_bootstrap=args.bootstrap, seed=args.seed)
        weights = 1.0 / bts.num_items / logs.logs["propensity"].to_numpy()
        rows.append(dict(campaign=campaign, estimator="on-policy (random logs)",
                         estimate=truth, ci_low=low, ci_high=high, rel_error=np.nan,
                         clicks=int(random_logs.records["click"].sum()),
                         rows=len(random_logs.records)))
        for row in table.itertuples(index=False):
            rows.append(dict(campaign=campaign, estimator=row.estimator, estimate=row.estimate,
                             ci_low=row.ci_low, ci_high=row.ci_high,
                             rel_error=abs(row.estimate - truth) / truth,
                             clicks=int(bts.records["click"].sum()), rows=len(logs)))
        print(campaign, f"max weight {weights.max():.1f}, mean weight {weights.mean():.3f}",
              flush=True)
        rows[-1]["note"] = (f"BTS weights: mean {weights.mean():.2f}, max {weights.max():.0f}, "
                            f"effective sample size {weights.sum() ** 2 / (weights ** 2).sum():.0f}"
                            f" of {len(weights)}")
    frame = pd.DataFrame(rows)
    write(frame, Path(args.out), time.perf_counter() - started, args)


def write(frame: pd.DataFrame, out: Path, seconds: float, args) -> None:
    """The markdown table."""
    lines = [
        "# Open Bandit Dataset (small): random policy's CTR from Thompson-sampling logs",
        "",
        f"Command: `nice -n 10 .venv/bin/python benchmarks/ope_open_bandit.py --bootstrap "
        f"{args.bootstrap} --seed {args.seed}` ({seconds:.0f} s, 2 shared CPU cores).",
        "",
        "Target: uniform over the campaign's items at the logged position. Truth: mean click "
        "of the 10,000-row random-policy sample (95% bootstrap interval). Estimates from the "
        "10,000-row BTS sample with 95% bootstrap intervals; reward model and count simulator "
        "condition on the position. Relative error |estimate - truth| / truth as in the Open "
        "Bandit paper.",
        "",
        "| campaign | estimator | estimate | 95% interval | rel. error | clicks / rows |",
        "|---|---|---:|---|---:|---|",
    ]
    for row in frame.itertuples(index=False):
        rel = "" if not np.isfinite(row.rel_error) else f"{row.rel_error:.2f}"
        lines.append(f"| {row.campaign} | {row.estimator} | {row.estimate:.5f} | "
                     f"[{row.ci_low:.5f}, {row.ci_high:.5f}] | {rel} | "
                     f"{row.clicks} / {row.rows} |")
    notes = frame.dropna(subset=["note"]) if "note" in frame else frame.iloc[:0]
    lines += [""] + [f"* {r.campaign}: {r.note}" for r in notes.itertuples(index=False)]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Policies trained on one GAN user model, tested on another (Chen et al. 2019, Table 3).

ml-latest-small page views with the paper's display sets (the rated movie and 39 movies
released near the time). Per seed the USERS are split into two disjoint halves; a GAN-PW
user model (Shannon entropy, i.e. maximum likelihood) is fitted on each half (80 / 20 of
its users for fitting / early stopping). Every policy is trained against the TRAIN model
(its display sets and start histories from the train half) and evaluated on the TEST
model (display sets and start histories from the test half): reward = cumulative reward
averaged over the horizon (10 steps) and then over users, CTR = clicks per step. Item
features (genre flags, with --cooccurrence also co-occurrence embeddings, and the log
click count; all from the train half's fitting page views) are shared.

Policies: GAN-CDQN, GAN-GDQN, GAN-RWD1 (agents.cascading_dqn), GAN-Greedy (top-k by the
train model's reward), W&D-LR (top-k by the logistic-regression click model fitted on the
train half's page views: W&D-LR without the deep part), DQN-Off (the cascade fitted on the
train half's logged page views alone, +-1 click reward), LinUCB with hybrid models
(agents.bandits, learning online on the train model), random; and, as a reference that
is no policy of the paper, the greedy policy of the TEST model itself ("oracle greedy").
W&D-CCF is not run (no context-aware CF model here). Policies with Algorithm 1's step
skip items the user already clicked. Figure 5: ``Q_j`` against ``Q_k`` of the CDQN
(k = 5) on its chosen slates.

    python benchmarks/gan_user_policies.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from agents.bandits import HybridLinUCB
from agents.cascading_dqn import (
    CascadingDQN,
    CascadingDQNConfig,
    CDQNTraining,
    GreedyPolicy,
    logged_transitions,
)
from recgym.core.batch import SimulationBatch
from recgym.core.policy import RandomPolicy
from recgym.data import (
    atomic_write,
    load_movielens,
    movielens_to_logs,
    save_figure,
    split_by_user,
)
from recgym.evaluation.rollout import evaluate_policy
from recgym.simulators.gan_user import GANUsers
from recgym.simulators.gan_user.baselines import LogisticClickModel
from recgym.simulators.gan_user.fit import (
    GANUserTraining,
    PageViews,
    default_features,
    fit_gan_user,
)
from recgym.simulators.gan_user.model import GANUserConfig, GANUserModel

HORIZON = 10
ORDER = ["GAN-CDQN", "GAN-GDQN", "GAN-RWD1", "GAN-Greedy", "W&D-LR", "DQN-Off",
         "LinUCB (hybrid)", "Random", "oracle greedy (test model)"]
PAPER = {  # Table 3 of the paper: (reward, ctr) for k = 3 and k = 5
    "W&D-LR": {3: (14.46, 0.46), 5: (15.18, 0.48)},
    "DQN-Off": {3: (20.31, 0.63), 5: (21.82, 0.67)},
    "GAN-Greedy": {3: (21.37, 0.67), 5: (22.97, 0.71)},
    "GAN-RWD1": {3: (22.17, 0.68), 5: (25.15, 0.78)},
    "GAN-GDQN": {3: (23.60, 0.72), 5: (23.19, 0.70)},
    "GAN-CDQN": {3: (24.05, 0.74), 5: (25.36, 0.77)},
}


def users_of(fit_model: GANUserModel, features: torch.Tensor, views: PageViews, k: int,
             seed: int) -> GANUsers:
    """An env simulator: a fitted model, display sets / start histories of 2000 of ``views``."""
    pick = torch.randperm(len(views), generator=torch.Generator().manual_seed(seed))[:2000]
    return GANUsers(fit_model, features, display_sets=views.display[pick],
                    start_histories=views.history[pick], slate_size=k)


def fit_half(logs, seed: int, features: torch.Tensor | None, dataset, args):
    """Fit a user model on one half's users (80% fit, 20% early stopping).

    Returns the model, the item features (made from this half's fitting page views when
    ``features`` is None) and all of the half's page views.
    """
    parts = split_by_user(logs, (0.8, 0.2, 0.0), seed=seed)
    fit_views, valid_views = (PageViews.from_logs(part, history=10)
                              for part in (parts.train, parts.val))
    if features is None:
        features = default_features(dataset, fit_views, cooccurrence=args.cooccurrence)
    config = GANUserConfig(feature_dim=features.shape[1], hidden=64)
    fit = fit_gan_user(fit_views, valid_views, features, config=config,
                       training=GANUserTraining(epochs=args.epochs, seed=seed), progress=False)
    return fit.model, features, PageViews.from_logs(logs, history=10)


def q_consistency(agent: CascadingDQN, users: GANUsers, n_users: int, seed: int) -> np.ndarray:
    """``Q_j(s, a*_{1:j})`` ``(N, k)`` along greedy roll-outs of the agent (Figure 5)."""
    batch = SimulationBatch(users, n_users, device="cpu")
    batch.seed(torch.arange(n_users) + seed)
    batch.reset()
    rows = []
    for _ in range(HORIZON):
        observation = batch.observe()
        slate, values = agent.q_values(observation)
        rows.append(values.numpy())
        batch.step(slate)
    return np.concatenate(rows)


def run_seed(args, seed: int, ml) -> dict:
    """Fit both user models, train every policy on the train one, test on the test one."""
    dataset = movielens_to_logs(ml, seed=seed)
    halves = split_by_user(dataset.logs, (0.5, 0.0, 0.5), seed=seed)
    train_model, features, train_views = fit_half(halves.train, seed, None, dataset, args)
    test_model, _, test_views = fit_half(halves.test, seed + 1000, features, dataset, args)
    d = features.shape[1]
    click_model = LogisticClickModel(d).fit(train_views, features, seed=seed)
    out: dict = {"seed": seed, "results": {}, "train_results": {}, "q": None, "seconds": {}}
    for k in args.ks:
        train_users = users_of(train_model, features, train_views, k, seed)
        test_users = users_of(test_model, features, test_views, k, seed)
        policies = {}
        for name, variant, reward in (("GAN-CDQN", "cascading", "learned"),
                                      ("GAN-GDQN", "additive", "learned"),
                                      ("GAN-RWD1", "cascading", "click")):
            start = time.time()
            agent = CascadingDQN(CascadingDQNConfig(feature_dim=d, slate_size=k,
                                                    variant=variant, reward=reward,
                                                    hidden=args.hidden), seed=seed)
            agent.fit(train_users, CDQNTraining(iterations=args.iterations,
                                                num_users=args.users, batch_size=args.users,
                                                warmup=4 * args.users, seed=seed))
            policies[name] = agent
            out["seconds"][f"{name} k={k}"] = time.time() - start
        policies["GAN-Greedy"] = GreedyPolicy(train_model, k)
        policies["W&D-LR"] = GreedyPolicy(click_model, k, name="W&D-LR")
        start = time.time()
        offline = CascadingDQN(CascadingDQNConfig(feature_dim=d, slate_size=k, reward="click",
                                                  hidden=args.hidden), seed=seed)
        offline.fit_offline(logged_transitions(train_views, features, k, seed=seed),
                            CDQNTraining(iterations=args.iterations, batch_size=args.users,
                                         seed=seed))
        policies["DQN-Off"] = offline
        out["seconds"][f"DQN-Off k={k}"] = time.time() - start
        start = time.time()
        linucb = HybridLinUCB(d, 10, k, alpha=args.alpha)
        linucb.fit(train_users, iterations=args.bandit_iterations, num_users=args.users,
                   horizon=HORIZON, seed=seed)
        policies["LinUCB (hybrid)"] = linucb
        out["seconds"][f"LinUCB k={k}"] = time.time() - start
        policies["Random"] = RandomPolicy(test_users.num_candidates, k, seed=seed)
        policies["oracle greedy (test model)"] = GreedyPolicy(test_model, k)
        for name, policy in policies.items():
            for key, users in (("results", test_users), ("train_results", train_users)):
                result = evaluate_policy(users, policy, args.sessions,
                                         seed=10_000 * (seed + 1), max_steps=HORIZON)
                out[key][f"{name}|{k}"] = (result.mean_return / HORIZON, result.ctr)
        if k == max(args.ks):
            out["q"] = q_consistency(policies["GAN-CDQN"], test_users, 256, seed).tolist()
        print(f"seed {seed} k={k}: " + ", ".join(
            f"{name} {out['results'][f'{name}|{k}'][0]:.3f}/{out['results'][f'{name}|{k}'][1]:.3f}"
            for name in policies), flush=True)
    return out


def render(runs: list[dict], command: str, out: Path, ks: list[int], sessions: int) -> None:
    """The Markdown table (mean ± std over seeds) and the Figure 5 scatter."""
    seeds = [run["seed"] for run in runs]

    def cell(values: list[float], digits: int) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.{digits}f} (±{spread:.{digits}f})"

    header = "| model | " + " | ".join(f"k={k} reward | k={k} CTR" for k in ks) + \
        " | paper " + " | paper ".join(f"k={k} reward / CTR" for k in ks) + " |"
    lines = ["# Recommendation policies on GAN user models (Table 3 analogue)", "",
             f"Command: `{command}` ({date.today().isoformat()}, 2 shared CPU cores); seeds "
             f"{seeds}. Train users and test users are disjoint halves of ml-latest-small; "
             "policies trained on the train user model, evaluated on the test user model "
             f"({sessions} 10-step test sessions per policy and seed). Reward: cumulative "
             "reward averaged over the 10-step horizon, then over sessions; mean (± std) "
             "over seeds. The paper's numbers are on its own data and user model: compare "
             "orderings, not values.", "", header,
             "|---|" + "---|" * (3 * len(ks))]
    for name in ORDER:
        cells = []
        for k in ks:
            rewards = [run["results"][f"{name}|{k}"][0] for run in runs]
            ctrs = [run["results"][f"{name}|{k}"][1] for run in runs]
            cells += [cell(rewards, 3), cell(ctrs, 4)]
        paper = [f"{PAPER[name][k][0]:.2f} / {PAPER[name][k][1]:.2f}" if name in PAPER
                 else "-" for k in ks]
        lines.append(f"| {name} | " + " | ".join(cells + paper) + " |")
    lines += ["", "Per seed (reward; CDQN - Greedy and CDQN - GDQN differences):", "",
              "| seed | k | " + " | ".join(ORDER) + " | CDQN-Greedy | CDQN-GDQN |",
              "|---|---|" + "---|" * (len(ORDER) + 2)]
    for run in runs:
        for k in ks:
            r = {name: run["results"][f"{name}|{k}"][0] for name in ORDER}
            lines.append(f"| {run['seed']} | {k} | " + " | ".join(f"{r[n]:.3f}" for n in ORDER)
                         + f" | {r['GAN-CDQN'] - r['GAN-Greedy']:+.3f} | "
                         f"{r['GAN-CDQN'] - r['GAN-GDQN']:+.3f} |")
    lines += ["", "The same policies on the TRAIN user model (the one the RL policies and LinUCB "
              "learned on; GAN-Greedy is its own greedy policy here), reward per step, mean "
              "(± std) over seeds, and the per-seed difference to GAN-Greedy:", "",
              "| model | " + " | ".join(f"k={k} reward | k={k} minus Greedy" for k in ks) + " |",
              "|---|" + "---|" * (2 * len(ks))]
    for name in ORDER:
        cells = []
        for k in ks:
            rewards = [run["train_results"][f"{name}|{k}"][0] for run in runs]
            gaps = [run["train_results"][f"{name}|{k}"][0]
                    - run["train_results"][f"GAN-Greedy|{k}"][0] for run in runs]
            cells += [cell(rewards, 3), cell(gaps, 3)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    q = np.concatenate([np.asarray(run["q"]) for run in runs if run["q"] is not None])
    k = q.shape[1]
    lines += ["", f"Figure 5 check (eq. 10), CDQN k={k} on the test model, greedy slates of "
              f"{len(q)} states: relative gap |Q_j - Q_k| / |Q_k| (mean) and correlation.", "",
              "| j | mean rel. gap | corr(Q_j, Q_k) |", "|---|---|---|"]
    for j in range(k - 1):
        gap = np.abs(q[:, j] - q[:, -1]) / np.abs(q[:, -1]).clip(1e-9)
        corr = np.corrcoef(q[:, j], q[:, -1])[0, 1]
        lines.append(f"| {j + 1} | {gap.mean():.4f} | {corr:.3f} |")
    seconds = {}
    for run in runs:
        for key, value in run["seconds"].items():
            seconds.setdefault(key, []).append(value)
    lines += ["", "Training time per run (s, mean over seeds, on a loaded machine): " + ", ".join(
        f"{key} {statistics.fmean(values):.0f}" for key, values in seconds.items()), ""]
    with atomic_write(out) as temporary:
        temporary.write_text("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, k - 1, figsize=(3.2 * (k - 1), 3.2), squeeze=False)
    low, high = float(q.min()), float(q.max())
    for j, axis in enumerate(axes[0]):
        axis.scatter(q[:, -1], q[:, j], s=2, alpha=0.3)
        axis.plot([low, high], [low, high], color="black", linewidth=0.8)
        axis.set_xlabel(f"Q_{k}")
        axis.set_ylabel(f"Q_{j + 1}")
        axis.set_title(f"Q_{j + 1} vs Q_{k}")
    save_figure(figure, out.with_suffix(".png"))
    print("\n".join(lines))


def main() -> None:
    """Run the seeds (or merge saved runs) and write the table and the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--ks", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--epochs", type=int, default=6, help="user-model epochs")
    parser.add_argument("--iterations", type=int, default=150, help="Q-learning env steps")
    parser.add_argument("--users", type=int, default=256, help="users simulated at once")
    parser.add_argument("--hidden", type=int, default=64, help="Q-network width l")
    parser.add_argument("--bandit-iterations", type=int, default=40)
    parser.add_argument("--alpha", type=float, default=0.5, help="LinUCB bound width")
    parser.add_argument("--cooccurrence", action="store_true",
                        help="append co-occurrence embeddings to the genre features")
    parser.add_argument("--sessions", type=int, default=2000, help="test sessions per policy")
    parser.add_argument("--raw", help="also save the runs as JSON here")
    parser.add_argument("--merge", nargs="+", help="render saved JSON runs instead of running")
    parser.add_argument("--made-by", help="with --merge: the commands that made the runs")
    parser.add_argument("--out", default="benchmarks/results/gan_user_policies.md")
    args = parser.parse_args()
    command = " ".join(["python benchmarks/gan_user_policies.py", *sys.argv[1:]])
    if args.merge and args.made_by:
        merged = " ".join(["python benchmarks/gan_user_policies.py --merge", *args.merge])
        command = f"{args.made_by}`, merged by `{merged}"
    if args.merge:
        runs = [run for path in args.merge for run in json.loads(Path(path).read_text())]
        render(sorted(runs, key=lambda run: run["seed"]), command, Path(args.out), args.ks,
               args.sessions)
        return
    ml = load_movielens("ml-latest-small")
    runs = []
    for seed in args.seeds:
        runs.append(run_seed(args, seed, ml))
        if args.raw:
            with atomic_write(args.raw) as temporary:
                temporary.write_text(json.dumps(runs))
        render(runs, command, Path(args.out), args.ks, args.sessions)


if __name__ == "__main__":
    main()

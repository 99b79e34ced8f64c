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

``--source synthetic-mdp`` runs the same protocol on logs WITH non-clicks, where the truth
is known: the default world of ``SyntheticMDP-v0`` (IRecGAN sec. 7.1; 10 states, 50 items)
shown ``k``-item slates by the random logging policy (``--log-sessions`` sessions per k;
a page without a click ends the session). Sessions are the users: each seed splits them
into two disjoint halves. Items have no features there, so each is its one-hot id (as the
fidelity kind ``gan-user-pw`` reads them), the pool of every step is the whole catalogue,
and sessions start with no history, as the world's do. ``--no-click learned`` gives the
user model the paper's alternative no-click option, a learned constant reward (the
default, ``zero``, scores it as an item with zero features, a function of the state).
The logged page views are the slates themselves, so DQN-Off learns from the logged slates
(+-1 per click; a page without a click is terminal, as in the logs). Every policy is also
rolled out in the world itself (clicks per session within the horizon, CTR), the real
test, next to two privileged references that read the true state: the one-step optimum
("true greedy") and the horizon's optimum by backward induction ("true optimal").
``--world clickbait`` uses a world of the same sizes where the greedy slate is wrong
(:meth:`SyntheticWorld.clickbait`: bait items win the click and lose the user), so that
planning over the session pays there; in the default world the greedy slate is optimal.

    python benchmarks/gan_user_policies.py --seeds 0 1 2 3 4
    python benchmarks/gan_user_policies.py --source synthetic-mdp --no-click learned
    python benchmarks/gan_user_policies.py --source synthetic-mdp --world clickbait \
        --no-click learned

Each finished seed is kept in ``OUT.progress.json`` (atomically): a killed run continues
with ``--resume`` (same arguments) from the next seed; ``--overwrite`` starts afresh.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
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
from recgym.cli.resume import add_resume_options, continues_interrupted_run, run_arguments
from recgym.core.batch import SimulationBatch
from recgym.core.policy import RandomPolicy
from recgym.core.simulator import Randomness, State, Step
from recgym.data import (
    atomic_write,
    load_movielens,
    load_progress,
    movielens_to_logs,
    save_figure,
    save_progress,
    split_by_user,
)
from recgym.evaluation.rollout import collect_logs, evaluate_policy
from recgym.simulators.gan_user import GANUsers
from recgym.simulators.gan_user.baselines import LogisticClickModel
from recgym.simulators.gan_user.fit import (
    GANUserTraining,
    PageViews,
    default_features,
    fit_gan_user,
)
from recgym.simulators.gan_user.model import GANUserConfig, GANUserModel, features_of
from recgym.simulators.synthetic_mdp import SyntheticMDP, SyntheticWorld, logging_policy

HORIZON = 10
SOURCES = ("ml-latest-small", "synthetic-mdp")
ORDER = ["GAN-CDQN", "GAN-GDQN", "GAN-RWD1", "GAN-Greedy", "W&D-LR", "DQN-Off",
         "LinUCB (hybrid)", "Random", "oracle greedy (test model)"]
WORLD_ORDER = [*ORDER, "true greedy (world)", "true optimal (world)"]
PAPER = {  # Table 3 of the paper: (reward, ctr) for k = 3 and k = 5
    "W&D-LR": {3: (14.46, 0.46), 5: (15.18, 0.48)},
    "DQN-Off": {3: (20.31, 0.63), 5: (21.82, 0.67)},
    "GAN-Greedy": {3: (21.37, 0.67), 5: (22.97, 0.71)},
    "GAN-RWD1": {3: (22.17, 0.68), 5: (25.15, 0.78)},
    "GAN-GDQN": {3: (23.60, 0.72), 5: (23.19, 0.70)},
    "GAN-CDQN": {3: (24.05, 0.74), 5: (25.36, 0.77)},
}


@dataclass
class Setting:
    """What the policies of one (seed, k) learn from and are tested on."""

    k: int
    features: torch.Tensor
    train_model: GANUserModel
    test_model: GANUserModel
    train_users: GANUsers
    test_users: GANUsers
    click_model: LogisticClickModel
    offline: dict[str, torch.Tensor]  # DQN-Off's logged transitions
    world: WorldUsers | None = None  # the true users, where they are known


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
    config = GANUserConfig(feature_dim=features.shape[1], hidden=64, no_click=args.no_click)
    fit = fit_gan_user(fit_views, valid_views, features, config=config,
                       training=GANUserTraining(epochs=args.epochs, seed=seed), progress=False)
    return fit.model, features, PageViews.from_logs(logs, history=10)


def movielens_settings(args, seed: int, ml) -> Iterator[Setting]:
    """ml-latest-small: user models of the two user halves, display sets from their logs."""
    dataset = movielens_to_logs(ml, seed=seed)
    halves = split_by_user(dataset.logs, (0.5, 0.0, 0.5), seed=seed)
    train_model, features, train_views = fit_half(halves.train, seed, None, dataset, args)
    test_model, _, test_views = fit_half(halves.test, seed + 1000, features, dataset, args)
    click_model = LogisticClickModel(features.shape[1]).fit(train_views, features, seed=seed)
    for k in args.ks:
        yield Setting(k, features, train_model, test_model,
                      users_of(train_model, features, train_views, k, seed),
                      users_of(test_model, features, test_views, k, seed), click_model,
                      logged_transitions(train_views, features, k, seed=seed))


class WorldUsers:
    """A synthetic world's users with the observation of the GAN env (``UserSimulator``).

    The pool of every step is the whole catalogue (pool position = item id); items are
    seen through ``features``. Besides the GAN env's keys the observation holds the
    privileged ``true_state`` and ``step`` (steps taken), which only the references read.
    """

    def __init__(self, world: SyntheticMDP, features: torch.Tensor) -> None:
        self.world = world
        self.features = features
        self.num_items = self.num_candidates = world.num_items
        self.slate_size = world.slate_size
        self.history_length = world.history_length

    def reset(self, batch_size: int, rng: Randomness) -> State:
        """The world's first state and a step count of 0."""
        return {**self.world.reset(batch_size, rng),
                "step": torch.zeros(batch_size, dtype=torch.int64)}

    def step(self, state: State, slate: torch.Tensor, rng: Randomness) -> Step:
        """The world's step (clicks are its reward; no click ends the session)."""
        out = self.world.step(state, slate, rng)
        return replace(out, state={**out.state, "step": state["step"] + 1})

    def observe(self, state: State) -> dict[str, torch.Tensor]:
        """Features of the last clicks and of the catalogue, their ids, and the truth."""
        history = state["history"]
        clicks = history.masked_fill(history == self.world.no_click, -1)
        pool = torch.arange(self.num_items).expand(len(history), -1)
        return {"history": features_of(clicks, self.features).flatten(1),
                "candidates": self.features.flatten()[None].expand(len(history), -1),
                "clicks": clicks, "candidate_ids": pool, "true_state": state["state"],
                "step": state["step"]}


def optimal_slates(world: SyntheticWorld, k: int, horizon: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The slates of most expected clicks in the ``horizon`` steps left, by backward induction.

    With ``c_a = 1 + P(continue | a, s) E[V(s') | a, s]`` the value of what follows a
    click on ``a``, a slate ``A`` is worth ``sum_a r_a^2 c_a / sum_a r_a`` in state ``s``
    (the world's click law). That ratio is maximised exactly by Dinkelbach's iteration:
    the top ``k`` of ``r_a (r_a c_a - lambda)``, then ``lambda`` = that slate's worth,
    until it stops rising. ``horizon=1`` gives the one-step optimum (true greedy).

    Returns:
        int64 slates ``(horizon, m, k)`` and float64 values ``(horizon, m)``, indexed by
        the steps already taken.
    """
    rewards, transition = world.rewards.double(), world.transition.double()
    keep = 1.0 if world.continuation is None else world.continuation.double()
    value = torch.zeros(world.num_states, dtype=torch.float64)
    slates, values = [], []
    for _ in range(horizon):
        after = 1.0 + keep * torch.einsum("asz,z->sa", transition, value)
        worth = torch.zeros(world.num_states, dtype=torch.float64)
        while True:
            slate = (rewards * (rewards * after - worth[:, None])).topk(k, dim=1).indices
            shown = rewards.gather(1, slate)
            new = (shown.pow(2) * after.gather(1, slate)).sum(1) / shown.sum(1)
            if bool((new <= worth + 1e-12).all()):
                break
            worth = torch.maximum(worth, new)
        value = worth
        slates.append(slate)
        values.append(worth)
    return torch.stack(slates[::-1]), torch.stack(values[::-1])


@dataclass
class WorldSlates:
    """A privileged reference: the slate of each (steps taken, true state) from a table."""

    slates: torch.Tensor  # (T, m, k); steps beyond T - 1 use the last row
    name: str

    @property
    def slate_size(self) -> int:
        """``k``."""
        return self.slates.shape[2]

    def act(self, observation: dict[str, torch.Tensor]) -> torch.Tensor:
        """The table's slate for each user's step and true state, item ids ``(B, k)``."""
        step = observation["step"].clamp(max=len(self.slates) - 1)
        return self.slates[step, observation["true_state"]]


def slate_transitions(views: PageViews, features: torch.Tensor) -> dict[str, torch.Tensor]:
    """DQN-Off's replay from logs whose page views are the shown slates (synthetic source).

    The logged slate is the action (pool = the catalogue, so positions are item ids), the
    reward +1 for a click and -1 for none, and a page without a click, after which the log
    shows no page of its session, is terminal. ``views`` in session order.
    """
    rows = torch.arange(len(views))
    k = views.display.shape[1]
    clicked = views.choice < k
    click_ids = views.display[rows, views.choice.clamp(max=k - 1)]
    shifted = torch.cat([views.history[:, 1:], click_ids[:, None]], dim=1)
    next_history = torch.where(clicked[:, None], shifted, views.history)
    continues = torch.zeros(len(views), dtype=torch.bool)
    continues[:-1] = torch.from_numpy(views.user[1:] == views.user[:-1])
    pool = torch.arange(len(features)).expand(len(views), -1)
    catalogue = features.flatten()[None].expand(len(views), -1)
    return {"history": features_of(views.history, features).flatten(1),
            "candidates": catalogue, "slate": views.display,
            "reward": clicked.float() * 2.0 - 1.0, "done": (~continues).float(),
            "next_history": features_of(next_history, features).flatten(1),
            "next_candidates": catalogue, "next_clicks": next_history,
            "next_candidate_ids": pool}


def synthetic_settings(args, seed: int) -> Iterator[Setting]:
    """A synthetic world: logs of the random policy, user models of two halves."""
    tables = (SyntheticWorld.clickbait(10, 50, args.world_seed) if args.world == "clickbait"
              else SyntheticWorld.random(10, 50, args.world_seed))
    for k in args.ks:
        world = SyntheticMDP(slate_size=k, world=tables)
        features = torch.eye(world.num_items)
        logs = collect_logs(world, logging_policy("random", world, seed=seed),
                            args.log_sessions, seed=seed * args.log_sessions)
        logs["user_id"] = logs["session_id"]  # the sessions are the users
        halves = split_by_user(logs, (0.5, 0.0, 0.5), seed=seed)
        train_model, _, train_views = fit_half(halves.train, seed, features, None, args)
        test_model, _, test_views = fit_half(halves.test, seed + 1000, features, None, args)
        catalogue = torch.arange(world.num_items)[None]
        train_users, test_users = (GANUsers(model, features, display_sets=catalogue,
                                            slate_size=k)
                                   for model in (train_model, test_model))
        click_model = LogisticClickModel(world.num_items).fit(train_views, features, seed=seed)
        yield Setting(k, features, train_model, test_model, train_users, test_users,
                      click_model, slate_transitions(train_views, features),
                      WorldUsers(world, features))


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
    settings = movielens_settings(args, seed, ml) if args.source == "ml-latest-small" \
        else synthetic_settings(args, seed)
    out: dict = {"seed": seed, "results": {}, "train_results": {}, "q": None, "seconds": {}}
    for setting in settings:
        run_policies(args, seed, setting, out)
    return out


def run_policies(args, seed: int, setting: Setting, out: dict) -> None:
    """Train every policy of one (seed, k) and evaluate it on the test, train (and true) users."""
    k, d = setting.k, setting.features.shape[1]
    train_users, test_users = setting.train_users, setting.test_users
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
    policies["GAN-Greedy"] = GreedyPolicy(setting.train_model, k)
    policies["W&D-LR"] = GreedyPolicy(setting.click_model, k, name="W&D-LR")
    start = time.time()
    offline = CascadingDQN(CascadingDQNConfig(feature_dim=d, slate_size=k, reward="click",
                                              hidden=args.hidden), seed=seed)
    offline.fit_offline(setting.offline, CDQNTraining(iterations=args.iterations,
                                                      batch_size=args.users, seed=seed))
    policies["DQN-Off"] = offline
    out["seconds"][f"DQN-Off k={k}"] = time.time() - start
    start = time.time()
    linucb = HybridLinUCB(d, 10, k, alpha=args.alpha)
    linucb.fit(train_users, iterations=args.bandit_iterations, num_users=args.users,
               horizon=HORIZON, seed=seed)
    policies["LinUCB (hybrid)"] = linucb
    out["seconds"][f"LinUCB k={k}"] = time.time() - start
    policies["Random"] = RandomPolicy(test_users.num_candidates, k, seed=seed)
    policies["oracle greedy (test model)"] = GreedyPolicy(setting.test_model, k)
    for name, policy in policies.items():
        for key, users in (("results", test_users), ("train_results", train_users)):
            result = evaluate_policy(users, policy, args.sessions,
                                     seed=10_000 * (seed + 1), max_steps=HORIZON)
            out[key][f"{name}|{k}"] = (result.mean_return / HORIZON, result.ctr)
    if setting.world is not None:
        world = setting.world.world.world
        policies["true greedy (world)"] = WorldSlates(optimal_slates(world, k, 1)[0],
                                                      "true greedy (world)")
        policies["true optimal (world)"] = WorldSlates(optimal_slates(world, k, HORIZON)[0],
                                                       "true optimal (world)")
        for name, policy in policies.items():
            result = evaluate_policy(setting.world, policy, args.sessions,
                                     seed=10_000 * (seed + 1), max_steps=HORIZON,
                                     coverage_at=())
            out.setdefault("world_results", {})[f"{name}|{k}"] = (result.mean_return,
                                                                  result.ctr)
    if k == max(args.ks):
        out["q"] = q_consistency(policies["GAN-CDQN"], test_users, 256, seed).tolist()
    print(f"seed {seed} k={k}: " + ", ".join(
        f"{name} {out['results'][f'{name}|{k}'][0]:.3f}/{out['results'][f'{name}|{k}'][1]:.3f}"
        for name in ORDER), flush=True)
    if setting.world is not None:
        print(f"seed {seed} k={k} world: " + ", ".join(
            f"{name} {out['world_results'][f'{name}|{k}'][0]:.3f}/"
            f"{out['world_results'][f'{name}|{k}'][1]:.3f}" for name in WORLD_ORDER),
            flush=True)


def per_seed(runs: list[dict], key: str, order: list[str], ks: list[int]) -> list[str]:
    """Per-seed table of ``run[key]`` with the CDQN - Greedy and CDQN - GDQN differences."""
    lines = ["| seed | k | " + " | ".join(order) + " | CDQN-Greedy | CDQN-GDQN |",
             "|---|---|" + "---|" * (len(order) + 2)]
    for run in runs:
        for k in ks:
            r = {name: run[key][f"{name}|{k}"][0] for name in order}
            lines.append(f"| {run['seed']} | {k} | " + " | ".join(f"{r[n]:.3f}" for n in order)
                         + f" | {r['GAN-CDQN'] - r['GAN-Greedy']:+.3f} | "
                         f"{r['GAN-CDQN'] - r['GAN-GDQN']:+.3f} |")
    return lines


def describe(args) -> str:
    """What the train and test users are, for the results page."""
    if args.source == "ml-latest-small":
        return ("Train users and test users are disjoint halves of ml-latest-small; "
                "policies trained on the train user model, evaluated on the test user model "
                f"({args.sessions} 10-step test sessions per policy and seed).")
    bait = "; bait items lead to churn states" if args.world == "clickbait" else ""
    return (f"Logs: {args.log_sessions} sessions per k of the random logging policy in the "
            f"{args.world} SyntheticMDP world (10 states, 50 items, world seed "
            f"{args.world_seed}{bait}): "
            "page views with non-clicks, a non-click ends the session. Train users and test "
            "users are disjoint halves of those sessions; GAN-PW user models with the "
            f"'{args.no_click}' no-click option, one-hot item features, up to {args.epochs} "
            "epochs. Policies trained on the train user model (RL: "
            f"{args.iterations} iterations x {args.users} users, width {args.hidden}; LinUCB "
            f"{args.bandit_iterations} iterations), evaluated on the test user model and in "
            f"the world itself ({args.sessions} sessions of at most 10 steps per policy and "
            "seed).")


def render(runs: list[dict], command: str, out: Path, args) -> None:
    """The Markdown table (mean ± std over seeds) and the Figure 5 scatter."""
    seeds = [run["seed"] for run in runs]
    ks = args.ks

    def cell(values: list[float], digits: int) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.{digits}f} (±{spread:.{digits}f})"

    header = "| model | " + " | ".join(f"k={k} reward | k={k} CTR" for k in ks) + \
        " | paper " + " | paper ".join(f"k={k} reward / CTR" for k in ks) + " |"
    lines = ["# Recommendation policies on GAN user models (Table 3 analogue)", "",
             f"Command: `{command}` ({date.today().isoformat()}, 2 shared CPU cores); seeds "
             f"{seeds}. {describe(args)} Reward: cumulative "
             "reward averaged over the 10-step horizon, then over sessions; mean (± std) "
             "over seeds. The paper's numbers are on its own data and user model: compare "
             "orderings, not values.", *([""] + args.note if args.note else []), "", header,
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
              *per_seed(runs, "results", ORDER, ks)]
    if all("world_results" in run for run in runs):
        lines += ["", "The same policies in the WORLD itself, the real test: clicks per "
                  "session within the 10-step horizon (the world's reward; a non-click ends "
                  "the session) and CTR (clicks per page view), mean (± std) over seeds. The "
                  "last two rows read the true state (references, no policy of the paper).",
                  "", "| model | " + " | ".join(f"k={k} clicks | k={k} CTR" for k in ks)
                  + " |", "|---|" + "---|" * (2 * len(ks))]
        for name in WORLD_ORDER:
            cells = []
            for k in ks:
                for column, digits in ((0, 3), (1, 4)):
                    cells.append(cell([run["world_results"][f"{name}|{k}"][column]
                                       for run in runs], digits))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += ["", "Per seed in the world (clicks per session; CDQN - Greedy and CDQN - "
                  "GDQN differences):", "", *per_seed(runs, "world_results", WORLD_ORDER, ks)]
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


def main(argv: list[str] | None = None) -> None:
    """Run the seeds (or merge saved runs) and write the table and the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=SOURCES, default="ml-latest-small",
                        help="logs of the user models (module docstring)")
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
    parser.add_argument("--no-click", choices=("zero", "learned"), default="zero",
                        help="the user model's no-click reward: a zero-feature item or a "
                        "learned constant")
    parser.add_argument("--log-sessions", type=int, default=10_000,
                        help="synthetic-mdp: logged sessions per k")
    parser.add_argument("--world-seed", type=int, default=0, help="synthetic-mdp: the world")
    parser.add_argument("--world", choices=("default", "clickbait"), default="default",
                        help="synthetic-mdp: the paper's world, or one where the greedy slate "
                             "loses users (SyntheticWorld.clickbait)")
    parser.add_argument("--sessions", type=int, default=2000, help="test sessions per policy")
    parser.add_argument("--note", action="append",
                        help="a paragraph for the results page (e.g. what else ran)")
    parser.add_argument("--raw", help="also save the runs as JSON here")
    parser.add_argument("--merge", nargs="+", help="render saved JSON runs instead of running")
    parser.add_argument("--made-by", help="with --merge: the commands that made the runs")
    parser.add_argument("--out", help="results page (default: benchmarks/results/"
                        "gan_user_policies[_synthetic[_clickbait]].md by source and world)")
    add_resume_options(parser, "OUT.progress.json, one entry per finished seed")
    args = parser.parse_args(argv)
    suffix = ("" if args.source == "ml-latest-small" else "_synthetic"
              + ("" if args.world == "default" else f"_{args.world}"))
    out = Path(args.out or f"benchmarks/results/gan_user_policies{suffix}.md")
    command = " ".join(["python benchmarks/gan_user_policies.py",
                        *(sys.argv[1:] if argv is None else argv)])
    if args.merge and args.made_by:
        merged = " ".join(["python benchmarks/gan_user_policies.py --merge", *args.merge])
        command = f"{args.made_by}`, merged by `{merged}"
    if args.merge:
        runs = [run for path in args.merge for run in json.loads(Path(path).read_text())]
        render(sorted(runs, key=lambda run: run["seed"]), command, out, args)
        return
    ml = load_movielens("ml-latest-small") if args.source == "ml-latest-small" else None
    progress = out.with_suffix(".progress.json")
    settings = run_arguments(args, "source", "seeds", "ks", "epochs", "iterations", "users",
                             "hidden", "bandit_iterations", "alpha", "cooccurrence",
                             "no_click", "log_sessions", "world_seed", "world", "sessions")
    runs = load_progress(progress, settings)["runs"] \
        if continues_interrupted_run(progress, args) else []
    for seed in args.seeds[len(runs):]:
        runs.append(run_seed(args, seed, ml))
        save_progress(progress, settings, runs=runs)
        if args.raw:
            with atomic_write(args.raw) as temporary:
                temporary.write_text(json.dumps(runs))
        render(runs, command, out, args)
    progress.unlink()


if __name__ == "__main__":
    main()

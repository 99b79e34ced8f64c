"""Off-policy estimators against the ground truth of SyntheticMDP-v0 (IRecGAN sec. 7.1 world).

For each logging policy (random, mix, max) and log size (sessions), logs are drawn with
several seeds; every estimator estimates the value of each target policy (oracle = pi_max,
mix, random, an item-to-item CF policy, a PPO agent) and is compared with

* the exact value per page view on the logged contexts (what log-based estimators
  estimate): ``mean_i E_{s ~ pi(x_i)} [sum r^2 / sum r]``, exact for deterministic
  targets, and for random / mix a per-state average over 20,000 sampled slates;
* the on-policy clicks per page view measured by simulation (what ``sim`` estimates,
  with the choice-continuation users, ``sim``, and the count simulator, ``sim-count``,
  fitted on the log; the first cannot run targets that read the hidden state).

Writes ``benchmarks/results/ope_ground_truth.md`` and ``.png``::

    nice -n 10 .venv/bin/python benchmarks/ope_ground_truth.py

Each finished (logging policy, log size, seed) is saved beside the output
(``OUT.progress.json``, atomically); a killed run continues with ``--resume`` to the same
tables (every part is seeded on its own), ``--overwrite`` starts afresh.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recgym.cli.resume import add_resume_options, continues_interrupted_run, run_arguments
from recgym.data import load_progress, save_progress
from recgym.evaluation import collect_logs, evaluate_policy, ope
from recgym.evaluation.ope_models import SyntheticRewardModel
from recgym.evaluation.ope_policies import act_on_logs
from recgym.simulators.synthetic_mdp import SyntheticMDP, logging_policy

ESTIMATORS = ["dm", "ips", "snips", "dr", "switch-dr", "slate-ips", "iips", "rips", "pi"]
SIM_COLUMNS = {"choice-continuation": "sim", "count": "sim-count"}
"""``sim``'s column per simulator kind fitted on the logs (``sim`` is the default kind)."""
RESULTS = Path(__file__).parent / "results"


class ItemCFPolicy:
    """Item-to-item collaborative filtering (deterministic).

    Shows the items most often clicked next after the user's last click (co-click counts
    from a training log), with popularity as the fallback.
    """

    deterministic = True

    def __init__(self, logs: pd.DataFrame, num_items: int, slate_size: int) -> None:
        logs = logs.sort_values(["session_id", "step"])
        click = logs["click"].to_numpy()
        same = np.r_[logs["session_id"].to_numpy()[1:] == logs["session_id"].to_numpy()[:-1],
                     False]
        pairs = same & (click >= 0) & (np.r_[click[1:], -1] >= 0)
        counts = np.zeros((num_items + 1, num_items))
        np.add.at(counts, (click[pairs], np.r_[click[1:], -1][pairs]), 1.0)
        popularity = np.bincount(click[click >= 0], minlength=num_items).astype(float)
        counts[num_items] = popularity
        scores = counts + 1e-3 * popularity[None, :] / max(popularity.max(), 1)
        self.ranking = torch.from_numpy(np.argsort(-scores, axis=1, kind="stable")[:, :slate_size])
        self.slate_size = slate_size

    def act(self, observation: dict[str, torch.Tensor]) -> torch.Tensor:
        """Top-k co-clicked items after the last click."""
        return self.ranking[observation["clicks"][:, -1]]


def train_ppo(path: Path, steps: int, seed: int):
    """A PPO agent on SyntheticMDP-v0 (clicks only), cached at ``path``."""
    from stable_baselines3 import PPO

    from recgym.core.sb3 import make_sb3_vec_env

    if path.exists():
        return PPO.load(path, device="cpu")
    venv = make_sb3_vec_env("SyntheticMDP-v0", num_envs=64, seed=seed)
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=512, n_epochs=4, learning_rate=1e-3,
                seed=seed, device="cpu")
    model.learn(total_timesteps=steps, progress_bar=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model


def state_values(sim: SyntheticMDP, policy, samples: int = 20_000) -> np.ndarray:
    """Exact-by-averaging value per state of a stochastic state-based policy, ``(m,)``."""
    model = SyntheticRewardModel.from_world(sim.world)
    values = np.zeros(sim.num_states)
    for s in range(sim.num_states):
        obs = {"true_state": np.full(samples, s), "clicks": np.full((samples, 10), sim.num_items)}
        slates = act_on_logs(policy, obs)
        values[s] = model.predict(np.full(samples, s), slates).mean()
    return values


def main(argv: list[str] | None = None) -> None:
    """Run the study and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 5000])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--ppo-steps", type=int, default=40_960)
    parser.add_argument("--truth-sessions", type=int, default=20_000)
    parser.add_argument("--sim-sessions", type=int, default=500)
    parser.add_argument("--sim-kinds", nargs="+", choices=tuple(SIM_COLUMNS),
                        default=list(SIM_COLUMNS), help="simulators sim fits on each log")
    parser.add_argument("--out", default=str(RESULTS / "ope_ground_truth"))
    parser.add_argument("--ppo-cache", default="runs/ope_ppo.zip",
                        help="the PPO target, trained once and kept here")
    add_resume_options(parser, "OUT.progress.json")
    args = parser.parse_args(argv)
    run = run_arguments(args, "sizes", "seeds", "ppo_steps", "truth_sessions", "sim_sessions",
                        "sim_kinds", "ppo_cache")
    progress = Path(args.out).with_suffix(".progress.json")
    records, done = [], set()
    if continues_interrupted_run(progress, args):
        saved = load_progress(progress, run)
        records, done = saved["records"], {tuple(part) for part in saved["done"]}
    torch.set_num_threads(1)
    started = time.perf_counter()
    sim = SyntheticMDP()
    reward_model = SyntheticRewardModel.from_world(sim.world)
    cf_logs = collect_logs(sim, logging_policy("random", sim, seed=999), 5000, seed=10**7)
    from recgym.core import SB3Policy

    ppo = train_ppo(Path(args.ppo_cache), args.ppo_steps, seed=0)
    targets = {
        "oracle": lambda: logging_policy("max", sim),
        "mix": lambda: logging_policy("mix", sim, seed=123),
        "random": lambda: logging_policy("random", sim, seed=321),
        "cf": lambda: ItemCFPolicy(cf_logs, sim.num_items, sim.slate_size),
        "ppo": lambda: SB3Policy(ppo, ("clicks",), sim.slate_size, deterministic=True),
    }
    per_state = {name: state_values(sim, targets[name]()) for name in ("mix", "random")}
    on_policy = {name: evaluate_policy(sim, make(), args.truth_sessions, seed=10**8).ctr
                 for name, make in targets.items()}
    print("on-policy ctr:", {k: round(v, 4) for k, v in on_policy.items()}, flush=True)
    for log_name in ("random", "mix", "max"):
        for size in args.sizes:
            for seed in range(args.seeds):
                if (log_name, size, seed) in done:
                    continue
                logs = collect_logs(sim, logging_policy(log_name, sim, seed=seed), size,
                                    seed=seed * 100_000, extra_observation_keys=("true_state",))
                data = ope.prepare_logs(logs, num_items=sim.num_items, validate=False)
                fitted = {kind: ope.SimulatorRollout(kind=kind, n_refits=0).fit(data)
                          for kind in args.sim_kinds}
                for target_name, make in targets.items():
                    target = make()
                    if target_name in per_state:
                        truth = float(per_state[target_name][data.contexts].mean())
                    else:
                        chosen = act_on_logs(target, data.observation)
                        truth = float(reward_model.predict(data.contexts, chosen).mean())
                    inputs, _ = ope.build_inputs(target, data,
                                                 logging_policy=logging_policy(log_name, sim))
                    row = {"logging": log_name, "sessions": size, "rows": len(logs),
                           "seed": seed, "target": target_name, "truth_logged": truth,
                           "truth_on_policy": on_policy[target_name]}
                    uniform = sim.num_items if log_name == "random" else None
                    for name in ESTIMATORS:
                        estimator = ope.make_estimator(name, uniform_items=uniform)
                        row[name] = estimator.estimate(inputs)
                    perfect, _ = ope.build_inputs(make(), data, reward_model=reward_model,
                                                  logging_policy=logging_policy(log_name, sim))
                    row["dr*"] = ope.DoublyRobust().estimate(perfect)
                    for kind, simulator in fitted.items():
                        rollout = ope.SimulatorRollout(simulator=simulator,
                                                       n_sessions=args.sim_sessions)
                        target = make()
                        row[SIM_COLUMNS[kind]] = np.nan if rollout.cannot_run(target, data) \
                            else rollout.run(target, data, seed=seed)["estimate"]
                    records.append(row)
                done.add((log_name, size, seed))
                save_progress(progress, run, records=records, done=sorted(done))
                print(f"{log_name} {size} seed {seed} done "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
    frame = pd.DataFrame(records)
    write_results(frame, Path(args.out), time.perf_counter() - started, args)
    progress.unlink()


def estimator_columns(frame: pd.DataFrame) -> list[str]:
    """The estimators in ``frame``, log-based first, then the simulators."""
    return ESTIMATORS + ["dr*"] + [c for c in SIM_COLUMNS.values() if c in frame.columns]


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Bias, standard deviation and RMSE of every estimator per (logging, size, target)."""
    rows = []
    for key, group in frame.groupby(["logging", "sessions", "target"], sort=False):
        for name in estimator_columns(frame):
            on_policy = name in SIM_COLUMNS.values()
            truth = group["truth_on_policy"] if on_policy else group["truth_logged"]
            error = group[name] - truth
            keys = dict(zip(["logging", "sessions", "target"], key, strict=True))
            rows.append(dict(keys, estimator=name,
                             rows=group["rows"].mean(), truth=truth.mean(),
                             bias=error.mean(), sd=group[name].std(ddof=1),
                             rmse=float(np.sqrt((error ** 2).mean())),
                             gap=(group["truth_on_policy"] - group["truth_logged"]).mean()))
    return pd.DataFrame(rows)


def write_results(frame: pd.DataFrame, out: Path, seconds: float, args) -> None:
    """Markdown tables and the RMSE-vs-size plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarise(frame)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Off-policy estimators vs ground truth in SyntheticMDP-v0",
        "",
        "Command: `nice -n 10 .venv/bin/python benchmarks/ope_ground_truth.py "
        f"--sizes {' '.join(map(str, args.sizes))} --seeds {args.seeds} "
        f"--ppo-steps {args.ppo_steps} --truth-sessions {args.truth_sessions} "
        f"--sim-sessions {args.sim_sessions} --sim-kinds {' '.join(args.sim_kinds)} "
        f"--out {args.out}` "
        f"({seconds / 60:.1f} min on {platform.machine()}, 2 shared CPU cores, "
        f"torch {torch.__version__}).",
        "",
        "World: m=10 states, n=50 items, k=10 (world_seed 0). Log-based estimators are "
        "compared with the exact value per page view on the logged contexts; `sim` "
        "(choice-continuation users fitted on the log) and `sim-count` (count-based "
        f"simulator, conditioned on the logged hidden state), {args.sim_sessions} roll-out "
        "sessions each, with the on-policy clicks per page view (20,000 simulated "
        "sessions). `dr*` is DR with the exact reward model. Cells: RMSE (bias) over "
        "seeds; `-` marks an estimate that is undefined (no weight mass, or a target "
        "that reads the hidden state, which the choice-continuation users do not give).",
        "",
        "Truths (clicks per page view): on-policy "
        + ", ".join(f"{t} {v:.3f}" for t, v in
                    frame.groupby("target", sort=False)["truth_on_policy"].first().items())
        + ".",
        "",
    ]
    columns = estimator_columns(frame)
    for log_name, part in summary.groupby("logging", sort=False):
        lines += [f"## Logging policy: {log_name}", "",
                  "| target | sessions | rows | truth (logged) | " + " | ".join(columns) + " |",
                  "|---|---:|---:|---:|" + "---:|" * len(columns)]
        for (target, size), cell in part.groupby(["target", "sessions"], sort=False):
            by = cell.set_index("estimator")
            values = []
            for name in columns:
                rmse, bias = by.loc[name, "rmse"], by.loc[name, "bias"]
                values.append("-" if not np.isfinite(rmse) else f"{rmse:.3f} ({bias:+.3f})")
            lines.append(f"| {target} | {size} | {by['rows'].iloc[0]:.0f} | "
                         f"{by.loc['dm', 'truth']:.3f} | " + " | ".join(values) + " |")
        lines.append("")
    out.with_suffix(".md").write_text("\n".join(lines))
    targets = list(frame["target"].unique())
    loggings = list(frame["logging"].unique())
    figure, axes = plt.subplots(len(loggings), len(targets), figsize=(3.0 * len(targets),
                                2.4 * len(loggings)), sharex=True, squeeze=False)
    for i, log_name in enumerate(loggings):
        for j, target in enumerate(targets):
            axis = axes[i, j]
            part = summary[(summary.logging == log_name) & (summary.target == target)]
            for c, name in enumerate(columns):
                line = part[part.estimator == name]
                style = "--" if name in ("dr*", *SIM_COLUMNS.values()) else "-"
                axis.plot(line["sessions"], line["rmse"], style, marker="o", markersize=3,
                          label=name, color=plt.cm.tab20(c / 20 * 1.8))
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set_title(f"log {log_name}, target {target}", fontsize=8)
            if j == 0:
                axis.set_ylabel("RMSE")
            if i == len(loggings) - 1:
                axis.set_xlabel("logged sessions")
    axes[0, -1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    figure.savefig(out.with_suffix(".png"), dpi=70)
    plt.close(figure)
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()

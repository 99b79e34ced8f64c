"""RLlib PPO with item ids embedded (ItemEmbeddingRLModule) vs the flat encoding vs random.

For each id, RLlib PPO trains each model for the same number of user-steps, with the same
hyper-parameters and seeds, one env runner of ``--users`` users:

* ``embedding``: :class:`recgym.integrations.rllib_module.ItemEmbeddingRLModule` on native
  observations (``rl_module_spec(id)``: item ids embedded, initialised from the
  simulator's item embeddings);
* ``embedding-scratch``: the same module with embeddings learned from scratch
  (``rl_module_spec(id, pretrained=False)``: 32 wide, random start);
* ``flat``: RLlib's default PPO module on :mod:`recgym.integrations.rllib`'s default
  encoding (``auto``: one-hot ids, or ids scaled to [0, 1] on RecSimu's catalogue), with
  the same hidden layers.

Each model trains once per ``--seeds`` seed. Every greedy policy (``RLlibPolicy``) and the
uniformly random policy then roll out the same ``--sessions`` user seeds in the env's
simulator. The table gives, per id and model, the greedy mean return of each training
seed (± its standard error over sessions), their mean ± its standard error over training
seeds, the margins over random and over ``flat`` (difference over its standard error,
from the seed means) and training user-steps/s (sampling and learning)::

    python benchmarks/rllib_embedding.py            # -> results/rllib_embedding.md

Each finished run is kept in ``OUT.progress.json``; a killed run continues with
``--resume`` (same arguments), ``--overwrite`` starts afresh.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import reporting

from recgym.cli.resume import add_resume_options, continues_interrupted_run, run_arguments
from recgym.data import load_progress, save_progress

MODELS = ("embedding", "embedding-scratch", "flat")
# PPO as recgym.integrations.sb3 trains it (results/clients.md), in RLlib's names
PPO_SETTINGS = {"lr": 1e-3, "entropy_coeff": 0.01, "num_epochs": 4, "minibatch_size": 256,
                "gamma": 0.99, "lambda_": 0.95, "clip_param": 0.2, "vf_loss_coeff": 0.5,
                "grad_clip": 0.5, "use_kl_loss": False}


def train(env_id: str, model: str, steps: int, seed: int,
          args: argparse.Namespace) -> dict[str, Any]:
    """Train PPO with ``model`` for ``steps`` user-steps; greedy evaluation and speed."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    from recgym.evaluation import evaluate_policy
    from recgym.integrations.layout import HIDDEN_SIZES
    from recgym.integrations.rllib import RLlibPolicy, env_runner_options, make_rllib_env
    from recgym.integrations.rllib_module import rl_module_spec

    encoding = "auto" if model == "flat" else "native"
    config = (PPOConfig()
              .environment(env_id, env_config={"observation_encoding": encoding})
              .env_runners(**env_runner_options(args.users, num_env_runners=1,
                                                num_cpus_per_env_runner=1))
              .training(train_batch_size_per_learner=args.batch, vf_clip_param=args.vf_clip,
                        **PPO_SETTINGS)
              .debugging(seed=seed))
    if model == "flat":
        config = config.rl_module(model_config=DefaultModelConfig(
            fcnet_hiddens=HIDDEN_SIZES[env_id], fcnet_activation="tanh"))
    else:
        config = config.rl_module(rl_module_spec=rl_module_spec(
            env_id, pretrained=model == "embedding"))
    algo = config.build_algo()
    started, sampled = time.perf_counter(), 0
    try:
        while sampled < steps:
            result = algo.train()
            sampled = int(result["num_env_steps_sampled_lifetime"])
        seconds = time.perf_counter() - started
        env = make_rllib_env(env_id, {"num_envs": 1, "observation_encoding": encoding})
        policy = RLlibPolicy(algo.get_module(), env)
    finally:
        algo.stop()
    rec_env = env.unwrapped
    evaluation = evaluate_policy(rec_env.simulator, policy, args.sessions,
                                 seed=args.eval_seed, max_steps=rec_env.spec.max_episode_steps)
    return {"env_id": env_id, "model": model, "seed": seed, "steps": sampled,
            "seconds": seconds, "return": evaluation.mean_return,
            "se": evaluation.return_std_err}


def random_row(env_id: str, args: argparse.Namespace) -> dict[str, Any]:
    """The uniformly random policy on the same user seeds."""
    import gymnasium as gym

    from recgym.core import RandomPolicy
    from recgym.core.env import num_candidates
    from recgym.evaluation import evaluate_policy

    env = gym.make(env_id)
    simulator = env.unwrapped.simulator
    policy = RandomPolicy(num_candidates(simulator), simulator.slate_size, seed=args.eval_seed)
    evaluation = evaluate_policy(simulator, policy, args.sessions, seed=args.eval_seed,
                                 max_steps=env.spec.max_episode_steps)
    return {"env_id": env_id, "model": "random", "seed": None, "steps": 0, "seconds": 0.0,
            "return": evaluation.mean_return, "se": evaluation.return_std_err}


def summary(runs: list[dict[str, Any]]) -> tuple[float, float]:
    """Mean return over training seeds and its standard error (one run: over sessions)."""
    returns = [run["return"] for run in runs]
    if len(runs) == 1:
        return returns[0], runs[0]["se"]
    return statistics.mean(returns), statistics.stdev(returns) / math.sqrt(len(returns))


def _margin(a: tuple[float, float], b: tuple[float, float]) -> str:
    std_err = math.hypot(a[1], b[1])
    return f"{(a[0] - b[0]) / std_err:+.1f}" if std_err else "-"


def format_rows(rows: list[dict[str, Any]]) -> list[str]:
    """The results table: one line per id and model, its training seeds side by side."""
    lines = ["| id | model | user-steps per run | training user-steps/s | greedy return per "
             "training seed (± s.e. over sessions) | mean ± s.e. over seeds | vs random | "
             "vs flat |", "|---|---|---:|---:|---|---:|---:|---:|"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["env_id"], row["model"]), []).append(row)
    for (env_id, model), runs in groups.items():
        mean = summary(runs)
        random, flat = groups.get((env_id, "random")), groups.get((env_id, "flat"))
        trained = model != "random"
        speed = sum(run["steps"] for run in runs) / sum(run["seconds"] for run in runs) \
            if trained else 0
        per_seed = ", ".join(f"{run['return']:.3f} ± {run['se']:.3f}" for run in runs)
        lines.append(
            f"| {env_id} | {model} | {runs[0]['steps']:,} | {speed:,.0f} | {per_seed} | "
            f"{mean[0]:.3f} ± {mean[1]:.3f} | "
            f"{_margin(mean, summary(random)) if trained and random else '-'} | "
            f"{_margin(mean, summary(flat)) if trained and model != 'flat' and flat else '-'} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Train and evaluate every (id, model, seed), then write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-ids", nargs="+", default=["RecSimu-v0", "IRecGAN-v0"])
    parser.add_argument("--steps", type=int, nargs="+", default=[40_960, 102_400],
                        help="training user-steps per run of each id (at least: whole "
                             "updates), as SB3 PPO learns them in results/clients.md")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="training seeds (RLlib's seed) of each model")
    parser.add_argument("--users", type=int, default=64, help="users in the env runner")
    parser.add_argument("--batch", type=int, default=2048, help="user-steps per PPO update")
    parser.add_argument("--sessions", type=int, default=2000,
                        help="evaluation sessions per policy")
    parser.add_argument("--eval-seed", type=int, default=1,
                        help="session i of every evaluation uses random stream eval_seed + i")
    parser.add_argument("--vf-clip", type=float, default=10.0,
                        help="PPO's vf_clip_param: squared value errors above it are clipped "
                             "(no gradient); RLlib's default 10, inf: not clipped")
    parser.add_argument("--out", default=str(reporting.RESULTS / "rllib_embedding.md"))
    add_resume_options(parser, "OUT.progress.json")
    args = parser.parse_args(argv)
    if len(args.steps) != len(args.env_ids):
        parser.error(f"--steps needs one budget per id: {len(args.env_ids)} value(s)")
    budgets = dict(zip(args.env_ids, args.steps, strict=True))
    import ray
    import torch

    import recgym  # noqa: F401  (registers the envs)
    from recgym.integrations.rllib import register_rllib_envs

    torch.set_num_threads(1)
    progress = Path(args.out).with_suffix(".progress.json")
    settings = run_arguments(args, "env_ids", "steps", "models", "seeds", "users", "batch",
                             "sessions", "eval_seed", "vf_clip")
    rows = load_progress(progress, settings)["rows"] \
        if continues_interrupted_run(progress, args) else []
    runs = [(env_id, model, seed) for env_id in args.env_ids
            for model in [*args.models, "random"]
            for seed in (args.seeds if model != "random" else [None])]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        register_rllib_envs(args.env_ids)
        for env_id, model, seed in runs[len(rows):]:
            rows.append(random_row(env_id, args) if model == "random"
                        else train(env_id, model, budgets[env_id], seed, args))
            save_progress(progress, settings, rows=rows)
            print(f"{env_id} {model} seed {seed}: {rows[-1]['return']:.3f} ± "
                  f"{rows[-1]['se']:.3f} ({rows[-1]['seconds']:.0f} s)", flush=True)
    finally:
        ray.shutdown()
    text = "\n".join([
        "# RLlib PPO: item ids embedded vs the flat encoding vs random", "",
        f"Command: `{reporting.command_line()}`", "",
        f"Machine: {reporting.machine_description('ray', 'gymnasium')}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", "",
        "RLlib PPO (new API stack) for the user-steps in the table (at least "
        f"{', '.join(f'{n:,}' for n in args.steps)}), one env runner of {args.users} users "
        f"(`vector_entry_point`), {args.batch:,} user-steps per update, training seeds "
        f"{args.seeds}; settings {PPO_SETTINGS}, vf_clip_param {args.vf_clip:g}. "
        "`embedding`: `ItemEmbeddingRLModule` via `rl_module_spec(id)` on native "
        "observations (simulator's item embeddings, fine-tuned); `embedding-scratch`: the "
        "same with `pretrained=False`; `flat`: RLlib's default module on the default "
        "encoding, same hidden layers (tanh). Greedy "
        f"policies and the random one roll out the same {args.sessions:,} sessions "
        "(registered episode limit). Margins: difference of the seed means over its "
        "standard error (over training seeds; random: over sessions). Training "
        "user-steps/s include learning.", "",
        *format_rows(rows)])
    print(f"wrote {reporting.write_results(args.out, text)}")
    progress.unlink()


if __name__ == "__main__":
    main()

"""``recgym list``, ``demo``, ``generate-logs`` and ``evaluate``: the registered envs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recgym.cli.arguments import key_value, parquet_output, positive_int
from recgym.cli.policies import (
    REFERENCE_POLICIES,
    SB3_ALGORITHMS,
    EnvParts,
    make_policy,
    simulator_for_env,
)
from recgym.cli.resume import add_resume_options, continues_interrupted_run, run_arguments

if TYPE_CHECKING:
    from recgym.core import Policy
    from recgym.evaluation import PolicyEvaluation


def _make_policy(spec: str, env: EnvParts, seed: int, algo: str = "ppo",
                 trust_model: bool = False) -> Policy:
    """A policy acting in the env's action space (GANUserModel-v0: candidate positions)."""
    from recgym.core.env import num_candidates

    return make_policy(spec, num_items=num_candidates(env.simulator),
                       slate_size=env.simulator.slate_size, simulator=env.simulator,
                       observation_keys=env.observation_keys, algo=algo, seed=seed,
                       observation_space=env.observation_space, action_space=env.action_space,
                       trust_model=trust_model)


def _format_table(rows: dict[str, PolicyEvaluation]) -> str:
    columns = list(next(iter(rows.values())).as_row())
    header = f"{'policy':<10}" + "".join(f"{c:>13}" for c in columns)
    lines = [header, "-" * len(header)]
    for name, evaluation in rows.items():
        values = evaluation.as_row()
        lines.append(f"{name:<10}" + "".join(f"{values[c]:>13.3f}" for c in columns))
    return "\n".join(lines)


def _card_summary(card: Path, title: str) -> str:
    """The first line of a data card that is not its title, up to the first colon."""
    if not card.is_file():
        return ""
    for line in card.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("#").strip()
        if text and text != title:
            return text.split(":")[0]
    return ""


def _shipped_data() -> list[str]:
    """Lines naming each shipped checkpoint (with its card) and each shipped dataset."""
    from recgym.data import envs_data_path

    try:
        root = envs_data_path()
    except FileNotFoundError as error:
        return [f"shipped data: none ({error})"]
    checkpoints = {path.name: _card_summary(path.with_suffix(".md"), path.name)
                   for path in sorted(root.glob("*.pt"))}
    datasets = {path.name: _card_summary(path / "README.md", path.name)
                for path in sorted(root.iterdir()) if path.is_dir()}
    lines = []
    for heading, entries in ((f"shipped checkpoints (in {root})", checkpoints),
                             ("shipped datasets", datasets)):
        width = max(map(len, entries), default=0)
        lines += [f"\n{heading}:"]
        lines += [f"  {name:<{width}}  {summary}".rstrip() for name, summary in entries.items()]
    return lines


def cmd_list(args: argparse.Namespace) -> None:
    """Print every registered env, then the shipped checkpoints and datasets."""
    import recgym

    width = max(map(len, recgym.ENV_DESCRIPTIONS))
    for env_id, description in recgym.ENV_DESCRIPTIONS.items():
        print(f"{env_id:<{width}}  {description}")
    print("\n".join(_shipped_data()))


def _plot_demo(rows: dict[str, PolicyEvaluation], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recgym.data import save_figure

    names = list(rows)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.bar(names, [rows[n].mean_return for n in names],
             yerr=[1.96 * rows[n].return_std_err for n in names], capsize=4, color="tab:blue")
    left.set_ylabel("mean return (clicks per session)")
    left.set_title("Return, 95% CI")
    for name in names:
        coverage = rows[name].coverage
        right.plot(list(coverage), list(coverage.values()), marker="o", label=name)
    right.set_xlabel("r")
    right.set_ylabel("coverage@r")
    right.set_ylim(0, 1.05)
    right.set_title("Share of true top-r items shown")
    right.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.suptitle("recgym demo: SyntheticMDP-v0 (IRecGAN sec. 7.1)")
    save_figure(figure, path, dpi=120)


def cmd_demo(args: argparse.Namespace) -> None:
    """Make SyntheticMDP-v0, run reference policies (and a quick PPO), table and plot."""
    from recgym.evaluation import evaluate_policy

    env_id = "SyntheticMDP-v0"
    env = simulator_for_env(env_id, {})
    simulator, keys = env.simulator, env.observation_keys
    print(f"{env_id}: {simulator.num_states} states, {simulator.num_items} items, "
          f"slates of {simulator.slate_size}; evaluating on {args.sessions} sessions each")
    policies = {name: _make_policy(name, env, args.seed) for name in ("random", "mix", "max")}
    if args.ppo_steps > 0:
        try:
            from stable_baselines3 import PPO
        except ImportError:
            print("stable-baselines3 is not installed: skipping PPO (pip install recgym[sb3])")
        else:
            from recgym.core import SB3Policy
            from recgym.core.sb3 import make_sb3_vec_env

            started = time.perf_counter()
            venv = make_sb3_vec_env(env_id, num_envs=64, seed=args.seed)
            model = PPO("MlpPolicy", venv, n_steps=32, batch_size=512, n_epochs=4,
                        learning_rate=1e-3, seed=args.seed, device="cpu")
            model.learn(total_timesteps=args.ppo_steps, progress_bar=False)
            print(f"trained PPO for {args.ppo_steps} user-steps on 64 batched users "
                  f"in {time.perf_counter() - started:.1f} s")
            policies["ppo"] = SB3Policy(model, keys, simulator.slate_size)
    rows = {name: evaluate_policy(simulator, policy, args.sessions, seed=args.seed + 1)
            for name, policy in policies.items()}
    print(_format_table(rows))
    print("random: uniform slates; mix / max: the logging policies of IRecGAN sec. 7.1 "
          "(max = true top-k, the oracle)")
    _plot_demo(rows, Path(args.plot))
    print(f"plot saved to {args.plot}")


def _env(args: argparse.Namespace) -> tuple[EnvParts, int]:
    """The parts of ``args.env`` and the steps per session.

    Sessions are cut at ``--max-steps``, else at the env's registered episode limit.
    """
    import gymnasium as gym

    env = simulator_for_env(args.env, dict(args.env_arg))
    return env, args.max_steps or gym.spec(args.env).max_episode_steps


CHUNK_SESSIONS = 10_000
"""``generate-logs`` rolls this many sessions out at a time and saves each chunk as it ends.

The chunk starting at session ``s`` is the log of ``--seed SEED + s``: session ``i`` draws
from random stream ``SEED + i`` (as in one batch) and a random / mix policy is seeded with
``SEED + s``. Logs of up to this many sessions, and of a deterministic policy (max, a saved
model), are exactly those of one batch of all sessions.
"""


def parts_folder(out: Path) -> Path:
    """Where ``generate-logs`` keeps the finished chunks of ``out`` until it assembles them."""
    return out.with_name(out.name + ".parts")


def cmd_generate_logs(args: argparse.Namespace) -> None:
    """Roll a logging policy out in chunks of sessions and save the sessions as a Parquet log.

    Each finished chunk is written (atomically) into the parts folder beside ``--out``, with
    the arguments of the run; the log is assembled from them at the end and the folder
    removed. ``--resume`` continues a killed run after its last finished chunk.
    """
    import shutil

    import pandas as pd
    from tqdm.auto import tqdm

    from recgym.data import LogDataset, atomic_write, load_progress, save_progress
    from recgym.evaluation import collect_logs

    env, max_steps = _env(args)
    simulator = env.simulator
    extra = tuple(k for k in simulator.observation_spaces() if k == "true_state")
    parts = parts_folder(args.out)
    manifest = parts / "run.json"
    run = {"env": args.env, **run_arguments(args, "env_arg", "sessions", "max_steps", "seed",
                                           "policy", "algo"),
           "sessions per chunk": CHUNK_SESSIONS}
    if continues_interrupted_run(parts, args):
        load_progress(manifest, run)
    else:
        shutil.rmtree(parts, ignore_errors=True)
    chunks = {start: parts / f"sessions-{start:010d}.parquet"
              for start in range(0, args.sessions, CHUNK_SESSIONS)}
    with tqdm(total=args.sessions, desc="sessions", unit="session") as bar:
        for start, path in chunks.items():
            count = min(CHUNK_SESSIONS, args.sessions - start)
            if not path.exists():
                policy = _make_policy(args.policy, env, args.seed + start, args.algo,
                                      args.trust_model)
                chunk = collect_logs(simulator, policy, count, seed=args.seed + start,
                                     max_steps=max_steps, extra_observation_keys=extra,
                                     progress=True)
                chunk["session_id"] += start
                if not manifest.exists():  # only now: a run that fails at once leaves nothing
                    save_progress(manifest, run)
                with atomic_write(path, suffix=".parquet") as temporary:
                    chunk.to_parquet(temporary)
            bar.update(count)
    logs = pd.concat([pd.read_parquet(path) for path in chunks.values()], ignore_index=True)
    LogDataset(logs, num_items=simulator.num_items).save(args.out)
    shutil.rmtree(parts)
    print(f"wrote {len(logs)} page views of {args.sessions} sessions (at most {max_steps} "
          f"steps each) to {args.out} (click rate {float((logs.click >= 0).mean()):.3f})")


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Evaluate one or more policies by simulated roll-outs."""
    from recgym.evaluation import evaluate_policy

    env, max_steps = _env(args)
    simulator = env.simulator
    policies = {Path(spec).stem if spec not in REFERENCE_POLICIES else spec:
                _make_policy(spec, env, args.seed, args.algo, args.trust_model)
                for spec in args.policy}
    rows = {name: evaluate_policy(simulator, policy, args.sessions, seed=args.seed,
                                  max_steps=max_steps, progress=True)
            for name, policy in policies.items()}
    print(_format_table(rows))


def _add_env_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("env", help="registered env id, e.g. SyntheticMDP-v0")
    command.add_argument("--env-arg", action="append", default=[], type=key_value,
                         metavar="KEY=VALUE",
                         help="env constructor argument, repeatable (num_items=100)")
    command.add_argument("--sessions", type=positive_int, default=1000)
    command.add_argument("--max-steps", type=positive_int, default=None,
                         help="cut sessions after this many steps (default: the env's "
                              "registered episode limit)")
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--algo", type=str.lower, choices=SB3_ALGORITHMS, default="ppo",
                         help="stable-baselines3 algorithm of a saved model")
    command.add_argument("--trust-model", action="store_true",
                         help="unpickle a saved model's own objects (runs code from the file: "
                              "only for models from someone you trust)")


def add_env_commands(subparsers: Any) -> None:
    """Add ``list``, ``demo``, ``generate-logs`` and ``evaluate`` to the ``recgym`` parser."""
    listing = subparsers.add_parser(
        "list", help="every registered env, shipped checkpoint and dataset")
    listing.set_defaults(func=cmd_list)

    demo = subparsers.add_parser("demo",
                                 help="run policies in SyntheticMDP-v0: table and plot")
    demo.add_argument("--sessions", type=positive_int, default=2000, help="sessions per policy")
    demo.add_argument("--ppo-steps", type=int, default=61_440,
                      help="user-steps of PPO training (0 skips PPO)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--plot", default="runs/demo.png", help="where to save the plot")
    demo.set_defaults(func=cmd_demo)

    generate = subparsers.add_parser(
        "generate-logs", help="offline logs from a logging policy",
        description=f"Roll a logging policy out and write its sessions as a Parquet log. "
                    f"Sessions are generated {CHUNK_SESSIONS:,} at a time and each finished "
                    "chunk is saved beside --out (OUT.parts), so a killed run continues with "
                    "--resume to the log it would have written.")
    _add_env_options(generate)
    generate.add_argument("--policy", default="mix",
                          help=f"one of {REFERENCE_POLICIES} or a saved SB3 model (.zip)")
    generate.add_argument("--out", required=True, type=parquet_output,
                          help="output log file (.parquet) in an existing folder")
    add_resume_options(generate, "the finished chunks in OUT.parts")
    generate.set_defaults(func=cmd_generate_logs)

    evaluate = subparsers.add_parser("evaluate", help="return, CTR and coverage@r by roll-outs")
    _add_env_options(evaluate)
    evaluate.add_argument("--policy", nargs="+", default=["random"],
                          help=f"any of {REFERENCE_POLICIES} or saved SB3 models (.zip)")
    evaluate.set_defaults(func=cmd_evaluate)

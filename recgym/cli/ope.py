"""``recgym ope``: off-policy estimates of a policy on a log, table and plot.

```
recgym ope --policy runs/ppo.zip --logs logs.parquet --env SyntheticMDP-v0 \
    --logging-policy mix --plot runs/ope.png --out runs/ope.csv
```
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from recgym.cli.arguments import key_value
from recgym.cli.policies import (
    REFERENCE_POLICIES,
    SB3_ALGORITHMS,
    EnvParts,
    make_policy,
    simulator_for_env,
)
from recgym.cli.resume import add_resume_options, continues_interrupted_run, run_arguments

# recgym.evaluation.ope.ALL_ESTIMATORS (a test keeps them equal), known without importing torch
ESTIMATORS = ("dm", "ips", "snips", "dr", "switch-dr", "slate-ips", "iips", "rips", "pi", "sim")


def _env(env_id: str | None, env_args: list[tuple[str, Any]]) -> EnvParts | None:
    """The parts of a registered env (None without ``--env``)."""
    return None if env_id is None else simulator_for_env(env_id, dict(env_args))


def bootstrap_progress_file(args: argparse.Namespace) -> Path | None:
    """Where the bootstrap keeps its progress: beside ``--out``, else beside ``--plot``."""
    beside = args.out or args.plot
    return Path(f"{beside}.progress.json") if beside else None


def cmd_ope(args: argparse.Namespace) -> None:
    """Estimate a policy's value on a log; print the table, save a plot (and a CSV).

    The reward-model refits of the bootstrap save their progress beside the outputs as
    they go, so a killed run continues with ``--resume`` to the same table.
    """
    from recgym.data import LogDataset, atomic_write
    from recgym.evaluation import ope

    progress_file = bootstrap_progress_file(args)
    if progress_file is None and args.resume:
        raise ValueError("--resume needs --out or --plot: the progress is kept beside them")
    progress = None
    if progress_file is not None:
        if not continues_interrupted_run(progress_file, args):
            progress_file.unlink(missing_ok=True)
        progress = ope.BootstrapProgress(progress_file, run_arguments(
            args, "policy", "logs", "estimators", "env", "env_arg", "logging_policy", "algo",
            "stochastic", "obs_key", "num_items", "history_length", "context_column",
            "bootstrap", "alpha", "switch_tau", "sim_kind", "sim_sessions", "sim_refits", "seed"))
    dataset = LogDataset.load(args.logs)
    env = _env(args.env, args.env_arg)
    simulator = env.simulator if env else None
    keys = env.observation_keys if env else ("clicks",)
    num_items = args.num_items or dataset.num_items
    make = dict(num_items=num_items, slate_size=dataset.slate_size, simulator=simulator,
                observation_keys=tuple(args.obs_key) if args.obs_key else keys,
                algo=args.algo, seed=args.seed, trust_model=args.trust_model,
                observation_space=env.observation_space if env else None,
                action_space=env.action_space if env else None)
    policy = make_policy(args.policy, stochastic=args.stochastic, **make)
    logging = make_policy(args.logging_policy, **make) if args.logging_policy else None
    history_length = args.history_length or getattr(simulator, "history_length", 10)
    estimators = args.estimators
    if estimators is None or "sim" in estimators:
        sim = ope.SimulatorRollout(kind=args.sim_kind, n_sessions=args.sim_sessions,
                                   n_refits=args.sim_refits)
        estimators = [sim if name == "sim" else name
                      for name in (estimators or ope.ALL_ESTIMATORS)]
    table = ope.evaluate(policy, dataset, estimators, logging_policy=logging,
                         num_items=num_items, history_length=history_length,
                         context_column=args.context_column or None,
                         n_bootstrap=args.bootstrap, alpha=args.alpha, seed=args.seed,
                         switch_tau=args.switch_tau, skip_unusable=args.estimators is None,
                         bootstrap_progress=progress)
    print(ope.format_table(table))
    if args.out:
        with atomic_write(args.out) as temporary:
            temporary.write_text(table.to_csv(index=False))
        print(f"table saved to {args.out}")
    if args.plot:
        title = f"{Path(args.policy).name} on {Path(args.logs).name}"
        ope.plot_table(table, args.plot, title=title)
        print(f"plot saved to {args.plot}")
    if progress_file is not None:
        progress_file.unlink(missing_ok=True)


def add_ope_commands(subparsers: Any) -> None:
    """Add the ``ope`` subcommand to the ``recgym`` parser."""
    command = subparsers.add_parser(
        "ope", help="off-policy estimates of a policy's value on a log (table and plot)",
        description="Estimate a policy's reward per page view from logged data with "
                    "off-policy estimators and a simulator fitted on the logs.")
    command.add_argument("--policy", required=True,
                         help=f"one of {REFERENCE_POLICIES} or a saved SB3 model (.zip)")
    command.add_argument("--logs", required=True, help="Parquet (or CSV) log in recgym's schema")
    command.add_argument("--estimators", nargs="+", default=None, choices=ESTIMATORS,
                         metavar="NAME",
                         help=f"any of {', '.join(ESTIMATORS)} (default: all usable)")
    command.add_argument("--env", default=None,
                         help="registered env the logs come from (needed by max / mix and to "
                              "read a model's observation keys), e.g. SyntheticMDP-v0")
    command.add_argument("--env-arg", action="append", default=[], type=key_value,
                         metavar="KEY=VALUE", help="env constructor argument, repeatable")
    command.add_argument("--logging-policy", default=None,
                         help="the policy that wrote the logs (random, max, mix or a model): "
                              "gives the per-position propensities iips / rips / pi need")
    command.add_argument("--algo", type=str.lower, choices=SB3_ALGORITHMS, default="ppo",
                         help="SB3 algorithm of a saved model")
    command.add_argument("--trust-model", action="store_true",
                         help="unpickle a saved model's own objects (runs code from the file: "
                              "only for models from someone you trust)")
    command.add_argument("--stochastic", action="store_true",
                         help="evaluate a saved model's sampling policy (default: greedy)")
    command.add_argument("--obs-key", action="append", default=[],
                         help="observation keys a saved model reads (default: the env's)")
    command.add_argument("--num-items", type=int, default=None)
    command.add_argument("--history-length", type=int, default=None,
                         help="clicks in the rebuilt observations (default: the env's, or 10)")
    command.add_argument("--context-column", default="true_state",
                         help="column the reward model conditions on ('' for none)")
    command.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples")
    command.add_argument("--alpha", type=float, default=0.05)
    command.add_argument("--switch-tau", type=float, default=100.0)
    command.add_argument("--sim-sessions", type=int, default=1000,
                         help="sessions per roll-out of the sim estimator")
    command.add_argument("--sim-kind", choices=("choice-continuation", "count"),
                         default="choice-continuation",
                         help="what the sim estimator fits on the logs: the choice-continuation "
                              "users (fidelity's best kind) or the count simulator (conditions "
                              "on the log's context column)")
    command.add_argument("--sim-refits", type=int, default=None,
                         help="refits on resampled sessions for the sim estimator's interval "
                              "(default: 2 for choice-continuation, an ensemble; 10 for count)")
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--plot", default="runs/ope.png", help="where to save the plot")
    command.add_argument("--out", default=None, help="also save the table as CSV")
    add_resume_options(command, "the finished resamples in OUT.progress.json, else "
                                "PLOT.progress.json")
    command.set_defaults(func=cmd_ope)

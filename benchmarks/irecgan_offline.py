r"""IRecGAN's simulated online test (Bai et al. 2019, sec. 7.1, Figure 2) on SyntheticMDP-v0.

For each logging policy (random, max, mix), log size and seed: log ``n`` sessions of
SyntheticMDP-v0 (m = 10 states, n = 50 items, k = 10; world seed = run seed), train

* LSTM: U by maximum likelihood (eq. 3), recommending its top-k click scores;
* PG: A by offline REINFORCE (eq. 9 with ``q_D = 1``);
* IRecGAN: copies of that U and A trained adversarially with D (eq. 5-10);
* LSTMD: the U of that adversarial run, recommending like LSTM;

then deploy each greedily (top-k) in the true environment for 1,000 sessions and
report coverage@r (r = 1..10) and the average cumulative reward.

    python benchmarks/irecgan_offline.py --seeds 0 1 2
    python benchmarks/irecgan_offline.py --seeds 0 --sizes 200 1000 --report-only

Each finished (policy, size, seed) run is kept in ``runs/irecgan_offline.jsonl`` (rewritten
atomically; later commands with the same preset reuse finished runs); the table and plot are
rebuilt from that file into ``benchmarks/results/irecgan_offline.{md,png}``. While a command
runs, ``OUT.progress.json`` holds its arguments: a killed command continues with ``--resume``
(same arguments) to the result it would have had, ``--overwrite`` starts afresh and runs
every setting of the command again; without either, the progress is refused.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import torch

from agents.irecgan import (
    AgentTraining,
    IRecGANAgent,
    IRecGANTraining,
    UserModelPolicy,
    train_irecgan,
)
from recgym.cli.resume import add_resume_options, continues_interrupted_run, run_arguments
from recgym.data import LogDataset, atomic_write, load_progress, save_figure, save_progress
from recgym.evaluation import collect_logs, evaluate_policy
from recgym.simulators.irecgan.fit import SessionTensors, UserModelTraining, fit_user_model
from recgym.simulators.synthetic_mdp import LOGGING_POLICIES, SyntheticMDP, logging_policy

METHODS = ("LSTM", "LSTMD", "PG", "IRecGAN")
SIZES = (200, 1000, 10_000)
COVERAGE_AT = tuple(range(1, 11))


@dataclass
class Preset:
    """Model sizes and training budget of one run (the paper: embedding 50, hidden 512, 2 layers).

    Attributes:
        embedding_dim: item embedding size of U and A.
        hidden_size: LSTM hidden size of U and A.
        num_layers: LSTM layers of U and A.
        updates: target mini-batch updates for the MLE fit of U and the REINFORCE fit of A
            (epochs = updates / batches, clipped to ``[min_epochs, max_epochs]``).
        min_epochs: fewest passes over the log.
        max_epochs: most passes over the log.
        adversarial_updates: adversarial mini-batches (eq. 5-10); a log with more sessions
            than ``adversarial_updates * batch_size`` is subsampled for this stage.
        n_rollouts: Monte-Carlo completions per prefix (N of eq. 6).
        batch_size: sessions per update.
        learning_rate: Adam step size everywhere.
        eval_sessions: sessions of the online evaluation in the true environment.
    """

    embedding_dim: int = 32
    hidden_size: int = 64
    num_layers: int = 1
    updates: int = 300
    min_epochs: int = 3
    max_epochs: int = 30
    adversarial_updates: int = 32
    n_rollouts: int = 4
    batch_size: int = 64
    learning_rate: float = 1e-3
    eval_sessions: int = 1000

    def epochs(self, n_sessions: int) -> int:
        """Passes over ``n_sessions`` logged sessions that give about ``updates`` updates."""
        batches = math.ceil(n_sessions / self.batch_size)
        return min(self.max_epochs, max(self.min_epochs, math.ceil(self.updates / batches)))


def run_setting(policy: str, n_sessions: int, seed: int, preset: Preset,
                *, progress: bool = False) -> dict[str, dict[str, float]]:
    """Train the four models on one logged data set and evaluate them in the true world.

    Returns ``{method: {"return", "return_se", "ctr", "coverage@1", ..., "coverage@10"}}``.
    """
    torch.manual_seed(seed)
    world = SyntheticMDP(num_states=10, num_items=50, slate_size=10, world_seed=seed)
    frame = collect_logs(world, logging_policy(policy, world, seed=seed), n_sessions, seed=seed)
    logs = LogDataset(frame, num_items=world.num_items)
    sessions = SessionTensors.from_logs(logs)
    sizes = {"embedding_dim": preset.embedding_dim, "hidden_size": preset.hidden_size,
             "num_layers": preset.num_layers}
    epochs = preset.epochs(n_sessions)
    user = fit_user_model(logs, training=UserModelTraining(
        epochs=epochs, batch_size=preset.batch_size, learning_rate=preset.learning_rate,
        seed=seed), progress=progress, **sizes).model
    agent = IRecGANAgent(world.num_items, world.slate_size, greedy=True, seed=seed, **sizes)
    agent.fit_offline(sessions, AgentTraining(epochs=epochs, batch_size=preset.batch_size,
                                              learning_rate=preset.learning_rate, seed=seed),
                      progress=progress)
    budget = preset.adversarial_updates * preset.batch_size
    adversarial_data = sessions
    if n_sessions > budget:
        pick = torch.randperm(n_sessions, generator=torch.Generator().manual_seed(seed))
        adversarial_data = sessions.subset(pick[:budget])
    adversarial_epochs = max(1, round(budget / len(adversarial_data.lengths)))
    fit = train_irecgan(adversarial_data, user, agent, IRecGANTraining(
        epochs=adversarial_epochs, n_rollouts=preset.n_rollouts, batch_size=preset.batch_size,
        learning_rate=preset.learning_rate, seed=seed), progress=progress)
    policies = {"LSTM": UserModelPolicy(user, world.slate_size), "LSTMD": fit.lstmd(),
                "PG": agent, "IRecGAN": fit.agent}
    results = {}
    for method, deployed in policies.items():
        evaluation = evaluate_policy(world, deployed, preset.eval_sessions, seed=10**7 + seed,
                                     coverage_at=COVERAGE_AT)
        results[method] = evaluation.as_row()
    return results


def _summary(values: list[float], digits: int = 3) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {spread:.{digits}f}"


def _grouped(records: list[dict]) -> dict[tuple[str, int], dict[str, list[dict]]]:
    grouped: dict[tuple[str, int], dict[str, list[dict]]] = {}
    for record in records:
        setting = grouped.setdefault((record["policy"], record["n_sessions"]), {})
        for method, row in record["results"].items():
            setting.setdefault(method, []).append(row)
    return dict(sorted(grouped.items(), key=lambda item: (
        LOGGING_POLICIES.index(item[0][0]), item[0][1])))


def _paired(records: list[dict], policy: str, size: int, method: str, other: str) -> str:
    differences = [r["results"][method]["return"] - r["results"][other]["return"]
                   for r in records if (r["policy"], r["n_sessions"]) == (policy, size)]
    wins = sum(difference > 0 for difference in differences)
    return f"{_summary(differences)} ({wins}/{len(differences)})"


def markdown(records: list[dict], command: str, preset: Preset, seconds: float) -> str:
    """Results table: cumulative reward, coverage@1/3/5/10 per setting and method."""
    lines = [
        "# IRecGAN simulated online test (sec. 7.1, Figure 2 analogue)",
        "",
        f"Command: `{command}`",
        "",
        f"Date {date.today()}, Python {platform.python_version()}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPU cores shared with other jobs; {seconds / 60:.1f} min of runs "
        "in this file's log.",
        "",
        "SyntheticMDP-v0 with m = 10, n = 50, k = 10 (world seed = run seed). Each method is "
        "trained on the logs of one logging policy and deployed greedily (top-k) for "
        f"{preset.eval_sessions} sessions in the true environment. Mean ± std over seeds "
        "(the `seeds` column). Reduced from the paper: " + ", ".join(
            f"{key}={value}" for key, value in asdict(preset).items()) + " (the paper: "
        "embedding 50, hidden 512, 2 layers). Cumulative reward = clicks per session.",
        "",
        "| logging | sessions | seeds | method | cumulative reward | coverage@1 | coverage@3 "
        "| coverage@5 | coverage@10 |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    best_lines = []
    for (policy, size), methods in _grouped(records).items():
        means = {method: statistics.fmean(row["return"] for row in rows)
                 for method, rows in methods.items()}
        best = max(means, key=means.get)
        paired = [_paired(records, policy, size, "IRecGAN", other) for other in ("PG", "LSTMD")]
        best_lines.append(f"| {policy} | {size} | {best} | {means[best]:.3f} | "
                          + " | ".join(f"{means[m]:.3f}" for m in METHODS if m in means)
                          + " | " + " | ".join(paired) + " |")
        for method in METHODS:
            rows = methods.get(method, [])
            if not rows:
                continue
            cells = [_summary([row["return"] for row in rows])] + [
                _summary([row[f"coverage@{r}"] for row in rows]) for r in (1, 3, 5, 10)]
            lines.append(f"| {policy} | {size} | {len(rows)} | {method} | "
                         + " | ".join(cells) + " |")
    lines += ["", "## Highest mean cumulative reward per setting", "",
              "Mean reward per method, and the paired (same seed, same world and logs) "
              "difference of IRecGAN's reward to PG's and to LSTMD's: mean ± std over seeds, "
              "and the seeds where IRecGAN is higher.", "",
              "| logging | sessions | best | its reward | " + " | ".join(METHODS)
              + " | IRecGAN - PG | IRecGAN - LSTMD |",
              "|---|---:|---|---:|" + "---:|" * (len(METHODS) + 2), *best_lines, ""]
    lines += ["## Reference policies in the same worlds", "",
              f"Cumulative reward over {preset.eval_sessions} sessions of the uniformly random "
              "policy and of the oracle pi_max (top-k true rewards), per world seed.", "",
              "| seed | random | pi_max |", "|---:|---:|---:|"]
    for seed in sorted({record["seed"] for record in records}):
        world = SyntheticMDP(num_states=10, num_items=50, slate_size=10, world_seed=seed)
        returns = [evaluate_policy(world, logging_policy(name, world, seed=seed),
                                   preset.eval_sessions, seed=10**7 + seed).mean_return
                   for name in ("random", "max")]
        lines.append(f"| {seed} | {returns[0]:.3f} | {returns[1]:.3f} |")
    lines.append("")
    return "\n".join(lines)


def plot(records: list[dict], path: Path) -> None:
    """Figure 2 layout: coverage@r curves per (logging policy, size), reward bars per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = _grouped(records)
    policies = [p for p in LOGGING_POLICIES if any(key[0] == p for key in grouped)]
    sizes = sorted({key[1] for key in grouped})
    figure, axes = plt.subplots(len(policies), len(sizes) + 1, squeeze=False,
                                figsize=(3.4 * (len(sizes) + 1), 2.8 * len(policies)))
    colours = dict(zip(METHODS, ("tab:blue", "tab:cyan", "tab:orange", "tab:red"), strict=True))
    for row, policy in enumerate(policies):
        for column, size in enumerate(sizes):
            axis = axes[row, column]
            for method, rows in grouped.get((policy, size), {}).items():
                values = torch.tensor([[r[f"coverage@{k}"] for k in COVERAGE_AT] for r in rows])
                mean = values.mean(0)
                axis.plot(COVERAGE_AT, mean, marker="o", markersize=3, label=method,
                          color=colours[method])
                if len(rows) > 1:
                    spread = values.std(0)
                    axis.fill_between(COVERAGE_AT, mean - spread, mean + spread, alpha=0.15,
                                      color=colours[method])
            axis.set(title=f"pi_{policy} ({size})", xlabel="r", ylim=(0, 1))
            if column == 0:
                axis.set_ylabel("coverage@r")
        axis = axes[row, -1]
        width = 0.8 / len(METHODS)
        for index, method in enumerate(METHODS):
            means, errors = [], []
            for size in sizes:
                values = [r["return"] for r in grouped.get((policy, size), {}).get(method, [])]
                means.append(statistics.fmean(values) if values else math.nan)
                errors.append(statistics.stdev(values) if len(values) > 1 else 0.0)
            axis.bar([s + (index - 1.5) * width for s in range(len(sizes))], means, width,
                     yerr=errors, label=method, color=colours[method])
        axis.set(title=f"pi_{policy}: cumulative reward", xticks=range(len(sizes)),
                 xticklabels=[str(s) for s in sizes])
    axes[0, 0].legend(fontsize=7)
    save_figure(figure, path)


def _keep(runs: Path, record: dict, key: tuple[str, ...]) -> None:
    """Write ``record`` into the runs file in place of any run with its ``key`` values."""
    lines = runs.read_text().splitlines() if runs.exists() else []
    others = [line for line in lines
              if [json.loads(line)[name] for name in key] != [record[name] for name in key]]
    with atomic_write(runs) as temporary:
        temporary.write_text("".join(line + "\n" for line in [*others, json.dumps(record)]))


def main(argv: list[str] | None = None) -> None:
    """Run the missing (policy, size, seed) settings, then write the table and plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--policies", nargs="+", default=list(LOGGING_POLICIES),
                        choices=LOGGING_POLICIES)
    parser.add_argument("--hidden-size", type=int, default=Preset.hidden_size)
    parser.add_argument("--embedding-dim", type=int, default=Preset.embedding_dim)
    parser.add_argument("--adversarial-updates", type=int, default=Preset.adversarial_updates)
    parser.add_argument("--runs", default="runs/irecgan_offline.jsonl",
                        help="JSON-lines file of finished runs (kept; reused)")
    parser.add_argument("--out", default="benchmarks/results/irecgan_offline")
    parser.add_argument("--report-only", action="store_true",
                        help="only rebuild the table and plot from --runs")
    add_resume_options(parser, "OUT.progress.json, the arguments of the running command")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    preset = Preset(embedding_dim=args.embedding_dim, hidden_size=args.hidden_size,
                    adversarial_updates=args.adversarial_updates)
    runs, progress = Path(args.runs), Path(args.out + ".progress.json")
    if not args.report_only:
        settings = run_arguments(args, "seeds", "sizes", "policies", "hidden_size",
                                 "embedding_dim", "adversarial_updates", "runs")
        if continues_interrupted_run(progress, args):
            load_progress(progress, settings)  # refuses other arguments
        save_progress(progress, settings)
    records = [json.loads(line) for line in runs.read_text().splitlines()] \
        if runs.exists() else []
    records = [r for r in records if r["preset"] == asdict(preset)]
    done = {(r["policy"], r["n_sessions"], r["seed"]) for r in records}
    if not args.report_only:
        for seed in args.seeds:
            for size in args.sizes:
                for policy in args.policies:
                    if (policy, size, seed) in done and not args.overwrite:
                        continue
                    start = time.perf_counter()
                    results = run_setting(policy, size, seed, preset)
                    record = {"policy": policy, "n_sessions": size, "seed": seed,
                              "preset": asdict(preset), "results": results,
                              "seconds": time.perf_counter() - start}
                    _keep(runs, record, ("policy", "n_sessions", "seed", "preset"))
                    records = [r for r in records
                               if (r["policy"], r["n_sessions"], r["seed"]) != (policy, size, seed)]
                    records.append(record)
                    print(f"{policy:6s} {size:6d} seed {seed}: " + ", ".join(
                        f"{m} {results[m]['return']:.2f}" for m in METHODS)
                        + f" ({record['seconds']:.0f} s)", flush=True)
    if not records:
        raise SystemExit(f"no finished runs in {runs} for this preset; run without --report-only")
    command = " ".join(["python benchmarks/irecgan_offline.py", *(
        argument for argument in (sys.argv[1:] if argv is None else argv)
        if argument not in ("--resume", "--overwrite"))])
    seconds = sum(r["seconds"] for r in records)
    with atomic_write(args.out + ".md") as temporary:
        temporary.write_text(markdown(records, command, preset, seconds))
    plot(records, Path(args.out + ".png"))
    print(f"wrote {args.out}.md and {args.out}.png")
    if not args.report_only:
        progress.unlink()


if __name__ == "__main__":
    main()

r"""IRecGAN's real-data rerank test (Bai et al. 2019, sec. 7.2, Table 1) on DIGINETICA.

For each seed: DIGINETICA sessions become IRecGAN sequences
(:func:`recgym.simulators.irecgan.sessions_data.diginetica_logs`: the most viewed items,
sessions of 2 to 40 views, lists of the clicked item and items active around it, an end
view per session), split at random by session. Then, on the training sessions:

* LSTM: U fitted by maximum likelihood (eq. 3; the best of its epochs on 10% of the
  training sessions).
* PG: A by REINFORCE (eq. 9, ``q_D = 1``) for ``pretrain + epochs`` epochs.
* PGIS, AC: A by importance-weighted REINFORCE / actor-critic, as many epochs.
* PGU: PG after ``pretrain`` epochs, then ``epochs`` epochs with U's generated sessions.
* ACU: AC after ``pretrain`` epochs, then ``epochs`` epochs with U's generated sessions.
* IRecGAN: PG after ``pretrain`` epochs, then ``epochs`` adversarial epochs (eq. 5-10,
  ``agents.irecgan.train_irecgan``), which also train a copy of U: that copy is LSTMD.

Every model reranks each clicked test step's list; P@k is the share of steps with the
click in its top k (random tie-breaking, in expectation). Popularity (training clicks),
Repeat (clicks of the item earlier in the session) and random order are references the
paper does not report.

    python benchmarks/irecgan_diginetica.py --root ../shared/data/diginetica-cikm2016 \\
        --seeds 0 1 2

Results (mean +- std over seeds) go to benchmarks/results/irecgan_diginetica.md. Each
finished seed is kept in ``OUT.progress.json`` (atomically): a killed run continues with
``--resume`` (same arguments) from the next seed, to the table it would have written;
``--overwrite`` starts afresh; without either, the progress is refused.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

from agents.irecgan import AgentTraining, IRecGANAgent, IRecGANTraining, train_irecgan
from agents.irecgan_baselines import (
    AC,
    PGIS,
    PGU,
    BaselineTraining,
    agent_list_scores,
    display_propensities,
    user_model_list_scores,
    with_click_rewards,
)
from recgym.cli.resume import add_resume_options, continues_interrupted_run, run_arguments
from recgym.data import atomic_write, load_diginetica, load_progress, save_progress
from recgym.simulators.irecgan.fit import SessionTensors, UserModelTraining, fit_user_model
from recgym.simulators.irecgan.sessions_data import (
    diginetica_logs,
    rerank_precision,
    rerank_split,
)

# Table 1 of the paper (CIKM Cup 2016, random splitting): P@10, P@1 in %
PAPER = {"LSTM": (32.89, 8.20), "LSTMD": (33.42, 8.55), "PG": (33.28, 6.25),
         "PGIS": (28.13, 4.61), "AC": (31.93, 6.54), "PGU": (34.12, 6.44),
         "ACU": (32.43, 6.63), "IRecGAN": (35.06, 6.79)}


def _summary(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    spread = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {spread:.2f}"


def repeat_scores(sessions: SessionTensors) -> torch.Tensor:
    """``(B, T, L)``: how often each listed item was clicked earlier in the session.

    A reference ranker for repeat views, which are common in DIGINETICA sessions.
    """
    k = sessions.slates.shape[-1]
    clicks = torch.where(sessions.mask & (sessions.positions < k), sessions.clicked, -1)
    width = clicks.shape[1]
    earlier = torch.arange(width)[None, :] < torch.arange(width)[:, None]  # (t, t')
    same = sessions.slates[..., None] == clicks[:, None, None, :]  # (B, T, L, T')
    return (same & earlier[None, :, None, :]).sum(-1).float()


def run_seed(data, args: argparse.Namespace,
             seed: int) -> tuple[dict[str, torch.Tensor], SessionTensors, dict]:
    """Train every model for one seed: their test list scores, the test sessions, sizes."""
    logs = diginetica_logs(data, num_items=args.num_items, list_size=args.list_size,
                           lists=args.lists, seed=seed)
    split = rerank_split(logs, test_fraction=args.test_fraction, seed=seed)
    train, test = split.train, split.test
    sizes = {"embedding_dim": args.embedding_dim, "hidden_size": args.hidden_size,
             "num_layers": args.num_layers}
    n, k = args.num_items, args.list_size

    def new_agent() -> IRecGANAgent:
        return IRecGANAgent(n, k, greedy=True, seed=seed, **sizes)

    def baseline(epochs: int) -> BaselineTraining:
        return BaselineTraining(epochs=epochs, learning_rate=args.learning_rate,
                                max_steps=args.max_steps, seed=seed)

    total = args.pretrain_epochs + args.epochs
    scores: dict[str, torch.Tensor] = {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        print(f"  seed {seed}: {name} trained in {now - clock[0]:.0f} s", flush=True)
        clock[0] = now
    user = fit_user_model(split.train_logs, training=UserModelTraining(
        epochs=args.user_epochs, seed=seed), progress=False, **sizes).model
    scores["LSTM"] = user_model_list_scores(user, test)
    lap("LSTM")

    click_train = with_click_rewards(train, 3.0)
    pg = new_agent().fit_offline(click_train, AgentTraining(
        epochs=total, learning_rate=args.learning_rate, seed=seed), progress=False)
    scores["PG"] = agent_list_scores(pg.network, test)
    lap("PG")
    warm = new_agent().fit_offline(click_train, AgentTraining(
        epochs=args.pretrain_epochs, learning_rate=args.learning_rate, seed=seed),
        progress=False)

    pgis = PGIS(new_agent(), display_propensities(train, n), baseline(total)).fit(
        train, progress=False)
    scores["PGIS"] = agent_list_scores(pgis.agent.network, test)
    lap("PGIS")

    ac = AC(new_agent(), baseline(args.pretrain_epochs)).fit(train, progress=False)
    acu = ac.with_user_model(user)
    acu.training = baseline(args.epochs)
    acu.fit(train, progress=False)
    ac.training = baseline(args.epochs)
    ac.fit(train, progress=False)
    scores["AC"] = agent_list_scores(ac.agent.network, test)
    lap("AC and ACU")

    pgu = PGU(warm.copy(), user, baseline(args.epochs)).fit(train, progress=False)
    scores["PGU"] = agent_list_scores(pgu.agent.network, test)
    lap("PGU")
    scores["ACU"] = agent_list_scores(acu.agent.network, test)

    adversarial = train_irecgan(train, user, warm, IRecGANTraining(
        epochs=args.epochs, n_rollouts=args.rollouts, max_steps=args.max_steps,
        learning_rate=args.learning_rate, seed=seed))
    irecgan = adversarial.agent
    scores["LSTMD"] = user_model_list_scores(adversarial.user_model, test)
    scores["IRecGAN"] = agent_list_scores(irecgan.network, test)
    lap("IRecGAN and LSTMD")

    popularity = torch.bincount(train.clicked[train.mask & (train.positions < k)],
                                minlength=n).float()
    scores["Popularity"] = popularity[test.slates]
    scores["Repeat"] = repeat_scores(test)
    scores["Random"] = torch.zeros(test.slates.shape)
    diagnostics = {"pgis_weight": pgis.history[-1]["weight"],
                   "pgis_clipped": pgis.history[-1]["clipped"],
                   "irecgan_q_d": irecgan.history[-1]["q_d"],
                   "pgu_length": pgu.history[-1]["generated_length"],
                   "train_length": float(train.lengths.float().mean())}
    return scores, test, {**split.stats, **diagnostics}


ORDER = ["LSTM", "LSTMD", "PG", "PGIS", "AC", "PGU", "ACU", "IRecGAN", "Popularity",
         "Repeat", "Random"]


def run(args: argparse.Namespace, runs: list[dict] | None = None,
        finished=None) -> list[dict]:
    """The seeds not in ``runs`` (those an interrupted run finished, in seed order).

    Returns every seed's ``{"precision": {model: [P@1, P@10]}, "stats": {...}}``;
    ``finished(runs)`` is called after each new seed.
    """
    torch.set_num_threads(1)
    runs = list(runs or [])
    data = load_diginetica(args.root) if len(runs) < len(args.seeds) else None
    for seed in args.seeds[len(runs):]:
        started = time.perf_counter()
        scores, test, info = run_seed(data, args, seed)
        precision = {}
        for name in ORDER:
            cuts = rerank_precision(scores[name], test.positions, test.mask)
            precision[name] = [float(cuts[1]), float(cuts[10])]
        runs.append({"precision": precision,
                     "stats": {key: value.item() if hasattr(value, "item") else value
                               for key, value in info.items()}})
        if finished is not None:
            finished(runs)
        print(f"seed {seed} done in {time.perf_counter() - started:.0f} s: " + ", ".join(
            f"{name} {100 * precision[name][1]:.1f}/{100 * precision[name][0]:.1f}"
            for name in ORDER), flush=True)
    return runs


def markdown(args: argparse.Namespace, runs: list[dict], command: str) -> list[str]:
    """The Markdown lines of the results of every seed."""
    order = ORDER
    results = {name: {1: [run["precision"][name][0] for run in runs],
                      10: [run["precision"][name][1] for run in runs]} for name in order}
    stats = [run["stats"] for run in runs]
    first = stats[0]
    lines = ["# IRecGAN rerank test on DIGINETICA (paper Table 1 analogue)", "",
             f"Command: `{command}` ({date.today().isoformat()}; {os.cpu_count()} cores, "
             f"{platform.machine()}, torch {torch.__version__}).", "",
             f"Data: DIGINETICA sample (SR-GNN's `sample_train-item-views.csv`, sessions "
             f"1..3999, with purchases), the {first['items']:,} most viewed items, sessions "
             f"of 2-40 views; {first['train_sessions']:,} training / "
             f"{first['test_sessions']:,} test sessions ({first['train_clicks']:,} / "
             f"{first['test_clicks']:,} clicked steps, {first['train_purchases']} / "
             f"{first['test_purchases']} purchases; seed {args.seeds[0]}). Lists: "
             f"{first['list_size']} items, the click and "
             + ("items drawn by their activity around it" if args.lists == "activity" else
                "items drawn uniformly from the kept ones")
             + f" (`--lists {args.lists}`; the logged "
             f"search result lists are not in the data copy). Models: embedding "
             f"{args.embedding_dim}, LSTM hidden {args.hidden_size}, {args.num_layers} "
             f"layer(s); U {args.user_epochs} epochs; agents {args.pretrain_epochs} + "
             f"{args.epochs} epochs; generated sessions cut at {args.max_steps} steps; IRecGAN "
             f"{args.rollouts} roll-outs per prefix. Mean ± std "
             f"over seeds {args.seeds} (each seed: its own lists, split and initialisation).",
             "", "| model | P@10 (%) | P@1 (%) | paper P@10 (%) | paper P@1 (%) |",
             "|---|---|---|---|---|"]
    for name in order:
        paper = PAPER.get(name)
        cited = f"{paper[0]:.2f} | {paper[1]:.2f}" if paper else "- | -"
        lines.append(f"| {name} | {_summary(results[name][10])} | "
                     f"{_summary(results[name][1])} | {cited} |")
    lines += ["", "Diagnostics (last epoch, mean over seeds): PGIS mean importance weight "
              f"{statistics.fmean(s['pgis_weight'] for s in stats):.3f}, share clipped "
              f"{statistics.fmean(s['pgis_clipped'] for s in stats):.3f}; IRecGAN mean q_D "
              f"of generated steps {statistics.fmean(s['irecgan_q_d'] for s in stats):.3f}; "
              "mean length of the sessions U generates with PGU's agent "
              f"{statistics.fmean(s['pgu_length'] for s in stats):.1f} steps, of the training "
              f"sessions {statistics.fmean(s['train_length'] for s in stats):.1f} (end view "
              "included)."]
    return lines


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run (or continue a killed run), write the results table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/data/diginetica-cikm2016",
                        help="folder of the DIGINETICA files")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--num-items", type=int, default=2000, help="most viewed items kept")
    parser.add_argument("--list-size", type=int, default=50, help="items per reranked list")
    parser.add_argument("--lists", choices=("activity", "uniform"), default="activity",
                        help="how the other items of a list are drawn: by activity around "
                             "the step's time, or uniformly from the kept items")
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--user-epochs", type=int, default=20)
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5,
                        help="adversarial / generated-data epochs after pre-training")
    parser.add_argument("--rollouts", type=int, default=4, help="N of eq. 6")
    parser.add_argument("--max-steps", type=int, default=20,
                        help="cut sessions generated by U (PGU, ACU, IRecGAN) at this length")
    parser.add_argument("--out", help="results file")
    add_resume_options(parser, "OUT.progress.json, one entry per finished seed")
    args = parser.parse_args(argv)
    out = Path(args.out or "benchmarks/results/irecgan_diginetica.md")
    progress = out.with_suffix(".progress.json")
    settings = run_arguments(args, "root", "seeds", "num_items", "list_size", "lists",
                             "test_fraction", "embedding_dim", "hidden_size", "num_layers",
                             "learning_rate", "user_epochs", "pretrain_epochs", "epochs",
                             "rollouts", "max_steps")
    runs = load_progress(progress, settings)["runs"] \
        if continues_interrupted_run(progress, args) else []
    runs = run(args, runs, lambda runs: save_progress(progress, settings, runs=runs))
    command = " ".join(["python benchmarks/irecgan_diginetica.py", *(
        argument for argument in (sys.argv[1:] if argv is None else argv)
        if argument not in ("--resume", "--overwrite"))])
    lines = markdown(args, runs, command)
    with atomic_write(out) as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    progress.unlink(missing_ok=True)


if __name__ == "__main__":
    main()

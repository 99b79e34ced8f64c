"""Recall@20, Recall@50, NDCG@100 of popularity, EASE, Mult-DAE, Mult-VAE, RaCT and CF-SFL.

Usage::

    python benchmarks/cf_quality.py --data ml-100k --seeds 0 1 2 --runs /tmp/cf_runs
    python benchmarks/cf_quality.py --report --runs /tmp/cf_runs > benchmarks/results/cf_quality.md

Each dataset is binarised and split once (Liang et al. preprocessing, seed 98765, 10% of the
users for validation and 10% for test); seeds vary the model initialisation and training.
Every run keeps its best-validation-NDCG@100 epoch, as Liang et al. and RaCT do. EASE's
lambda is chosen on the validation users. ``--schedule paper`` uses RaCT Table 5's ML-20M
epochs (VAE/DAE 200; RaCT 150 + 50 + 50; CF-SFL 150 + 10 + 50, T = 8), ``--schedule netflix``
its Netflix column (100; 75 + 50 + 25; 75 + 10 + 25, anneal over 75 epochs).

Each finished (model, seed) run is its record ``RUNS/<data>/<model>-<data>-seed<seed>.json``,
written atomically; while a command runs, ``RUNS/<data>.progress.json`` lists its finished
records. A killed command continues with ``--resume`` (same arguments) from the next run,
to the records it would have written; ``--overwrite`` starts afresh. Without either, an
interrupted command's progress, or a record this command would write, is refused.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from recgym.cli.resume import add_resume_options, continues_interrupted_run, run_arguments
from recgym.data import atomic_write, load_progress, save_progress

SCHEDULES = {
    "paper": {
        "mult-vae": {"epochs": 200, "anneal_epochs": 100},
        "mult-dae": {"epochs": 200},
        "ract": {"actor_epochs": 150, "critic_epochs": 50, "ac_epochs": 50,
                 "anneal_epochs": 100},
        "cf-sfl": {"pretrain_epochs": 150, "reward_epochs": 10, "joint_epochs": 50,
                   "anneal_epochs": 100, "steps": 8},
    },
    "netflix": {
        "mult-vae": {"epochs": 100, "anneal_epochs": 75},
        "mult-dae": {"epochs": 100},
        "ract": {"actor_epochs": 75, "critic_epochs": 50, "ac_epochs": 25, "anneal_epochs": 75},
        "cf-sfl": {"pretrain_epochs": 75, "reward_epochs": 10, "joint_epochs": 25,
                   "anneal_epochs": 75, "steps": 8},
    },
}
ORDER = ["popularity", "ease", "mult-dae", "mult-vae", "ract", "cf-sfl"]
METRICS = ["recall@20", "recall@50", "ndcg@100"]
PAPER = {  # ML-20M, RaCT Table 1 / CF-SFL Table 3
    "ease": (0.391, 0.521, 0.420), "mult-dae": (None, None, 0.4205),
    "mult-vae": (0.395, 0.537, 0.426), "ract": (0.403, 0.543, 0.434),
    "cf-sfl": (0.404, 0.542, 0.435),
}


def train_all(args: argparse.Namespace) -> None:
    """Train every model and seed on one dataset; one JSON record per run, kept as it finishes."""
    from agents.cf import EASE
    from agents.cf.train import load_cf_data

    torch.set_num_threads(args.threads)
    data = load_cf_data(args.data, heldout=args.heldout)
    out = Path(args.runs) / data.name
    units = [(kind, seed) for seed in args.seeds for kind in args.models  # popularity and
             if kind not in ("popularity", "ease") or seed == args.seeds[0]]  # EASE: 1 seed
    progress = Path(args.runs) / f"{data.name}.progress.json"
    settings = run_arguments(args, "data", "heldout", "seeds", "models", "schedule",
                             "batch_size", "overrides")
    continuing = continues_interrupted_run(progress, args)
    done = load_progress(progress, settings)["done"] if continuing else []
    if not (continuing or args.overwrite):
        for kind, seed in units:
            record = out / f"{kind}-{data.name}-seed{seed}.json"
            if record.exists():
                raise FileExistsError(f"{record} holds a finished run: pass --overwrite to run "
                                      "it again, or choose another --runs folder")
    out.mkdir(parents=True, exist_ok=True)
    save_progress(progress, settings, done=done)
    with atomic_write(out / "split.txt") as temporary:
        temporary.write_text(data.summary + "\n")
    print(data.summary, flush=True)
    lam_file = out / "ease_lambda.json"
    if "ease" in args.models and not lam_file.exists():
        scores = {}
        for lam in (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0):
            res = EASE(data.num_items, l2=lam).fit(data.train).evaluate(*data.valid)
            scores[lam] = res["ndcg@100"].mean
            print(f"EASE lambda={lam}: valid NDCG@100 {scores[lam]:.4f}", flush=True)
        with atomic_write(lam_file) as temporary:
            temporary.write_text(json.dumps({"lambda": max(scores, key=scores.get),
                                             "valid_ndcg@100": scores}))
    for kind, seed in units:
        stem = f"{kind}-{data.name}-seed{seed}"
        if stem in done:
            continue
        start = time.time()
        rec = train_one(kind, seed, data, out, args)
        with atomic_write(out / f"{stem}.json") as temporary:
            temporary.write_text(json.dumps(rec, default=str))
        done.append(stem)
        save_progress(progress, settings, done=done)
        print(f"{kind} seed {seed}: " + ", ".join(
            f"{m} {rec['test'][m]['mean']:.4f}" for m in METRICS)
              + f" ({time.time() - start:.0f}s)", flush=True)
        ckpt = out / f"{stem}.pt"
        if ckpt.exists() and not args.keep_checkpoints:
            ckpt.unlink()
    progress.unlink()


def train_one(kind: str, seed: int, data, out: Path, args: argparse.Namespace) -> dict:
    """Train and test one model with one seed: its record, with the schedule and machine."""
    from agents.cf.train import run
    from recgym.cli.arguments import key_value

    overrides = dict(SCHEDULES[args.schedule].get(kind, {}))
    if args.batch_size and kind not in ("ease", "popularity"):
        overrides["batch_size"] = args.batch_size
    if kind not in ("ease", "popularity"):
        overrides.update(map(key_value, args.overrides))
    if kind == "ease":
        overrides["l2"] = json.loads((out / "ease_lambda.json").read_text())["lambda"]
    rec = run(kind, data, seed=seed, out_dir=out, progress=False, overrides=overrides)
    rec["schedule"] = args.schedule + (f", batch {args.batch_size}" if args.batch_size else "")
    rec["machine"] = f"{platform.processor() or platform.machine()}, " \
                     f"torch {torch.__version__}, {args.threads} thread(s)"
    return rec


def _fmt(values: list[float], interval: bool = False) -> str:
    """Mean ± standard error over seeds; with ``interval``, also its 95% t interval."""
    if not values:
        return "–"
    mean = float(np.mean(values))
    if len(values) == 1:
        return f"{mean:.4f}"
    sem = np.std(values, ddof=1) / math.sqrt(len(values))
    text = f"{mean:.4f} ± {sem:.4f}"
    if interval:
        half = stats.t.ppf(0.975, len(values) - 1) * sem
        text += f" [{mean - half:+.4f}, {mean + half:+.4f}]"
    return text


def report(args: argparse.Namespace) -> None:
    """Print the Markdown tables of every dataset folder under ``--runs``."""
    root = Path(args.runs)
    lines = ["# Collaborative filtering: offline quality", "",
             "Generated by `python benchmarks/cf_quality.py --report` from the runs listed "
             "below (see the commands in the section of each dataset).", ""]
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        recs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))
                if p.name != "ease_lambda.json"]
        if not recs:
            continue
        schedule = {r.get("schedule") for r in recs if r["model"] not in ("ease", "popularity")}
        lines += [f"## {folder.name}", "", "Split:", "", "```",
                  (folder / "split.txt").read_text().strip(),
                  "```", "",
                  f"Schedule: {', '.join(sorted(s for s in schedule if s))}. "
                  f"Machine: {recs[0].get('machine', '?')}.", "",
                  "| model | seeds | Recall@20 | Recall@50 | NDCG@100 | per-user s.e. NDCG | "
                  "train s |", "|---|---|---|---|---|---|---|"]
        by_model: dict[str, list[dict]] = {}
        for r in recs:
            by_model.setdefault(r["model"], []).append(r)
        base = {r["seed"]: r["test"]["ndcg@100"]["mean"] for r in by_model.get("mult-vae", [])}
        for kind in ORDER:
            rs = by_model.get(kind, [])
            if not rs:
                continue
            cells = [_fmt([r["test"][m]["mean"] for r in rs]) for m in METRICS]
            per_user = np.mean([r["test"]["ndcg@100"]["sem"] for r in rs])
            secs = np.mean([r["train_seconds"] for r in rs])
            lines.append(f"| {kind} | {len(rs)} | " + " | ".join(cells)
                         + f" | {per_user:.4f} | {secs:.0f} |")
        lines += ["", "Paired difference in test NDCG@100 against Mult-VAE (same seed):", ""]
        for kind in ("mult-dae", "ract", "cf-sfl", "ease", "popularity"):
            diffs = [r["test"]["ndcg@100"]["mean"] - base[r["seed"]]
                     for r in by_model.get(kind, []) if r["seed"] in base]
            if kind in ("ease", "popularity") and base:
                r0 = by_model.get(kind, [])
                diffs = [r0[0]["test"]["ndcg@100"]["mean"] - b for b in base.values()] if r0 else []
            if diffs:
                lines.append(f"* {kind}: {_fmt(diffs, interval=True)} ({len(diffs)} seed(s))")
        stage_lines, gain_lines = [], []
        for kind, first, last in (("ract", "actor", "actor-critic"),
                                  ("cf-sfl", "recommender", "joint")):
            gains = []
            for r in sorted(by_model.get(kind, []), key=lambda r: r["seed"]):
                v1 = [h["valid_ndcg@100"] for h in r["history"] if h["stage"] == first]
                v3 = [h["valid_ndcg@100"] for h in r["history"] if h["stage"] == last]
                if v1 and v3:
                    gains.append(max(v3) - max(v1))
                    stage_lines.append(f"| {kind} | {r['seed']} | {max(v1):.4f} | {max(v3):.4f} "
                                       f"| {gains[-1]:+.4f} |")
            if gains:
                gain_lines.append(f"* {kind}: {_fmt(gains, interval=True)} ({len(gains)} seed(s))")
        if stage_lines:
            lines += ["", "Best validation NDCG@100 before (stage 1) and during the last stage "
                      "(the kept model is the better of the two):", "",
                      "| model | seed | stage 1 | stage 3 | gain |", "|---|---|---|---|---|",
                      *stage_lines, "", "Mean stage-3 gain (95% t interval):", "", *gain_lines]
        lines.append("")
    lines += ["## Paper values (ML-20M)", "",
              "| model | Recall@20 | Recall@50 | NDCG@100 | source |", "|---|---|---|---|---|"]
    src = {"ease": "RaCT Table 1", "mult-dae": "RaCT Table 2 (actor before RaCT)",
           "mult-vae": "RaCT Table 1", "ract": "RaCT Table 1", "cf-sfl": "CF-SFL Table 3"}
    for kind, vals in PAPER.items():
        lines.append(f"| {kind} | " + " | ".join("–" if v is None else f"{v:.3f}" for v in vals)
                     + f" | {src[kind]} |")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="ml-100k")
    p.add_argument("--heldout", type=float, default=0.1)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--models", nargs="+", default=ORDER)
    p.add_argument("--schedule", choices=sorted(SCHEDULES), default="paper")
    p.add_argument("--runs", default="/tmp/cf_runs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=None,
                   help="users per update for the neural models (default: the paper's 500)")
    p.add_argument("--keep-checkpoints", action="store_true")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config option for the neural models, e.g. reward_loss=paper")
    p.add_argument("--report", action="store_true")
    add_resume_options(p, "RUNS/<data>.progress.json, the finished runs of this command")
    args = p.parse_args(argv)
    if args.report:
        report(args)
    else:
        train_all(args)


if __name__ == "__main__":
    sys.exit(main())

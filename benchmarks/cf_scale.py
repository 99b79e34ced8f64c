"""Training time per epoch and peak memory at ML-20M scale, and evaluation time of 10K users.

Usage::

    python benchmarks/cf_scale.py --batches 6 > benchmarks/results/cf_scale.md

A synthetic binary matrix with ML-20M's shape (136,677 users x 20,108 items, ~10M
interactions; RaCT Table 3) is drawn with power-law item popularity (Zipf exponent 1) and
log-normal user activity (at least 5 items). 116,677 users train, 10,000 are held out with
an 80/20 fold-in / target split. Each measurement runs in a fresh subprocess (so its peak
resident memory, ``ru_maxrss``, is its own): a few mini-batches (500 users, densified one at a
time; the matrix stays sparse) of Mult-VAE MLE training, RaCT stage 3 (one actor step and
one critic step per batch), CF-SFL stage 3 at T = 0, 1 and 8 (the cost per unrolled step is
the slope in T), and the evaluation of 10,000 held-out users over all 20,108 items.
Epoch times are the measured seconds per batch times the 234 batches of an epoch.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import scipy.sparse as sp
import torch

N_USERS, N_ITEMS, NNZ, N_HELD = 136_677, 20_108, 10_000_000, 10_000


def synthetic(seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
    """Train matrix and held-out fold-in / target of ML-20M size, power-law popularity."""
    pop = 1.0 / np.arange(1, N_ITEMS + 1)
    pop /= pop.sum()
    factor = 1.3
    for _ in range(4):  # draws repeat popular items; scale up until ~10M distinct pairs
        rng = np.random.default_rng(seed)
        activity = rng.lognormal(0.0, 1.0, N_USERS)
        counts = np.maximum(5, np.round(activity / activity.sum() * NNZ * factor))
        rows = np.repeat(np.arange(N_USERS), counts.astype(np.int64))
        cols = rng.choice(N_ITEMS, size=len(rows), p=pop)
        x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), (N_USERS, N_ITEMS))
        x.sum_duplicates()
        x.data[:] = 1.0
        if abs(x.nnz - NNZ) < 0.02 * NNZ:
            break
        factor *= NNZ / x.nnz * 1.02
    train = x[:N_USERS - 2 * N_HELD]
    held = x[N_USERS - N_HELD:].tocoo()
    is_target = rng.random(held.nnz) < 0.2
    def part(mask: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((held.data[mask], (held.row[mask], held.col[mask])), held.shape)
    return sp.csr_matrix(train), part(~is_target), part(is_target)


def measure(what: str, batches: int, threads: int) -> dict:
    """One measurement (in this process): seconds per batch or per evaluation, peak RSS."""
    torch.set_num_threads(threads)
    from agents.cf import CFSFL, MultVAE, RaCT

    t0 = time.perf_counter()
    train, fold_in, target = synthetic()
    gen_seconds = time.perf_counter() - t0
    sub = train[: batches * 500]
    out: dict = {"what": what, "train_nnz": int(train.nnz), "gen_seconds": gen_seconds}
    if what == "mult-vae":
        model = MultVAE(N_ITEMS)
        model.train()
        model._mle_epoch(sub[:500], 0)  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        model._mle_epoch(sub, 0)
    elif what == "ract-stage3":
        model = RaCT(N_ITEMS)
        model.train()
        model._ac_epoch(sub[:500], 0)
        start, cpu = time.perf_counter(), time.process_time()
        model._ac_epoch(sub, 0)
    elif what.startswith("cf-sfl-T"):
        model = CFSFL(N_ITEMS, steps=int(what.removeprefix("cf-sfl-T")))
        model.train()
        model._joint_epoch(sub[:500], 0)
        start, cpu = time.perf_counter(), time.process_time()
        model._joint_epoch(sub, 0)
    elif what.startswith("evaluate"):
        model = MultVAE(N_ITEMS) if what == "evaluate-vae" else CFSFL(N_ITEMS, steps=8)
        if isinstance(model, CFSFL):
            model.loop_trained.fill_(True)
        start, cpu = time.perf_counter(), time.process_time()
        res = model.evaluate(fold_in, target)
        out["seconds"] = time.perf_counter() - start
        out["cpu_seconds"] = time.process_time() - cpu
        out["users"] = res["ndcg@100"].n_users
    else:
        raise ValueError(what)
    if "seconds" not in out:
        per_batch = (time.perf_counter() - start) / batches
        n_batches = int(np.ceil(train.shape[0] / 500))
        out["seconds_per_batch"] = per_batch
        out["epoch_seconds"] = per_batch * n_batches
        out["cpu_seconds_per_batch"] = (time.process_time() - cpu) / batches
        out["cpu_epoch_seconds"] = out["cpu_seconds_per_batch"] * n_batches
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def main() -> None:
    """Run every measurement in a subprocess and print a Markdown table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.batches, args.threads)))
        return
    whats = ["evaluate-vae", "mult-vae", "ract-stage3", "cf-sfl-T0", "cf-sfl-T1", "cf-sfl-T8",
             "evaluate-cfsfl-T8"]
    results = {}
    for what in whats:
        proc = subprocess.run([sys.executable, __file__, "--one", what, "--batches",
                               str(args.batches), "--threads", str(args.threads)],
                              capture_output=True, text=True, check=True)
        results[what] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{what}: {results[what]}", file=sys.stderr, flush=True)
    r = results
    lines = [
        "# Collaborative filtering at ML-20M scale: time and memory", "",
        f"Command: `python benchmarks/cf_scale.py --batches {args.batches} "
        f"--threads {args.threads}`. Machine: {platform.machine()}, "
        f"{platform.processor() or 'CPU'}, torch {torch.__version__}, "
        f"{args.threads} thread(s), shared with other jobs (timings are upper bounds).", "",
        f"Synthetic matrix: {N_USERS:,} users x {N_ITEMS:,} items, "
        f"~10M interactions in total, {r['mult-vae']['train_nnz']:,} of them in the 116,677 "
        "training users, "
        "Zipf(1) item popularity; input kept as scipy CSR, densified 500 users at a time.", "",
        "Wall-clock seconds suffer from the other jobs on the machine; CPU seconds (process "
        "time, one thread) are the better measure of the work.", "",
        "| what | wall s / batch of 500 | CPU s / batch | CPU s / epoch (234 batches) | "
        "peak RSS (GiB) |",
        "|---|---|---|---|---|",
    ]
    names = {"mult-vae": "Mult-VAE (MLE)", "ract-stage3": "RaCT stage 3 (actor + critic step)",
             "cf-sfl-T0": "CF-SFL stage 3, T = 0", "cf-sfl-T1": "CF-SFL stage 3, T = 1",
             "cf-sfl-T8": "CF-SFL stage 3, T = 8"}
    for key, label in names.items():
        m = r[key]
        lines.append(f"| {label} | {m['seconds_per_batch']:.2f} | "
                     f"{m['cpu_seconds_per_batch']:.2f} | {m['cpu_epoch_seconds']:.0f} | "
                     f"{m['peak_rss_gib']:.2f} |")
    slope = (r["cf-sfl-T8"]["cpu_seconds_per_batch"]
             - r["cf-sfl-T0"]["cpu_seconds_per_batch"]) / 8
    lines += ["", f"CF-SFL cost per unrolled step (slope T = 0 -> 8): {slope:.2f} CPU s per "
              f"batch, {slope * 234:.0f} CPU s per epoch.", "",
              "| evaluation of 10,000 held-out users x 20,108 items | wall s | CPU s | "
              "peak RSS (GiB) |", "|---|---|---|---|"]
    for key, label in (("evaluate-vae", "Mult-VAE"),
                       ("evaluate-cfsfl-T8", "CF-SFL, T = 8 unrolled inference")):
        m = r[key]
        lines.append(f"| {label} | {m['seconds']:.1f} | {m['cpu_seconds']:.1f} | "
                     f"{m['peak_rss_gib']:.2f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Data-parallel fitting with 1 and 2 processes (torchrun, gloo): time per epoch, final metrics.

    python benchmarks/distributed_fit.py                 # -> results/distributed_fit.md
    python benchmarks/distributed_fit.py --vae-epochs 20 --recsimu-epochs 3

Mult-VAE runs the ``recgym train`` command itself under
``torchrun --nproc-per-node N -m recgym.cli train mult-vae --data ml-1m-lcf ...`` and reads
the record rank 0 writes (per-epoch training seconds, losses, test metrics). RecSimu runs
this script as the torchrun worker (``--worker recsimu``): item embeddings are learned
before the clock starts (they are not data-parallel), then ``fit_recsimu`` is timed; its
seconds per epoch include each epoch's validation, which every rank repeats. Both runs
use the same global batch (500) and seed, so their loss curves should agree up to the order
of floating-point sums; the table shows the largest difference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from recgym.data import atomic_write

RESULTS = Path(__file__).resolve().parent / "results"
RECSIMU_DATA = "ml-latest-small"
VAE_DATA = "ml-1m-lcf"


def torchrun(nproc: int, arguments: list[str]) -> float:
    """Run ``torchrun --nproc-per-node nproc ARGUMENTS`` (one thread each); wall seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
               "--master-port", str(29500 + nproc), *arguments]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    return time.perf_counter() - started


def recsimu_worker(args: argparse.Namespace) -> None:
    """Torchrun worker: fit RecSimu data-parallel, rank 0 writes a JSON summary."""
    from recgym.core.distributed import init_data_parallel
    from recgym.simulators.recsimu.data import BrowsingSequences, load_browsing_logs
    from recgym.simulators.recsimu.embeddings import train_item_embeddings
    from recgym.simulators.recsimu.fit import RecSimuTraining, fit_recsimu
    from recgym.simulators.recsimu.model import RecSimuConfig

    torch.set_num_threads(1)
    parallel = init_data_parallel()
    logs, num_items = load_browsing_logs(RECSIMU_DATA)
    training = RecSimuTraining(generator_pretrain_epochs=args.recsimu_epochs,
                               discriminator_pretrain_epochs=args.recsimu_epochs,
                               adversarial_epochs=args.recsimu_epochs, embedding_epochs=2)
    config = RecSimuConfig(num_items=num_items, num_feedback=2)
    sessions = [s for s in BrowsingSequences.from_logs(logs).sessions() if len(s) > 1]
    vectors = train_item_embeddings(sessions, num_items, dim=config.item_dim,
                                    epochs=training.embedding_epochs, seed=training.seed,
                                    progress=False)
    started = time.perf_counter()
    fit = fit_recsimu(logs, config=config, training=training, item_vectors=vectors,
                      progress=False, parallel=parallel)
    seconds = time.perf_counter() - started
    if parallel is None or parallel.is_main:
        summary = {"seconds": seconds, "epochs": len(fit.history), "history": fit.history,
                   "test_f1": fit.test.f1, "test_auc": fit.test.auc,
                   "tuples": len(fit.split.train)}
        Path(args.out).write_text(json.dumps(summary))


def run_recsimu(nproc: int, args: argparse.Namespace, folder: Path) -> dict:
    """RecSimu with ``nproc`` processes: the worker's summary plus the command's wall time."""
    out = folder / f"recsimu-{nproc}.json"
    wall = torchrun(nproc, [__file__, "--worker", "recsimu", "--out", str(out),
                            "--recsimu-epochs", str(args.recsimu_epochs)])
    return {**json.loads(out.read_text()), "wall": wall}


def run_vae(nproc: int, args: argparse.Namespace, folder: Path) -> dict:
    """Mult-VAE through ``recgym train`` with ``nproc`` processes: rank 0's record."""
    out = folder / f"vae-{nproc}"
    wall = torchrun(nproc, ["-m", "recgym.cli", "train", "mult-vae", "--data", VAE_DATA,
                            "--set", f"epochs={args.vae_epochs}", "--set",
                            f"anneal_epochs={args.vae_epochs}", "--out", str(out),
                            "--no-progress"])
    record = json.loads(next(out.glob("*.json")).read_text())
    return {**record, "wall": wall}


def largest_gap(one: list[dict], two: list[dict], keys: tuple[str, ...]) -> float:
    """Largest absolute difference of the logged losses between two histories."""
    return max(abs(a[key] - b[key]) for a, b in zip(one, two, strict=True) for key in keys
               if key in a)


def main() -> None:
    """Run both fitters with 1 and 2 processes and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vae-epochs", type=int, default=10)
    parser.add_argument("--recsimu-epochs", type=int, default=1,
                        help="epochs of each of the three stages")
    parser.add_argument("--worker", choices=("recsimu",), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        recsimu_worker(args)
        return
    with tempfile.TemporaryDirectory() as folder:
        vae = {n: run_vae(n, args, Path(folder)) for n in (1, 2)}
        recsimu = {n: run_recsimu(n, args, Path(folder)) for n in (1, 2)}
    lines = [
        "# Data-parallel fitting with 1 and 2 processes", "",
        f"Command: `python benchmarks/distributed_fit.py --vae-epochs {args.vae_epochs} "
        f"--recsimu-epochs {args.recsimu_epochs}` ({date.today()}; {os.cpu_count()} CPU cores "
        f"shared with other jobs, 1-min load {os.getloadavg()[0]:.1f} at the end; "
        f"{platform.machine()}, torch {torch.__version__}, gloo, one thread per process).",
        "",
        "Same global batch (500) and seed in both runs; each process trains on half of every "
        "batch and gradients are all-reduced. The two cores were shared with other jobs, so "
        "times are noisy and 2 processes cannot show their speed-up here; the point of the "
        "table is that the two runs agree.", "",
        f"Mult-VAE on {VAE_DATA}: `torchrun --nproc-per-node N -m recgym.cli train mult-vae "
        f"--data {VAE_DATA} --set epochs={args.vae_epochs} --set "
        f"anneal_epochs={args.vae_epochs} --out DIR --no-progress`", "",
        "| processes | s / epoch (training) | wall s (command) | final train loss | "
        "test NDCG@100 | test Recall@20 | largest loss gap vs 1 process |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, record in vae.items():
        history = record["history"]
        per_epoch = sum(h["seconds"] for h in history) / len(history)
        gap = largest_gap(vae[1]["history"], history, ("loss", "nll", "kl"))
        lines.append(f"| {n} | {per_epoch:.2f} | {record['wall']:.0f} | "
                     f"{history[-1]['loss']:.4f} | {record['test']['ndcg@100']['mean']:.4f} | "
                     f"{record['test']['recall@20']['mean']:.4f} | {gap:.1e} |")
    lines += [
        "", f"RecSimu on {RECSIMU_DATA} ({recsimu[1]['tuples']:,} training tuples, "
        f"{args.recsimu_epochs} epoch(s) of each of the three stages, state length 20): "
        f"`python benchmarks/distributed_fit.py --worker recsimu` under `torchrun "
        f"--nproc-per-node N` (the same fitter `recgym fit recsimu` calls)", "",
        "| processes | s / epoch (incl. validation) | wall s (command) | final loss_d | "
        "test F1 | test AUC | largest loss gap vs 1 process |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, summary in recsimu.items():
        gap = largest_gap(recsimu[1]["history"], summary["history"], ("loss_g", "loss_d"))
        lines.append(f"| {n} | {summary['seconds'] / summary['epochs']:.1f} | "
                     f"{summary['wall']:.0f} | {summary['history'][-1]['loss_d']:.4f} | "
                     f"{summary['test_f1']:.4f} | {summary['test_auc']:.4f} | {gap:.1e} |")
    with atomic_write(RESULTS / "distributed_fit.md") as temporary:
        Path(temporary).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

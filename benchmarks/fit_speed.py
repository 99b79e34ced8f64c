"""Fitting speed: a Mult-VAE epoch against plain torch, and where the simulator fits spend it.

**Mult-VAE** (``--part vae``): one training epoch of recgym's Mult-VAE (``MultVAE._mle_epoch``,
the epoch ``recgym train mult-vae`` runs, on the model ``build_model("mult-vae", M)``
builds) against a minimal Mult-VAE epoch in plain torch written below
(:class:`PlainMultVAE`, :func:`plain_epoch`): the same architecture ``M -> 600 (tanh) ->
200 -> 600 (tanh) -> M``, the same checked CSR matrix of ML-1M's strong-generalisation
training users (``load_cf_data("ml-1m-lcf")``: the LCF files merged and split as in
RaCT appendix A), batches of 500 users densified with scipy's ``toarray``, input dropout
0.5 on the L2-normalised rows, ``beta`` annealed per update to 0.2 over 100 epochs, Adam
1e-3. The two epochs alternate in this process (a warm-up epoch of each first); the ratio
is the median of per-repeat ratios. Issue 19's target: recgym at most 1.25x plain torch.

**Simulator fits** (``--part fits``): ``recgym fit recsimu``, ``fit irecgan-user`` and
``fit gan-user`` through their library functions (``fit_recsimu``, ``fit_user_model``,
``fit_gan_user``) with the CLI's default settings except the number of epochs, a
checkpoint in a temporary folder (as the CLI writes one), on their default data: the data
their shipped checkpoints were fitted on (``envs_data/*.md``) —

* recsimu: ``ml-latest-small`` (``load_browsing_logs``), every stage ``--epochs`` epochs
  (skip-gram embeddings, generator and discriminator pre-training, adversarial);
* irecgan-user: 10,000 sessions of the uniformly random policy in SyntheticMDP-v0 (as
  ``recgym generate-logs SyntheticMDP-v0 --policy random --sessions 10000``, made here
  with ``collect_logs``), U with the CLI's LSTM 512 x 2 layers, batch 64;
* gan-user: ``ml-latest-small`` page views (``page_view_dataset``, the paper's 50 / 12.5
  / 37.5% user split, genre + popularity features), GAN-PW, entropy regulariser.

Inside the fit call, time is split by wrapping (``time.perf_counter``; a call inside
another timed call counts once, for the outer one):

* *forward*: the model's methods and the loss functions named in ``FORWARD`` below
  (training and validation passes);
* *backward*: ``Tensor.backward``; *optimizer*: ``Optimizer.step`` (global step hooks)
  and ``Optimizer.zero_grad``; *checkpoint*: ``save_checkpoint``;
* *setup*: the fit's own data preparation (``SETUP`` below), and for recsimu the
  skip-gram item embeddings, reported apart;
* *other*: the rest of the fit call: batch slicing and padding, Python loops, validation
  metrics, copies of the best weights.

An epoch's time is the fit call minus setup and embeddings, over the training epochs run;
*outside* is other plus checkpoint, the share not spent in forward, backward or the
optimizer. torch's one-time import of ``torch._dynamo`` when a process builds its first
optimizer (1-2 s; every ``recgym fit`` pays it once) is done before anything is timed.
``--profile`` appends each fit's top functions by own time under ``cProfile``.

    OMP_NUM_THREADS=1 python benchmarks/fit_speed.py --root ../shared/data --load-note "..."
    python benchmarks/fit_speed.py --root ../shared/data --quick --out /tmp/fit_speed.md
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import reporting
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

VAE_TARGET = 1.25
FITS = ("recsimu", "irecgan-user", "gan-user")
BUCKETS = ("forward", "backward", "optimizer", "checkpoint", "other")

# (module, attribute path) of what counts as the model's forward pass, per fit
FORWARD: dict[str, list[tuple[str, str]]] = {
    "recsimu": [("recgym.simulators.recsimu.model", "RecSimu.embed"),
                ("recgym.simulators.recsimu.model", "RecSimu.logits"),
                ("recgym.simulators.recsimu.model", "RecSimu.feedback_probabilities"),
                ("recgym.simulators.recsimu.model", "RecSimu.positive_score"),
                ("recgym.simulators.recsimu.model", "Generator.forward"),
                ("recgym.simulators.recsimu.model", "StateEncoder.forward"),
                ("recgym.simulators.recsimu.model", "Discriminator.forward"),
                ("recgym.simulators.recsimu.model", "Discriminator.logits_from_encoding"),
                ("recgym.simulators.recsimu.fit", "generator_loss"),
                ("recgym.simulators.recsimu.fit", "discriminator_loss")],
    "irecgan-user": [("recgym.simulators.irecgan.model", "UserBehaviorModel.log_likelihood")],
    "gan-user": [("recgym.simulators.gan_user.fit", "choice_log_likelihood"),
                 ("recgym.simulators.gan_user.fit", "l2_game_loss"),
                 ("recgym.simulators.gan_user.model", "GANUserModel.state"),
                 ("recgym.simulators.gan_user.model", "GANUserModel.reward"),
                 ("recgym.simulators.gan_user.model", "GANUserModel.choice_logits")],
}
# the fit's own data preparation, timed apart from its epochs
SETUP: dict[str, list[tuple[str, str]]] = {
    "recsimu": [("recgym.simulators.recsimu.fit", "BrowsingSequences.from_logs"),
                ("recgym.simulators.recsimu.fit", "make_tuples"),
                ("recgym.simulators.recsimu.fit", "split_last_tuples")],
    "irecgan-user": [("recgym.simulators.irecgan.fit", "SessionTensors.from_logs")],
    "gan-user": [],
}
EMBEDDINGS = ("recgym.simulators.recsimu.fit", "train_item_embeddings")
CHECKPOINT_MODULES = {"recsimu": "recgym.simulators.recsimu.fit",
                      "irecgan-user": "recgym.simulators.irecgan.fit",
                      "gan-user": "recgym.simulators.gan_user.fit"}


class Timer:
    """Seconds by label inside wrapped callables; a call inside a timed call is not re-timed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.active = False

    @contextlib.contextmanager
    def span(self, label: str) -> Iterator[None]:
        """Time the block under ``label`` unless another timed block encloses it."""
        if self.active:
            yield
            return
        self.active = True
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - started
            self.active = False

    def wrap(self, label: str, function: Callable) -> Callable:
        """``function`` with its calls timed under ``label``."""
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.span(label):
                return function(*args, **kwargs)

        return timed

    @contextlib.contextmanager
    def patched(self, label: str, targets: list[tuple[str, str]]) -> Iterator[None]:
        """Wrap each ``(module, "Class.attr" or "function")`` while the block runs."""
        undo = []
        try:
            for module_name, path in targets:
                owner: Any = importlib.import_module(module_name)
                *parents, name = path.split(".")
                for parent in parents:
                    owner = getattr(owner, parent)
                original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner,
                                                                                        name)
                if isinstance(original, classmethod):
                    replacement: Any = classmethod(self.wrap(label, original.__func__))
                else:
                    replacement = self.wrap(label, original)
                setattr(owner, name, replacement)
                undo.append((owner, name, original))
            yield
        finally:
            for owner, name, original in reversed(undo):
                setattr(owner, name, original)

    @contextlib.contextmanager
    def training_calls(self) -> Iterator[None]:
        """Time ``Tensor.backward``, ``Optimizer.step`` and ``Optimizer.zero_grad``."""
        from torch.optim.optimizer import (
            register_optimizer_step_post_hook,
            register_optimizer_step_pre_hook,
        )

        stack: list[contextlib.AbstractContextManager] = []

        def before(*_: Any) -> None:
            stack.append(self.span("optimizer"))
            stack[-1].__enter__()

        def after(*_: Any) -> None:
            stack.pop().__exit__(None, None, None)

        backward, zero_grad = torch.Tensor.backward, torch.optim.Optimizer.zero_grad
        handles = [register_optimizer_step_pre_hook(before),
                   register_optimizer_step_post_hook(after)]
        torch.Tensor.backward = self.wrap("backward", backward)
        torch.optim.Optimizer.zero_grad = self.wrap("optimizer", zero_grad)
        try:
            yield
        finally:
            torch.Tensor.backward, torch.optim.Optimizer.zero_grad = backward, zero_grad
            for handle in handles:
                handle.remove()


# ----------------------------------------------------------------------------- Mult-VAE


class PlainMultVAE(nn.Module):
    """Mult-VAE (Liang et al. 2018) in a few lines: ``M -> 600 -> 200 -> 600 -> M``."""

    def __init__(self, num_items: int, hidden: int = 600, latent: int = 200) -> None:
        super().__init__()
        self.encoder = nn.Linear(num_items, hidden)
        self.code = nn.Linear(hidden, 2 * latent)
        self.decoder_hidden = nn.Linear(latent, hidden)
        self.decoder_out = nn.Linear(hidden, num_items)

    def forward(self, x: torch.Tensor, dropout: float) -> tuple[torch.Tensor, ...]:
        """Logits, posterior mean and log-variance of a binary batch ``x``."""
        h = F.dropout(F.normalize(x, dim=1), dropout, training=True)
        mu, logvar = self.code(torch.tanh(self.encoder(h))).chunk(2, dim=1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.decoder_out(torch.tanh(self.decoder_hidden(z))), mu, logvar


def plain_epoch(model: PlainMultVAE, optimizer: torch.optim.Optimizer, train: sp.csr_matrix,
                updates: int, *, batch_size: int = 500, dropout: float = 0.5,
                beta_max: float = 0.2, anneal_epochs: int = 100,
                timer: Timer | None = None) -> int:
    """One epoch over ``train`` in shuffled batches; returns the update count after it."""
    timer = timer or Timer()
    n_users = train.shape[0]
    anneal_updates = anneal_epochs * -(-n_users // batch_size)
    order = np.random.permutation(n_users)
    for start in range(0, n_users, batch_size):
        with timer.span("densify"):
            x = torch.from_numpy(train[order[start:start + batch_size]].toarray())
        with timer.span("forward"):
            logits, mu, logvar = model(x, dropout)
            nll = -(F.log_softmax(logits, dim=1) * x).sum(1).mean()
            kl = 0.5 * (torch.exp(logvar) + mu.pow(2) - 1.0 - logvar).sum(1).mean()
            loss = nll + beta_max * min(1.0, updates / anneal_updates) * kl
        with timer.span("optimizer"):
            optimizer.zero_grad()
        with timer.span("backward"):
            loss.backward()
        with timer.span("optimizer"):
            optimizer.step()
        updates += 1
    return updates


def vae_epochs(root: str | None, repeats: int, max_users: int | None) -> dict[str, Any]:
    """Alternate recgym's and the plain Mult-VAE epoch; seconds and phase times of each."""
    from agents.cf.base import check_interactions
    from agents.cf.train import build_model, load_cf_data

    data = load_cf_data("ml-1m-lcf", data_root=root)
    train = check_interactions(data.train, data.num_items, "train")
    if max_users:
        train = train[:max_users]
    torch.manual_seed(0)
    np.random.seed(0)
    recgym_model = build_model("mult-vae", data.num_items, seed=0)
    recgym_model.train()
    plain = PlainMultVAE(data.num_items)
    optimizer = torch.optim.Adam(plain.parameters(), lr=1e-3)
    runs: dict[str, list[dict[str, float]]] = {"recgym": [], "plain": []}
    updates = 0
    for repeat in range(repeats + 1):  # the first of each is a warm-up
        timer = Timer()
        with timer.training_calls(), \
                timer.patched("forward", [("agents.cf.vae", "MultVAE.elbo_loss")]), \
                timer.patched("densify", [("agents.cf.vae", "csr_to_dense")]):
            started = time.perf_counter()
            recgym_model._mle_epoch(train, repeat)
            seconds = time.perf_counter() - started
        if repeat:
            runs["recgym"].append({"seconds": seconds, **timer.seconds})
        timer = Timer()
        started = time.perf_counter()
        updates = plain_epoch(plain, optimizer, train, updates, timer=timer)
        seconds = time.perf_counter() - started
        if repeat:
            runs["plain"].append({"seconds": seconds, **timer.seconds})
            print(f"Mult-VAE epoch {repeat}: recgym {runs['recgym'][-1]['seconds']:.2f} s, "
                  f"plain {seconds:.2f} s", flush=True)
    return {"runs": runs, "users": train.shape[0], "items": train.shape[1],
            "nnz": int(train.nnz), "name": data.name}


def vae_lines(result: dict[str, Any]) -> list[str]:
    """The Mult-VAE table and the verdict."""
    runs = result["runs"]
    ratio = statistics.median(r["seconds"] / p["seconds"]
                              for r, p in zip(runs["recgym"], runs["plain"], strict=True))
    lines = [
        "## Mult-VAE epoch: recgym against plain torch", "",
        f"{result['name']}: {result['users']:,} training users x {result['items']:,} items, "
        f"{result['nnz']:,} interactions, batches of 500; median of {len(runs['recgym'])} "
        "alternating epochs each (a warm-up epoch of each not counted). Phases: densify = "
        "CSR rows to a dense batch (recgym: `csr_to_dense`; plain: `toarray`), forward = "
        "network and loss (recgym: `MultVAE.elbo_loss`, which also draws the dropout mask), "
        "backward = `Tensor.backward`, optimizer = `zero_grad` + `Adam.step`; other = the "
        "rest of the epoch.", "",
        "| epoch | seconds | / plain | densify | forward | backward | optimizer | other |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, label in (("recgym", "recgym `MultVAE._mle_epoch`"), ("plain", "plain torch")):
        seconds = statistics.median(run["seconds"] for run in runs[name])

        def phase(key: str, name: str = name) -> float:
            return statistics.median(run.get(key, 0.0) for run in runs[name])

        other = seconds - sum(phase(key) for key in ("densify", "forward", "backward",
                                                       "optimizer"))
        lines.append(f"| {label} | {seconds:.3f} | "
                     + (f"{ratio:.2f}x" if name == "recgym" else "1.00x")
                     + "".join(f" | {phase(key):.3f}" for key in ("densify", "forward",
                                                                   "backward", "optimizer"))
                     + f" | {other:.3f} |")
    lines += ["", f"Target (issue 19, item 4): recgym's epoch at most {VAE_TARGET}x the plain "
                  f"one: {ratio:.2f}x, {'met' if ratio <= VAE_TARGET else 'not met'}."]
    return lines


# ----------------------------------------------------------------------------- fits


def prepare(kind: str, epochs: int, sessions: int | None) -> tuple[Callable[[Path], Any], int,
                                                                    str]:
    """Load ``kind``'s default data; returns the fit call, its training epochs, a summary.

    ``sessions`` keeps that many sessions (MovieLens: users) for smoke runs.
    """
    if kind == "recsimu":
        from recgym.simulators.recsimu.data import load_browsing_logs
        from recgym.simulators.recsimu.fit import RecSimuTraining, fit_recsimu
        from recgym.simulators.recsimu.model import RecSimuConfig

        logs, num_items = load_browsing_logs("ml-latest-small")
        if sessions:
            logs = logs[logs["session_id"].isin(logs["session_id"].unique()[:sessions])]
        training = RecSimuTraining(generator_pretrain_epochs=epochs,
                                   discriminator_pretrain_epochs=epochs,
                                   adversarial_epochs=epochs, embedding_epochs=epochs)
        config = RecSimuConfig(num_items=num_items,
                               num_feedback=max(int(logs["feedback"].max()) + 1, 2))
        summary = (f"ml-latest-small browsing logs, {logs['session_id'].nunique():,} sessions, "
                   f"{len(logs):,} page views")
        return (lambda out: fit_recsimu(logs, config=config, training=training,
                                        checkpoint=out / "recsimu.pt", progress=False),
                3 * epochs, summary)
    if kind == "irecgan-user":
        import gymnasium as gym

        from recgym.core import RandomPolicy
        from recgym.data import LogDataset
        from recgym.evaluation import collect_logs
        from recgym.simulators.irecgan.fit import UserModelTraining, fit_user_model
        from recgym.simulators.irecgan.model import UserModelConfig

        env = gym.make("SyntheticMDP-v0")
        simulator = env.unwrapped.simulator
        count = sessions or 10_000
        frame = collect_logs(simulator, RandomPolicy(simulator.num_items, simulator.slate_size,
                                                     seed=0),
                             count, seed=0, max_steps=env.spec.max_episode_steps)
        logs = LogDataset(frame, num_items=simulator.num_items)
        config = UserModelConfig(num_items=logs.num_items)
        training = UserModelTraining(epochs=epochs)
        summary = (f"SyntheticMDP-v0 random-policy logs, {count:,} sessions, "
                   f"{len(frame):,} page views; LSTM {config.hidden_size} x "
                   f"{config.num_layers}, batch {training.batch_size}")
        return (lambda out: fit_user_model(logs, config=config, training=training,
                                           checkpoint=out / "irecgan-user.pt", progress=False),
                epochs, summary)
    if kind == "gan-user":
        from recgym.data import gan_user_model_split
        from recgym.simulators.gan_user.fit import (
            GANUserTraining,
            PageViews,
            default_features,
            fit_gan_user,
            page_view_dataset,
        )
        from recgym.simulators.gan_user.model import GANUserConfig

        dataset = page_view_dataset("ml-latest-small", seed=0)
        frame = dataset.logs
        if sessions:
            frame = frame[frame["user_id"].isin(frame["user_id"].unique()[:sessions])]
        split = gan_user_model_split(frame, seed=0)
        views = {name: PageViews.from_logs(part, history=10)
                 for name, part in (("train", split.train), ("valid", split.val))}
        features = default_features(dataset, views["train"])
        config = GANUserConfig(feature_dim=features.shape[1], history=10)
        training = GANUserTraining(epochs=epochs, patience=epochs + 1)
        summary = (f"ml-latest-small page views, {len(views['train']):,} training and "
                   f"{len(views['valid']):,} validation; GAN-PW, hidden {config.hidden}, "
                   f"batch {training.batch_size}")
        return (lambda out: fit_gan_user(views["train"], views["valid"], features,
                                         config=config, training=training,
                                         checkpoint=out / "gan-user.pt", progress=False),
                epochs, summary)
    raise ValueError(f"unknown fit {kind!r}; choose from {FITS}")


def time_fit(kind: str, fit: Callable[[Path], Any]) -> dict[str, float]:
    """Run one fit with its calls timed: seconds by bucket (see the module docstring)."""
    timer = Timer()
    with tempfile.TemporaryDirectory() as folder, timer.training_calls(), \
            timer.patched("forward", FORWARD[kind]), timer.patched("setup", SETUP[kind]), \
            timer.patched("embeddings", [EMBEDDINGS] if kind == "recsimu" else []), \
            timer.patched("checkpoint", [(CHECKPOINT_MODULES[kind], "save_checkpoint")]):
        started = time.perf_counter()
        fit(Path(folder))
        total = time.perf_counter() - started
    seconds = dict.fromkeys(("forward", "backward", "optimizer", "checkpoint", "setup",
                             "embeddings"), 0.0) | timer.seconds
    seconds["total"] = total
    seconds["epochs"] = total - seconds["setup"] - seconds["embeddings"]
    seconds["other"] = seconds["epochs"] - sum(seconds[key] for key in BUCKETS[:-1])
    return seconds


def profile_fit(fit: Callable[[Path], Any], top: int = 12) -> str:
    """The ``top`` functions of one fit by own time, as pstats prints them."""
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory() as folder:
        profiler.enable()
        fit(Path(folder))
        profiler.disable()
    return reporting.profile_table(profiler, top)


def fit_lines(rows: dict[str, dict[str, Any]], epochs: int) -> list[str]:
    """The simulator-fit table and what dominates each."""
    lines = [
        "## Simulator fits: where an epoch goes", "",
        f"One run of each fit with {epochs} epoch(s) per stage (recsimu: skip-gram embeddings, "
        "generator and discriminator pre-training and adversarial epochs; its epoch is one "
        "of the last three). Load: reading the data and building the fit's inputs before "
        "the call. Setup: the fit's own data preparation (recsimu also lists the skip-gram "
        "embeddings). Per epoch: the rest of the fit call over its training epochs, split "
        "as shares of it; outside = checkpoint + other.", "",
        "| fit | data | load s | setup s | epochs | s / epoch | forward | backward | "
        "optimizer | checkpoint | other | outside |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, row in rows.items():
        t = row["seconds"]
        share = {key: t[key] / t["epochs"] for key in BUCKETS}
        setup = f"{t['setup']:.3f}" + (f" (+ {t['embeddings']:.2f} embeddings)"
                                       if kind == "recsimu" else "")
        lines.append(f"| {kind} | {row['summary']} | {row['load']:.2f} | {setup} | "
                     f"{row['epochs']} | {t['epochs'] / row['epochs']:.2f} | "
                     + " | ".join(f"{share[key]:.0%}" for key in BUCKETS)
                     + f" | {share['checkpoint'] + share['other']:.0%} |")
    lines += ["", "What dominates each epoch:", ""]
    for kind, row in rows.items():
        t = row["seconds"]
        largest = max(BUCKETS, key=lambda key, t=t: t[key])
        outside = (t["checkpoint"] + t["other"]) / t["epochs"]
        lines.append(f"* {kind}: {largest} ({t[largest] / t['epochs']:.0%} of the epochs' "
                     f"time); outside the model {outside:.0%}.")
    for kind, row in rows.items():
        if row.get("profile"):
            lines += ["", f"Where {kind}'s fit spends its time (`cProfile`, top own time; the "
                          "profiler inflates Python-call-heavy code):", "", "```",
                      row["profile"], "```"]
    return lines


def main() -> None:
    """Run the parts asked for and write the Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "vae", "fits"), default="all")
    parser.add_argument("--root", help="folder holding movielens-1m-implicit-lcf/ "
                                       "(default $RECGYM_DATA)")
    parser.add_argument("--repeats", type=int, default=5, help="Mult-VAE epochs of each")
    parser.add_argument("--epochs", type=int, default=2, help="fit epochs per stage")
    parser.add_argument("--fits", nargs="+", choices=FITS, default=list(FITS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quick", action="store_true",
                        help="smoke size: 1,000 Mult-VAE users, 1 repeat; fits on 20 users "
                             "(irecgan-user: 300), 1 epoch per stage")
    parser.add_argument("--profile", action="store_true",
                        help="append a cProfile of each fit")
    parser.add_argument("--load-note", default="nothing else known",
                        help="what else ran on the machine, for the results file")
    parser.add_argument("--out", default=str(reporting.RESULTS / "fit_speed.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # torch imports torch._dynamo when the first optimizer of a process is built (1-2 s,
    # once per process): pay it here, not inside the first timed epoch or fit
    torch.optim.Adam([nn.Parameter(torch.zeros(1))])
    repeats, epochs = (1, 1) if args.quick else (args.repeats, args.epochs)
    sections: list[str] = []
    if args.part in ("all", "vae"):
        sections += vae_lines(vae_epochs(args.root, repeats, 1_000 if args.quick else None))
        sections.append("")
    if args.part in ("all", "fits"):
        rows: dict[str, dict[str, Any]] = {}
        for kind in args.fits:
            sessions = (300 if kind == "irecgan-user" else 20) if args.quick else None
            started = time.perf_counter()
            fit, count, summary = prepare(kind, epochs, sessions)
            load = time.perf_counter() - started
            seconds = time_fit(kind, fit)
            rows[kind] = {"summary": summary, "load": load, "epochs": count,
                          "seconds": seconds,
                          "profile": profile_fit(fit) if args.profile else ""}
            print(f"{kind}: {seconds['epochs'] / count:.2f} s / epoch, outside the model "
                  f"{(seconds['checkpoint'] + seconds['other']) / seconds['epochs']:.0%}",
                  flush=True)
        sections += fit_lines(rows, epochs)
    machine = reporting.machine_description("scipy")
    lines = ["# Fitting speed", "", f"Command: `{reporting.command_line()}` ({machine}).", "",
             f"Also running on the machine: {args.load_note}.", "", *sections]
    print(f"wrote {reporting.write_results(args.out, chr(10).join(lines))}")


if __name__ == "__main__":
    main()

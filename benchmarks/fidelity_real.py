"""Every simulator kind scored on real logs, where the truth is a second log (issue 16, item 5).

* Open Bandit (small, ZOZOTOWN): fit on the Bernoulli Thompson sampling (BTS) logs,
  predict the uniform-random policy's page views (its click rate is the mean predicted
  click probability over them, since the random policy's items are what it shows), and
  the reverse. Relative error ``|predicted - observed| / observed`` as in the Open Bandit
  paper. One-step sessions, one-item slates: no Prec@1.
* Coat: fit on the self-selected ratings (train), predict the randomly exposed coats
  (test); a click is a rating >= 4.
* ml-latest-small and YooChoose: held-out users (sessions), the split and display sets of
  ``benchmarks/gan_user_fidelity.py`` (``page_view_dataset``, ``gan_user_model_split``,
  seed 0): log-likelihood and Prec@1 against its baselines.

Baselines scored like the kinds: ``uniform`` (1 / (k + 1) per outcome) and ``popularity``
(the fitting log's no-click share, the rest by the shown items' click counts). Intervals
(95%) resample the test log's sessions; a kind whose fit is cheap is also refitted on
session resamples of the fitting log (``--refits``, within ``--refit-budget`` seconds) so
the fit's own uncertainty is in its intervals. A kind that cannot fit a data set in
reasonable memory or time is listed with the reason (memory estimate, or a pilot fit on
``--pilot-share`` of the fitting sessions extrapolated to the whole log)::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/fidelity_real.py \
        --root ../shared/data --data open-bandit coat ml-latest-small yoochoose

Each finished (case, kind) row is kept in ``OUT.progress.json`` (atomically): a killed run
continues with ``--resume`` (same arguments) from the next kind, to the results it would
have written; ``--overwrite`` starts afresh; without either, the progress is refused.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import reporting

from recgym.cli.resume import add_resume_options, continues_interrupted_run, run_arguments
from recgym.data import (
    gan_user_model_split,
    load_coat,
    load_open_bandit,
    load_progress,
    save_progress,
)
from recgym.data.slates import (
    bootstrap_sessions,
    logged_slates,
    outcomes,
    pick_sessions,
    sorted_logs,
)
from recgym.fidelity import KINDS, PRIVILEGED_KINDS, WorldInfo
from recgym.fidelity.metrics import Interval
from recgym.fidelity.real import (
    RealScore,
    popularity_probabilities,
    score_on_logs,
    score_probabilities,
    uniform_probabilities,
)
from recgym.simulators.gan_user.model import GANUserConfig

DATA = ("open-bandit", "coat", "ml-latest-small", "yoochoose")
DEFAULT_KINDS = tuple(k for k in KINDS if k not in PRIVILEGED_KINDS)
# Small but honest settings of the slow kinds (the other kinds use their defaults).
KIND_OPTIONS = {
    "irecgan": {"hidden_size": 64, "embedding_dim": 32, "num_layers": 1, "epochs": 5,
                "batch_size": 64},
    "gan-user-pw": {"epochs": 10, "hidden": 64},
    "gan-user-lstm": {"epochs": 10, "hidden": 64},
    "recsimu": {"pretrain_epochs": 2, "adversarial_epochs": 4, "embedding_epochs": 2},
}
# A few hundred long user timelines give batch 64 only five steps an epoch.
HELD_OUT_USERS_OPTIONS = {"irecgan": {"batch_size": 8}}
MEMORY_LIMIT = 4 * 2**30
LBFGS_HISTORY = 100


@dataclass
class Case:
    """One fit-then-predict comparison: a fitting log, a test log and what they are."""

    title: str
    description: str
    fit_logs: pd.DataFrame
    test_logs: pd.DataFrame
    info: WorldInfo
    pilot: bool = False
    kind_options: dict[str, dict] = field(default_factory=dict)
    extra_rows: list[dict] = field(default_factory=list)


def open_bandit_cases(root: Path, campaigns: list[str]) -> list[Case]:
    """BTS -> random and random -> BTS for each campaign."""
    cases = []
    for campaign in campaigns:
        logs = {policy: load_open_bandit(root / "open-bandit-dataset-small", policy, campaign)
                for policy in ("bts", "random")}
        info = WorldInfo(logs["bts"].num_items, 1, 10, 0)
        for fit, test in (("bts", "random"), ("random", "bts")):
            fit_logs, test_logs = logs[fit].to_logs().logs, logs[test].to_logs().logs
            cases.append(Case(
                f"Open Bandit, campaign {campaign}: fit on {fit}, predict {test}",
                f"{len(fit_logs):,} {fit} page views ({int(fit_logs['reward'].sum())} clicks) "
                f"fit; {len(test_logs):,} {test} page views ({int(test_logs['reward'].sum())} "
                f"clicks) predicted; {info.num_items} items; one-step sessions, one-item "
                "slates (the kinds do not see the position).", fit_logs, test_logs, info))
    return cases


def coat_case(root: Path) -> Case:
    """Self-selected train ratings -> randomly exposed test ratings."""
    coat = load_coat(root / "coat")
    fit_logs, test_logs = coat.to_logs("train").logs, coat.to_logs("test").logs
    info = WorldInfo(coat.num_items, 1, 10, 0)
    return Case("Coat: fit on self-selected ratings, predict random exposure",
                f"{len(fit_logs):,} self-selected ratings of {coat.num_users} users fit, "
                f"{len(test_logs):,} randomly exposed ratings of the same users predicted; "
                f"{coat.num_items} coats; one session per user (coats in id order), one-item "
                "pages, click = rating >= 4.", fit_logs, test_logs, info)


def held_out_users_case(data: str, root: Path, seed: int = 0) -> Case:
    """The held-out users of gan_user_fidelity.py's split, with its baselines' Prec@1."""
    from recgym.simulators.gan_user.baselines import (
        BASELINE_NAMES,
        BASELINES,
        baseline_precision,
    )
    from recgym.simulators.gan_user.fit import PageViews, default_features, page_view_dataset

    folder = root / "yoochoose-clicks-100k" if data == "yoochoose" else root
    dataset = page_view_dataset(data, root=str(folder), seed=seed)
    split = gan_user_model_split(dataset.logs, seed=seed)
    train, test = PageViews.from_logs(split.train, 10), PageViews.from_logs(split.test, 10)
    features = default_features(dataset, train)
    extra = []
    for name in BASELINES:
        if name == "popularity":  # scored below with intervals (same ranking)
            continue
        started = time.perf_counter()
        precision = baseline_precision(name, train, test, features, seed=seed)[1]
        extra.append({"kind": f"baseline: {BASELINE_NAMES[name]}", "prec_at_1": precision,
                      "fit_seconds": time.perf_counter() - started,
                      "note": "gan_user_fidelity.py baseline; point value (its code returns "
                              "only the mean)"})
    if dataset.items is not None and "year" in dataset.items.columns:
        year = dataset.items["year"].to_numpy(np.float64, na_value=np.nan)
        extra.append({"kind": "reference: oldest movie of the display set",
                      "prec_at_1": oldest_first_precision(split.test, year, seed),
                      "note": "not a simulator: the display sets' construction artifact "
                              "(the rated movie and 39 recent releases); a kind that infers "
                              "release years can reach it; point value"})
    num_items = dataset.num_items or len(dataset.items)
    slate_size = logged_slates(split.train.head(1)).shape[1]
    info = WorldInfo(num_items, slate_size, 10, seed)
    fit_logs = sorted_logs(split.train)
    return Case(f"{data}: held-out users",
                f"gan_user_fidelity.py's data, seed {seed}: {len(fit_logs):,} page views of "
                f"{fit_logs['session_id'].nunique()} training users (sessions) fit, "
                f"{len(split.test):,} page views of {split.test['session_id'].nunique()} "
                f"held-out ones predicted; {num_items:,} items, {slate_size} per display set.",
                fit_logs, sorted_logs(split.test), info, pilot=True,
                kind_options=HELD_OUT_USERS_OPTIONS, extra_rows=extra)


def oldest_first_precision(logs: pd.DataFrame, year: np.ndarray, seed: int = 0) -> float:
    """Prec@1 of ranking each page's items oldest first (unknown years last, ties at random).

    With MovieLens display sets built by release year the rated movie is usually the
    oldest (recgym.data.displays): this is what any kind that learns the years can reach.
    """
    slates, chosen = logged_slates(logs), outcomes(logs)
    clicked = chosen < slates.shape[1]
    years = np.nan_to_num(year[slates], nan=np.inf)
    ties = np.random.default_rng(seed).random(slates.shape)
    first = np.where(years == years.min(axis=1, keepdims=True), ties, np.inf).argmin(axis=1)
    return float((first == chosen)[clicked].mean())


def memory_reason(kind: str, case: Case, options: dict) -> str | None:
    """Why a kind would not fit in memory on ``case`` (None if it would)."""
    n, k = case.info.num_items, case.info.slate_size
    if kind == "logistic":
        needed = 8 * (n + 1) * n * (3 + 2 * LBFGS_HISTORY)
        what = (f"its (n+1) x n pair table has {(n + 1) * n / 1e6:.1f}M parameters; with "
                f"gradient and L-BFGS's {LBFGS_HISTORY}-step history")
    elif kind.startswith("gan-user"):  # one-hot items are row lookups; held-out pages batched
        batch, hidden = options.get("batch_size", 256), options.get("hidden", 256)
        state = GANUserConfig(feature_dim=n, state=kind.rsplit("-", 1)[1]).state_dim
        needed = 3 * 4 * batch * (state + (k + 1) * hidden)
        what = (f"a training batch of {batch} page views holds their states ({state:,} "
                f"float32 each) and {k + 1} x {hidden} reward activations, three times for "
                "activations and gradients")
    else:
        return None
    if needed <= MEMORY_LIMIT:
        return None
    return f"not fitted: {what}, it needs about {needed / 2**30:.0f} GiB"


def pilot_reason(kind: str, case: Case, options: dict, share: float, budget: float
                 ) -> tuple[str | None, float]:
    """Pilot fit on ``share`` of the sessions; why to skip if its extrapolation is over budget."""
    sessions = case.fit_logs["session_id"].nunique()
    count = max(10, int(share * sessions))
    picked = np.random.default_rng(0).choice(sessions, count, replace=False)
    pilot_logs = pick_sessions(case.fit_logs, np.sort(picked))
    pages = len(pilot_logs) / len(case.fit_logs)
    started = time.perf_counter()
    KINDS[kind](pilot_logs, case.info, **options)
    seconds = time.perf_counter() - started
    estimate = seconds / pages
    if estimate <= budget:
        return None, estimate
    return (f"not fitted: a pilot fit on {count} sessions ({100 * pages:.1f}% of the page "
            f"views) took {seconds:.0f} s, so about {estimate / 60:.0f} min for the whole log "
            f"(budget {budget / 60:.0f} min)"), estimate


def row(result: RealScore, note: str = "") -> dict:
    """One table row from a score."""
    return {"kind": result.name, **{m: v for m, v in result.metrics.items()},
            "inside": result.observed_inside, "fit_seconds": result.fit_seconds,
            "refits": result.refits, "note": note}


def run_case(case: Case, kinds: list[str], args: argparse.Namespace,
             done: list[dict] | None = None, finished=None) -> list[dict]:
    """Baselines and every kind on one case.

    ``done``: the rows of the kinds an interrupted run finished (in ``kinds`` order), not
    run again; ``finished(row)`` is called with each new kind's row as it is made.
    """
    def popularity(fit_logs: pd.DataFrame) -> np.ndarray:
        return popularity_probabilities(fit_logs, case.test_logs, case.info.num_items)

    refitted = [popularity(bootstrap_sessions(case.fit_logs, args.seed + 1 + r))
                for r in range(args.refits)]
    rows = [row(score_probabilities("baseline: uniform", uniform_probabilities(case.test_logs),
                                    case.test_logs, n_bootstrap=args.bootstrap, seed=args.seed)),
            row(score_probabilities("baseline: popularity", popularity(case.fit_logs),
                                    case.test_logs, refit_probabilities=refitted,
                                    n_bootstrap=args.bootstrap, seed=args.seed))]
    rows += case.extra_rows
    done = list(done or [])
    rows += done
    for kind in kinds[len(done):]:
        rows.append(run_kind(case, kind, args))
        if finished is not None:
            finished(rows[-1])
    return rows


def run_kind(case: Case, kind: str, args: argparse.Namespace) -> dict:
    """The row of one kind on one case: its score, or why it was not fitted."""
    options = {**KIND_OPTIONS.get(kind, {}), **case.kind_options.get(kind, {})}
    reason = memory_reason(kind, case, options)
    estimate = None
    if reason is None and case.pilot and kind not in ("count", "item-rate"):
        reason, estimate = pilot_reason(kind, case, options, args.pilot_share,
                                        args.max_fit_minutes * 60)
    if reason is not None:
        print(f"{case.title} | {kind}: {reason}", flush=True)
        return {"kind": kind, "note": reason,
                "fit_seconds": estimate if estimate is not None else np.nan}
    started = time.perf_counter()
    note = ""
    try:
        result = score_on_logs(kind, case.fit_logs, case.test_logs, case.info,
                               options=options, refits=args.refits,
                               refit_budget=args.refit_budget,
                               n_bootstrap=args.bootstrap, seed=args.seed)
    except Exception as error:  # a refit on a resample failed: report, score without
        note = (f"refits failed ({type(error).__name__}: {error}); interval from the "
                "test log only")
        try:
            result = score_on_logs(kind, case.fit_logs, case.test_logs, case.info,
                                   options=options, n_bootstrap=args.bootstrap,
                                   seed=args.seed)
        except Exception as error:  # the kind cannot fit this log: say why
            failed = {"kind": kind, "note": f"fit failed: {type(error).__name__}: {error}",
                      "fit_seconds": np.nan}
            print(f"{case.title} | {kind}: {failed['note']}", flush=True)
            return failed
    print(f"{case.title} | {kind}: predicted {result.metrics['predicted_rate']}, "
          f"observed {result.metrics['observed_rate']}, log-lik "
          f"{result.metrics['log_likelihood']} ({time.perf_counter() - started:.0f} s)",
          flush=True)
    return row(result, note)


def encoded(row: dict) -> dict:
    """A table row as JSON values (an :class:`Interval` as ``{"interval": [v, low, high]}``)."""
    return {key: {"interval": [float(value.value), float(value.low), float(value.high)]}
            if isinstance(value, Interval) else
            value.item() if isinstance(value, np.generic) else value
            for key, value in row.items()}


def decoded(row: dict) -> dict:
    """The table row :func:`encoded` gave."""
    return {key: Interval(*value["interval"]) if isinstance(value, dict) else value
            for key, value in row.items()}


def interval_cell(value, digits: int) -> str:
    """``v [low, high]``, ``v`` alone without an interval, empty when missing."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, (float, int, np.floating)):
        return f"{value:.{digits}f}"
    if not np.isfinite(value.value):
        return ""
    if not np.isfinite(value.low):
        return f"{value.value:.{digits}f}"
    return f"{value.value:.{digits}f} [{value.low:.{digits}f}, {value.high:.{digits}f}]"


def table(rows: list[dict], rate_digits: int) -> list[str]:
    """The Markdown table of one case."""
    lines = ["| kind | predicted click rate | observed | rel. error | observed inside | "
             "log-lik / page | ECE | AUC | Prec@1 | fit s | refits | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        inside = "" if "inside" not in r else ("yes" if r["inside"] else "no")
        fit = r.get("fit_seconds", np.nan)
        fit = "" if not np.isfinite(fit) else (f"~{fit:.0f} (est.)" if "pilot" in
                                               r.get("note", "") else f"{fit:.1f}")
        lines.append(
            f"| {r['kind']} | {interval_cell(r.get('predicted_rate'), rate_digits)} | "
            f"{interval_cell(r.get('observed_rate'), rate_digits)} | "
            f"{interval_cell(r.get('relative_error'), 2)} | {inside} | "
            f"{interval_cell(r.get('log_likelihood'), 4)} | {interval_cell(r.get('ece'), 4)} | "
            f"{interval_cell(r.get('auc'), 3)} | {interval_cell(r.get('prec_at_1'), 3)} | "
            f"{fit} | {r.get('refits', '')} | {r.get('note', '')} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Score every kind on every requested data set and write the Markdown results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.environ.get("RECGYM_DATA"),
                        help="folder holding open-bandit-dataset-small, coat, "
                             "movielens-latest-small and yoochoose-clicks-100k "
                             "(default: $RECGYM_DATA)")
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=DATA)
    parser.add_argument("--campaigns", nargs="+", default=["all"],
                        choices=["all", "men", "women"], help="Open Bandit campaigns")
    parser.add_argument("--kinds", nargs="+", default=list(DEFAULT_KINDS),
                        choices=list(DEFAULT_KINDS))
    parser.add_argument("--bootstrap", type=int, default=200,
                        help="resamples of the test log's sessions")
    parser.add_argument("--refits", type=int, default=5,
                        help="refits on resampled fitting logs, for kinds cheap enough")
    parser.add_argument("--refit-budget", type=float, default=200.0,
                        help="seconds the refits of one kind may take (estimated from the "
                             "main fit); over it the interval resamples the test log only")
    parser.add_argument("--pilot-share", type=float, default=0.02,
                        help="share of the fitting sessions of the pilot fit (held-out-user "
                             "data sets)")
    parser.add_argument("--max-fit-minutes", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(reporting.RESULTS / "fidelity_real.md"))
    add_resume_options(parser, "OUT.progress.json, the rows of the finished (case, kind)s")
    args = parser.parse_args(argv)
    if args.root is None:
        parser.error("the data folder is needed: pass --root FOLDER or set RECGYM_DATA")
    root = Path(args.root)
    os.environ.setdefault("RECGYM_DATA", str(root))
    progress = Path(args.out).with_suffix(".progress.json")
    settings = run_arguments(args, "root", "data", "campaigns", "kinds", "bootstrap",
                             "refits", "refit_budget", "pilot_share", "max_fit_minutes",
                             "seed")
    state = load_progress(progress, settings) if continues_interrupted_run(progress, args) \
        else {"rows": {}, "seconds": 0.0}
    finished_rows: dict[str, list[dict]] = state["rows"]  # case title -> its kinds' rows
    args.command = shlex.join(["python", "benchmarks/fidelity_real.py", *(
        argument for argument in (sys.argv[1:] if argv is None else argv)
        if argument not in ("--resume", "--overwrite"))])
    started = time.perf_counter()

    def seconds() -> float:
        return state["seconds"] + time.perf_counter() - started

    sections = []
    for data in args.data:
        if data == "open-bandit":
            cases = open_bandit_cases(root, args.campaigns)
        elif data == "coat":
            cases = [coat_case(root)]
        else:
            cases = [held_out_users_case(data, root, args.seed)]
        for case in cases:
            kept = finished_rows.setdefault(case.title, [])

            def finished(new_row: dict, kept: list[dict] = kept) -> None:
                kept.append(encoded(new_row))
                save_progress(progress, settings, rows=finished_rows, seconds=seconds())

            rows = run_case(case, args.kinds, args, [decoded(r) for r in kept], finished)
            digits = 5 if data == "open-bandit" else 3
            sections += [f"## {case.title}", "", case.description, "", *table(rows, digits), ""]
            write(args, sections, seconds())
    progress.unlink(missing_ok=True)


def other_processes() -> str:
    """Other processes using over 20% of a core as the results are written (shared machine)."""
    listing = subprocess.run(["ps", "-eo", "pid=,pcpu=,args="], capture_output=True,
                             text=True, check=False).stdout.splitlines()
    busy = []
    for line in listing:
        pid, cpu, command = line.split(None, 2)
        if int(pid) != os.getpid() and float(cpu) > 20:
            busy.append(f"`{command[:90]}` ({float(cpu):.0f}% CPU)")
    return "; ".join(busy) or "none"


def launch_prefix() -> str:
    """The thread setting and niceness this run had, as a command prefix."""
    threads = os.environ.get("OMP_NUM_THREADS")
    niceness = os.nice(0)
    return ((f"OMP_NUM_THREADS={threads} " if threads else "")
            + (f"nice -n {niceness} " if niceness else ""))


def write(args: argparse.Namespace, sections: list[str], seconds: float) -> None:
    """The results file of the cases done so far."""
    options = "; ".join(f"`{kind}` {', '.join(f'{k}={v}' for k, v in values.items())}"
                        for kind, values in KIND_OPTIONS.items())
    lines = [
        "# Simulator kinds on real logs (issue 16, item 5)", "",
        f"Command: `{launch_prefix()}{args.command}` ({seconds / 60:.0f} "
        f"min). Machine: {reporting.machine_description()}. Also running (ps, at the end): "
        f"{other_processes()}.", "",
        "Each kind is fitted on one log and predicts another it never saw (module docstring "
        "of `benchmarks/fidelity_real.py`). *predicted click rate*: mean over the test log's "
        "page views of the kind's click probability given the session so far; *observed*: "
        "their click rate; *rel. error*: |predicted - observed| / observed; *observed "
        "inside*: the observed rate lies in the predicted rate's interval; *log-lik / page*: "
        "mean log-probability of each page's outcome (the clicked position or no click); "
        "*ECE*: expected calibration error of the page click probability (10 bins); *AUC*: "
        "of the page click probability; *Prec@1*: over pages with a click, chance that the "
        "clicked item ranks first (ties at random), only for slates of more than one item. "
        f"Intervals: 95%, {args.bootstrap} resamples of the test log's sessions (users); "
        "where *refits* > 0, the predicted rate's and relative error's resamples also use "
        "one of that many fits on session resamples of the fitting log (percentile "
        "intervals: a refit on a resample can be biased, so a point may sit near or past "
        "an end). *fit s*: one fit's wall time on the shared machine.", "",
        f"Kind settings: {options}; on the held-out-user data sets `irecgan` batch_size="
        f"{HELD_OUT_USERS_OPTIONS['irecgan']['batch_size']}; the others their defaults. "
        f"Refits: {args.refits} where one fit x {args.refits} <= {args.refit_budget:.0f} s. "
        f"Pilot fits on {100 * args.pilot_share:.0f}% of the sessions (at least 10) for "
        f"the held-out-user data sets, budget {args.max_fit_minutes:.0f} min per fit.", "",
        *sections]
    reporting.write_results(args.out, "\n".join(lines))
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()

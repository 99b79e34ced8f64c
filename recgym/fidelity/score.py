"""Score a simulator against a world with a known truth: :func:`score`.

The question a user brings is "which of my policies is better?". :func:`score` answers
how well a simulator answers it: every policy of a set is rolled out in the world and in
the simulator on the same user streams (:func:`recgym.evaluation.evaluate_policy`), and
the two columns of values are compared (:mod:`recgym.fidelity.metrics`). The
simulator's click probabilities are also scored on held-out page views, and PPO trained
inside it is deployed in the world (transfer).

Support: a simulator fitted on logs can only know what the logs show. A policy's
``unsupported_share`` is the share of its impressions (the items it shows when rolled out
in the world) that the fitting log shows less than ``rare_share`` times as often as a
uniform policy would, to a user in the same hidden state. The instrument reads the
state for this (the simulator never does); for a log without ``true_state`` it
falls back on what is known without it: a session's first page (always the start
state) and the later pages pooled. A policy with more than ``OUT_OF_SUPPORT`` (a
third) of its impressions unsupported is flagged ``out_of_support``: the simulator
extrapolates there, and its values need another source of evidence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recgym.core import Policy, UserSimulator
from recgym.data.slates import bootstrap_sessions, outcomes
from recgym.evaluation import collect_logs, evaluate_policy
from recgym.fidelity import metrics
from recgym.fidelity.history import held_out_sessions
from recgym.fidelity.kinds import (
    KINDS,
    check_logs,
    get_kind,
    true_page_view_probabilities,
)
from recgym.fidelity.policies import PolicySpec, policy_set, start_click_rates, train_ppo
from recgym.fidelity.worlds import world_info
from recgym.simulators.synthetic_mdp import SyntheticMDP

OUT_OF_SUPPORT = 1 / 3
DISAGREEMENT = 0.25
ENSEMBLE_SEED_OFFSET = 1000  # fit seed of member i: seed + 1000 (i + 1)
REPLICA_OFFSET = 10_000_000  # user streams of the world replica, far from the roll-outs
ERROR_TOLERANCE = 0.15
Z95 = 1.959963984540054  # two-sided 95% normal quantile of the roll-out intervals


@dataclass
class FidelityReport:
    """What :func:`score` found.

    Attributes:
        kind: the simulator's name.
        table: one row per policy: true and simulated value (clicks per session) with 95%
            intervals, relative error, support in the fitting log.
        summary: one row per metric and policy subset (``all``; ``deployable``: the
            policies that do not read the hidden state; ``deployable-in-support``):
            ``value``, ``low``, ``high`` (95% interval), ``n_policies``.
        calibration: reliability table of the simulator's page click probability on
            held-out page views (empty if the simulator cannot give probabilities).
        timings: seconds per part.
        notes: what was skipped and why.
    """

    kind: str
    table: pd.DataFrame
    summary: pd.DataFrame
    calibration: pd.DataFrame
    timings: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def metric(self, name: str, subset: str = "deployable") -> metrics.Interval:
        """One summary metric as an :class:`~recgym.fidelity.metrics.Interval`."""
        rows = self.summary[(self.summary.metric == name) & (self.summary.subset == subset)]
        if rows.empty:
            raise KeyError(f"no metric {name!r} for subset {subset!r}; have "
                           f"{sorted(set(self.summary.metric + '/' + self.summary.subset))}")
        row = rows.iloc[0]
        return metrics.Interval(float(row.value), float(row.low), float(row.high))

    def to_markdown(self) -> str:
        """The policy table, the summary and the timings as Markdown."""
        table = self.table.copy()
        for column in ("true", "sim"):
            table[column] = [f"{v:.2f} [{lo:.2f}, {hi:.2f}]" for v, lo, hi in zip(
                table[f"{column}_value"], table[f"{column}_low"], table[f"{column}_high"],
                strict=True)]
        columns = ["policy", "true", "sim", "relative_error", "unsupported_share",
                   "out_of_support", "reads_true_state"]
        if "ens_low" in table.columns:
            table["ensemble"] = [f"[{lo:.2f}, {hi:.2f}]" for lo, hi in zip(
                table.ens_low, table.ens_high, strict=True)]
            columns += ["ensemble", "ens_spread", "status"]
        shown = table[columns]
        summary = self.summary.assign(interval=[
            f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in zip(
                self.summary.value, self.summary.low, self.summary.high, strict=True)])
        timings = ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items())
        parts = [f"### {self.kind}", "", markdown_table(shown), "",
                 markdown_table(summary[["metric", "subset", "interval", "n_policies"]]), "",
                 f"Time: {timings}."]
        parts += [f"Note: {note}" for note in self.notes]
        return "\n".join(parts) + "\n"

    def plot(self, path: str | Path) -> Path:
        """True vs simulated value per policy, 95% error bars, the diagonal; a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from recgym.data import save_figure

        table = self.table
        figure, axis = plt.subplots(figsize=(6, 5.5))
        for flag, colour, label in ((False, "tab:blue", "in support"),
                                    (True, "tab:red", "out of support")):
            part = table[table.out_of_support == flag]
            if part.empty:
                continue
            axis.errorbar(part.true_value, part.sim_value,
                          xerr=[part.true_value - part.true_low, part.true_high - part.true_value],
                          yerr=[part.sim_value - part.sim_low, part.sim_high - part.sim_value],
                          fmt="o", color=colour, capsize=3, label=label)
            for _, row in part.iterrows():
                axis.annotate(row.policy, (row.true_value, row.sim_value), fontsize=7,
                              xytext=(3, 3), textcoords="offset points")
        top = float(np.nanmax(np.r_[table.true_high, table.sim_high, 1.0])) * 1.05
        axis.plot([0, top], [0, top], color="grey", linestyle="--", label="simulator = world")
        axis.set_xlim(0, top)
        axis.set_ylim(0, top)
        axis.set_xlabel("true value (clicks per session)")
        axis.set_ylabel("simulated value (clicks per session)")
        tau = self.metric("kendall_tau", "all")
        axis.set_title(f"{self.kind}: Kendall tau {tau.value:.2f} "
                       f"[{tau.low:.2f}, {tau.high:.2f}]")
        axis.legend(loc="upper left", fontsize=8)
        path = save_figure(figure, path)
        plt.close(figure)
        return path


def markdown_table(frame: pd.DataFrame, float_format: str = ".3f") -> str:
    """A DataFrame as a Markdown table (floats formatted, no index)."""
    def cell(value) -> str:
        return format(value, float_format) if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines)


@contextmanager
def _timed(timings: dict[str, float], part: str):
    start = time.perf_counter()
    yield
    timings[part] = timings.get(part, 0.0) + time.perf_counter() - start


def _resolve(simulator, logs: pd.DataFrame, world: SyntheticMDP, seed: int,
             kind_options: dict) -> tuple[UserSimulator, str]:
    info = world_info(world, seed)
    if isinstance(simulator, str):
        check_logs(simulator, logs, info)
        return get_kind(simulator, **kind_options)(logs, info), simulator
    if all(hasattr(simulator, name) for name in ("reset", "step", "observe")):
        return simulator, type(simulator).__name__
    if callable(simulator):
        name = getattr(simulator, "kind", getattr(simulator, "__name__", "custom"))
        if isinstance(name, str) and name in KINDS:
            check_logs(name, logs, info)
        return simulator(logs, info), str(name)
    raise TypeError(f"simulator must be a kind name, a fit(logs, info) factory or a fitted "
                    f"UserSimulator, got {type(simulator).__name__}")


def _check_policies(specs: list[PolicySpec], world: SyntheticMDP) -> None:
    from recgym.core.random import UserRandom

    observation = world.observe(world.reset(2, UserRandom.from_seeds([0, 1])))
    for spec in specs:
        if not isinstance(spec, PolicySpec):
            raise TypeError(f"policies must be PolicySpec entries, got {type(spec).__name__}")
        policy = spec.make()
        size = getattr(policy, "slate_size", None)
        slate = policy.act({"clicks": observation["clicks"]} if not spec.reads_true_state
                           else observation)
        if size != world.slate_size or tuple(slate.shape) != (2, world.slate_size):
            raise ValueError(f"policy {spec.name!r} recommends slates of {size} items "
                             f"(shape {tuple(slate.shape)} for 2 users), the world shows "
                             f"slate_size={world.slate_size}")


def compute_part(name: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The default ``parts`` of :func:`score`: ``function(*args, **kwargs)``, nothing saved."""
    return function(*args, **kwargs)


def _roll_outs(simulator: UserSimulator, policies: list[PolicySpec], n_sessions: int,
               seed: int) -> dict:
    return {spec.name: evaluate_policy(simulator, spec.make(), n_sessions, seed=seed,
                                       coverage_at=()) for spec in policies}


def _split(logs: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    mask = held_out_sessions(logs, share, seed)
    return logs[~mask], logs[mask]


def _impressions(logs: pd.DataFrame, num_items: int, num_contexts: int) -> np.ndarray:
    """Item impressions per context, float ``(contexts, n)``.

    Contexts: the hidden state when the instrument knows it (``num_contexts`` = m and a
    ``true_state`` column), else first page (row 0) and later pages (row 1).
    """
    slates = np.stack(logs["slate"].to_numpy()).astype(np.int64)
    if num_contexts == 2 and "true_state" not in logs.columns:
        context = (logs["step"].to_numpy() > 0).astype(np.int64)
    else:
        context = logs["true_state"].to_numpy().astype(np.int64)
    cell = (context[:, None] * num_items + slates).ravel()
    return np.bincount(cell, minlength=num_contexts * num_items).reshape(
        num_contexts, num_items).astype(np.float64)


def _unsupported_share(policy_counts: np.ndarray, log_counts: np.ndarray,
                       rare_share: float) -> float:
    n = log_counts.shape[1]
    log_share = log_counts / np.maximum(log_counts.sum(1, keepdims=True), 1.0)
    rare = log_share < rare_share / n
    return float((policy_counts * rare).sum() / max(policy_counts.sum(), 1.0))


def _value_rows(true: dict, sim: dict, names: list[str]) -> dict[str, np.ndarray]:
    return {"true_mean": np.array([true[n].mean_return for n in names]),
            "true_se": np.array([true[n].return_std_err for n in names]),
            "sim_mean": np.array([sim[n].mean_return for n in names]),
            "sim_se": np.array([sim[n].return_std_err for n in names])}


def score(simulator, *, world: SyntheticMDP, logs: pd.DataFrame,
          policies: list[PolicySpec] | None = None, held_out: pd.DataFrame | None = None,
          n_sessions: int = 2000, seed: int = 0, ppo_timesteps: int = 0,
          world_ppo: Policy | None = None, kind_options: dict | None = None,
          n_bootstrap: int = 1000, support_sessions: int = 500, rare_share: float = 0.1,
          held_out_share: float = 0.1, noise_ceiling: bool = True, ensemble: int = 0,
          disagreement: float = DISAGREEMENT, progress: bool = False,
          parts: Callable[..., Any] = compute_part) -> FidelityReport:
    """Fit (or take) a simulator and score it against ``world``.

    Args:
        simulator: a kind name (:data:`recgym.fidelity.kinds.KINDS`), a factory
            ``fit(logs, info) -> UserSimulator``, or a fitted ``UserSimulator``.
        world: the reference world (the truth).
        logs: the log the simulator is fitted on (and whose support is measured).
        policies: the policy set; default :func:`~recgym.fidelity.policies.policy_set`
            with ``greedy-sim`` (and ``ppo-world`` when PPO runs).
        held_out: page views for calibration and likelihood; default: ``held_out_share``
            of the sessions of ``logs``, left out of the fit.
        n_sessions: roll-outs per policy, in the world and in the simulator (same seeds).
        seed: seed of the roll-outs, the fit, PPO and the bootstraps.
        ppo_timesteps: PPO's budget in each of world and simulator (0: no PPO, no transfer).
        world_ppo: a PPO policy already trained in the world (reused across simulators).
        kind_options: options of the kind's fit (e.g. ``{"epochs": 1}``).
        n_bootstrap: bootstrap redraws of the value metrics.
        support_sessions: world sessions per policy to measure its support.
        rare_share: an item is rare in the log below this share of a uniform policy's.
        held_out_share: share of sessions held out when ``held_out`` is None.
        noise_ceiling: also roll the deployable policies out in the world on other user
            streams, and report the metrics of that replica against the world (subset
            ``world-vs-world``): the best a simulator can score at this roll-out noise.
        ensemble: refit the kind this many more times, each on a bootstrap resample of
            the fitting sessions with its own fit seed, roll every policy out in each,
            and report the ensemble's interval and disagreement per policy (see
            :func:`ensemble_status`); 0: the roll-out interval only. Needs a kind name
            or a factory, not a fitted simulator.
        disagreement: flag a policy when the ensemble's values spread more than this
            share of their mean (``(max - min) / mean``).
        progress: print which part runs, with a progress bar over the policies.
        parts: runs each expensive part as ``parts(name, function, *args, **kwargs)``
            (the fit, PPO in the world, the greedy rates, each policy's world and
            simulator roll-outs, each ensemble member's fit and roll-outs, the world
            replica, PPO in the simulator), in the same order for the same arguments;
            one that returns what an interrupted run saved under ``name`` resumes it
            (``recgym fidelity --resume``). Default: :func:`compute_part`.

    Raises:
        ValueError: unknown kind, logs without the columns the kind needs, slates of the
            wrong size, a policy with the wrong slate size.
    """
    if n_sessions < 2:
        raise ValueError(f"n_sessions must be >= 2 (values need a standard error), "
                         f"got {n_sessions}")
    if not isinstance(logs, pd.DataFrame):
        raise ValueError(f"logs must be a pandas DataFrame in the log schema, got "
                         f"{type(logs).__name__}")
    timings: dict[str, float] = {}
    notes: list[str] = []

    def say(message: str) -> None:
        if progress:
            print(f"[fidelity] {message}", flush=True)

    fit_logs = logs
    if held_out is None and "session_id" in logs.columns:
        fit_logs, held_out = _split(logs, held_out_share, seed)
    say("fit")
    with _timed(timings, "fit"):
        fitted, kind = parts("fit", _resolve, simulator, fit_logs, world, seed,
                             kind_options or {})
    if (fitted.num_items, fitted.slate_size) != (world.num_items, world.slate_size):
        raise ValueError(f"the simulator has num_items={fitted.num_items}, slate_size="
                         f"{fitted.slate_size}; the world {world.num_items}, {world.slate_size}")
    with _timed(timings, "policies"):
        if world_ppo is None and ppo_timesteps > 0:
            say("PPO in the world")
            world_ppo = parts("ppo-world", train_ppo, world, ppo_timesteps, seed=seed)
        if policies is None:
            rates = parts("greedy-rates", start_click_rates, fitted, seed=seed)
            policies = policy_set(world, fit_logs, greedy_rates=rates, ppo=world_ppo, seed=seed)
    _check_policies(policies, world)
    names = [spec.name for spec in policies]
    if len(set(names)) != len(names):
        raise ValueError(f"policy names must be unique, got {names}")
    true, sim = {}, {}
    for spec in tqdm(policies, desc=f"roll out in world and {kind}", disable=not progress,
                     leave=False):
        with _timed(timings, "world roll-outs"):
            true[spec.name] = parts(f"world-{spec.name}", evaluate_policy, world,
                                    spec.make(), n_sessions, seed=seed, coverage_at=())
        with _timed(timings, "simulator roll-outs"):
            sim[spec.name] = parts(f"simulator-{spec.name}", evaluate_policy, fitted,
                                   spec.make(), n_sessions, seed=seed, coverage_at=())
    members: list[dict] = []
    if ensemble > 0:
        if all(hasattr(simulator, name) for name in ("reset", "step", "observe")) \
                and not isinstance(simulator, str):
            raise ValueError("ensemble > 0 refits the simulator: pass a kind name or a "
                             "fit(logs, info) factory, not a fitted simulator")
        for member in range(ensemble):
            say(f"ensemble member {member + 1} of {ensemble}")
            member_seed = seed + ENSEMBLE_SEED_OFFSET * (member + 1)
            resample = bootstrap_sessions(fit_logs, member_seed)
            with _timed(timings, "ensemble fits"):
                fitted_member, _ = parts(f"ensemble-fit-{member}", _resolve, simulator,
                                         resample, world, member_seed, kind_options or {})
            with _timed(timings, "ensemble roll-outs"):
                members.append(parts(f"ensemble-roll-outs-{member}", _roll_outs,
                                     fitted_member, policies, n_sessions, seed))
    replica = {}
    if noise_ceiling:
        with _timed(timings, "world roll-outs"):
            replica = parts("world-replica", _roll_outs, world,
                            [spec for spec in policies if not spec.reads_true_state],
                            n_sessions, seed + REPLICA_OFFSET)
    with _timed(timings, "support"):
        by_state = "true_state" in fit_logs.columns
        contexts = world.num_states if by_state else 2
        keys = ("true_state",) if by_state else ()
        log_counts = _impressions(fit_logs, world.num_items, contexts)
        unsupported = {spec.name: _unsupported_share(
            _impressions(collect_logs(world, spec.make(), support_sessions, seed=seed,
                                      extra_observation_keys=keys),
                         world.num_items, contexts), log_counts, rare_share) for spec in policies}
    values = _value_rows(true, sim, names)
    table = pd.DataFrame({
        "policy": names,
        "reads_true_state": [spec.reads_true_state for spec in policies],
        "true_value": values["true_mean"],
        "true_low": values["true_mean"] - Z95 * values["true_se"],
        "true_high": values["true_mean"] + Z95 * values["true_se"],
        "sim_value": values["sim_mean"],
        "sim_low": values["sim_mean"] - Z95 * values["sim_se"],
        "sim_high": values["sim_mean"] + Z95 * values["sim_se"],
    })
    table["relative_error"] = ((table.sim_value - table.true_value)
                               / table.true_value.abs().clip(lower=1e-12))
    table["unsupported_share"] = [unsupported[n] for n in names]
    table["out_of_support"] = table.unsupported_share > OUT_OF_SUPPORT
    means = np.array([[run[n].mean_return for n in names] for run in members]).reshape(
        len(members), len(names))
    errors = np.array([[run[n].return_std_err for n in names] for run in members]).reshape(
        len(members), len(names))
    table = ensemble_status(table, means, errors, disagreement=disagreement)
    rows: list[dict] = []
    with _timed(timings, "metrics"):
        deployable = ~table.reads_true_state.to_numpy()
        in_support = deployable & ~table.out_of_support.to_numpy()
        for subset, mask in (("all", np.ones(len(names), bool)), ("deployable", deployable),
                             ("deployable-in-support", in_support)):
            if mask.sum() < 3:
                notes.append(f"value metrics over {subset} policies skipped: "
                             f"{int(mask.sum())} policies (< 3)")
                continue
            found = metrics.value_metrics(*(v[mask] for v in values.values()),
                                          n_bootstrap=n_bootstrap, seed=seed)
            rows += [{"metric": name, "subset": subset, "value": i.value, "low": i.low,
                      "high": i.high, "n_policies": int(mask.sum())}
                     for name, i in found.items()]
        if len(replica) >= 3:
            kept = list(replica)
            first, second = _value_rows(true, replica, kept), _value_rows(replica, true, kept)
            ceiling = metrics.value_metrics(first["true_mean"], first["true_se"],
                                            second["true_mean"], second["true_se"],
                                            n_bootstrap=n_bootstrap, seed=seed)
            rows += [{"metric": name, "subset": "world-vs-world", "value": i.value,
                      "low": i.low, "high": i.high, "n_policies": len(kept)}
                     for name, i in ceiling.items()]
        # out of support (the instrument's measure): wrong, sure and not warned by the
        # simulator itself (its ensemble's disagreement is the only warning a user has)
        out = table[table.out_of_support]
        unwarned = (out.status_log_only == "confident-error").sum()
        rows.append({"metric": "confident_errors", "subset": "out-of-support",
                     "value": int(unwarned), "low": int(unwarned), "high": int(unwarned),
                     "n_policies": len(out)})
        shown = table[deployable]
        for status in STATUSES:
            count = int((shown.status == status).sum())
            rows.append({"metric": f"status_{status}", "subset": "deployable",
                         "value": count, "low": count, "high": count,
                         "n_policies": len(shown)})
    if ppo_timesteps > 0 and world_ppo is not None:
        say(f"PPO in {kind}")
        with _timed(timings, "PPO in simulator"):
            sim_ppo = parts("ppo-simulator", train_ppo, fitted, ppo_timesteps, seed=seed)
            deployed = evaluate_policy(world, sim_ppo, n_sessions, seed=seed, coverage_at=())
            reference = true.get("ppo-world") or evaluate_policy(world, world_ppo, n_sessions,
                                                                 seed=seed, coverage_at=())
        found = metrics.transfer_interval((deployed.mean_return, deployed.return_std_err),
                                          (reference.mean_return, reference.return_std_err),
                                          n_bootstrap=n_bootstrap, seed=seed)
        rows.append({"metric": "transfer", "subset": "ppo", "value": found.value,
                     "low": found.low, "high": found.high, "n_policies": 2})
        rows.append({"metric": "ppo_sim_true_value", "subset": "ppo",
                     "value": deployed.mean_return,
                     "low": deployed.mean_return - Z95 * deployed.return_std_err,
                     "high": deployed.mean_return + Z95 * deployed.return_std_err,
                     "n_policies": 1})
    else:
        notes.append("transfer skipped: ppo_timesteps = 0")
    calibration = pd.DataFrame()
    with _timed(timings, "held-out"):
        if held_out is not None and hasattr(fitted, "page_view_probabilities"):
            say("held-out page views")
            rows_, calibration = _log_metrics(fitted, world, held_out, n_bootstrap, seed)
            rows += rows_
        else:
            notes.append("held-out metrics skipped: the simulator has no "
                         "page_view_probabilities(logs) (or no held-out log)")
    return FidelityReport(kind, table, pd.DataFrame(rows), calibration, timings, notes)


STATUSES = ("covered", "flagged", "within-tolerance", "confident-error")


def ensemble_status(table: pd.DataFrame, member_means: np.ndarray, member_se: np.ndarray,
                    *, disagreement: float = DISAGREEMENT,
                    tolerance: float = ERROR_TOLERANCE) -> pd.DataFrame:
    """Per policy: the ensemble interval, its disagreement, and whether the value is trusted.

    ``table`` has ``true_value``, ``true_low``, ``true_high``, ``sim_value``, ``sim_low``,
    ``sim_high``, ``relative_error``, ``out_of_support``; ``member_means`` and
    ``member_se`` are ``(members, policies)`` (0 members: the roll-out interval alone).

    Adds ``ens_low`` / ``ens_high`` (lowest and highest 95% roll-out bound over the main
    fit and the members), ``ens_spread`` (``(max - min) / mean`` of their values),
    ``disagrees`` (spread above ``disagreement``), ``flagged`` (``disagrees`` or
    ``out_of_support``), ``covered`` (the ensemble interval meets the world's 95%
    interval) and ``status``: ``covered``; else ``flagged``; else ``within-tolerance``
    (relative error at most ``tolerance``); else ``confident-error``.
    ``status_log_only`` is the same with only the simulator's own warning
    (``disagrees``), without the instrument's support measure (which reads the state).
    """
    table = table.copy()
    means = np.vstack([table.sim_value.to_numpy()[None, :], member_means])
    lows = np.vstack([table.sim_low.to_numpy()[None, :], member_means - Z95 * member_se])
    highs = np.vstack([table.sim_high.to_numpy()[None, :], member_means + Z95 * member_se])
    table["ens_low"] = lows.min(0)
    table["ens_high"] = highs.max(0)
    table["ens_spread"] = (means.max(0) - means.min(0)) / np.maximum(np.abs(means.mean(0)),
                                                                      1e-12)
    table["disagrees"] = table.ens_spread > disagreement
    table["flagged"] = table.disagrees | table.out_of_support
    table["covered"] = (table.ens_low <= table.true_high) & (table.ens_high >= table.true_low)
    small = table.relative_error.abs() <= tolerance

    def status(flag: pd.Series) -> list[str]:
        return ["covered" if c else "flagged" if f else "within-tolerance" if s
                else "confident-error" for c, f, s in zip(table.covered, flag, small,
                                                          strict=True)]

    table["status"] = status(table.flagged)
    table["status_log_only"] = status(table.disagrees)
    return table


def _log_metrics(fitted, world: SyntheticMDP, held_out: pd.DataFrame, n_bootstrap: int,
                 seed: int) -> tuple[list[dict], pd.DataFrame]:
    held_out = held_out.sort_values(["session_id", "step"], kind="stable").reset_index(drop=True)
    outcome = outcomes(held_out)
    k = world.slate_size
    sessions = held_out["session_id"].to_numpy()
    clicked = (outcome < k).astype(np.float64)
    rows = []

    def add(metric: str, per_row: dict, statistic) -> None:
        found = metrics.session_bootstrap(per_row, sessions, statistic,
                                          n_bootstrap=min(n_bootstrap, 200), seed=seed)
        rows.append({"metric": metric, "subset": "held-out", "value": found.value,
                     "low": found.low, "high": found.high, "n_policies": 0})

    probabilities = fitted.page_view_probabilities(held_out)
    predicted = 1.0 - probabilities[:, -1]
    add("log_likelihood", {"ll": metrics.outcome_log_likelihood(probabilities, outcome)},
        lambda d: float(d["ll"].mean()))
    add("ece", {"p": predicted, "y": clicked},
        lambda d: metrics.expected_calibration_error(d["p"], d["y"]))
    if "true_state" in held_out.columns:
        truth = true_page_view_probabilities(world, held_out)
        add("log_likelihood_true_model",
            {"ll": metrics.outcome_log_likelihood(truth, outcome)},
            lambda d: float(d["ll"].mean()))
    uniform = float(np.log(1.0 / (k + 1)))
    rows.append({"metric": "log_likelihood_uniform", "subset": "held-out", "value": uniform,
                 "low": uniform, "high": uniform, "n_policies": 0})
    return rows, metrics.reliability_table(predicted, clicked)

"""The speed benchmarks of issue 19 run at their smallest size and write the tables they promise.

``benchmarks/training_throughput.py`` (SB3 PPO on the batched path against ``make_vec_env``)
and ``benchmarks/fit_speed.py`` (a Mult-VAE epoch against plain torch; where the simulator
fits spend their epochs) each run once with ``--quick`` into a temporary results file, and
``benchmarks/env_throughput.py --contention`` (with and without a CPU-bound neighbour) at N = 8.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"


def _benchmark(name: str):
    sys.path.insert(0, str(BENCHMARKS))  # the scripts import reporting as a sibling
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(script: str, *arguments: str) -> None:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(BENCHMARKS / script), *arguments], cwd=REPO,
                   env=environment, check=True, capture_output=True, text=True, timeout=600)


def _table(text: str, header_start: str) -> list[dict[str, str]]:
    """The rows of the Markdown table whose header begins with ``header_start``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")),
                             strict=True)))
    return rows


def _number(cell: str) -> float:
    return float(re.sub(r"[,%x]", "", cell))


def test_training_throughput_quick_writes_every_path(tmp_path):
    out = tmp_path / "training_throughput.md"
    _run("training_throughput.py", "--env", "SyntheticMDP-v0", "--quick", "--out", str(out))
    text = out.read_text()
    assert "Command: `python benchmarks/training_throughput.py --env SyntheticMDP-v0" in text
    rows = _table(text, "| env | path | samples/s")
    assert [(row["env"], row["path"]) for row in rows] == [
        ("SyntheticMDP-v0", "batched"), ("SyntheticMDP-v0", "batched, compiled"),
        ("SyntheticMDP-v0", "make_vec_env")]
    for row in rows:
        assert _number(row["samples/s"]) > 0
        shares = [_number(row[key]) for key in ("env share", "policy share", "update share")]
        assert all(0 < share < 100 for share in shares) and sum(shares) <= 100.5
    assert _number(rows[0]["batched / make_vec_env"]) > 0
    assert _number(rows[1]["batched / make_vec_env"]) > 0
    assert re.search(r"\* SyntheticMDP-v0: [\d.]+% eager \(the default\), (met|not met); "
                     r"[\d.]+% with `compile=True`, (met|not met)\.", text)


def test_fit_speed_quick_writes_the_vae_ratio_and_every_fit(tmp_path, shared_data):
    out = tmp_path / "fit_speed.md"
    _run("fit_speed.py", "--root", str(shared_data), "--quick", "--out", str(out))
    text = out.read_text()
    vae = _table(text, "| epoch | seconds | / plain")
    assert [row["epoch"] for row in vae] == ["recgym `MultVAE._mle_epoch`", "plain torch"]
    assert all(_number(row["seconds"]) > 0 and _number(row["forward"]) > 0 for row in vae)
    assert _number(vae[0]["/ plain"]) > 0
    assert re.search(r"at most 1\.25x the plain one: [\d.]+x, (met|not met)\.", text)
    fits = _table(text, "| fit | data |")
    assert [row["fit"] for row in fits] == ["recsimu", "irecgan-user", "gan-user"]
    for row in fits:
        assert _number(row["s / epoch"]) > 0
        parts = [_number(row[key]) for key in ("forward", "backward", "optimizer",
                                               "checkpoint", "other")]
        assert _number(row["forward"]) > 0 and _number(row["backward"]) > 0
        assert abs(sum(parts) - 100) <= 3  # the shares split the epochs' time (rounded)
        assert _number(row["outside"]) == pytest.approx(parts[3] + parts[4], abs=1.01)


def test_plain_mult_vae_has_recgyms_architecture():
    fit_speed = _benchmark("fit_speed")
    from agents.cf.train import build_model

    shapes = sorted(tuple(p.shape) for p in build_model("mult-vae", 37).parameters())
    assert sorted(tuple(p.shape) for p in fit_speed.PlainMultVAE(37).parameters()) == shapes


def test_timer_counts_a_nested_timed_call_once():
    timer = _benchmark("fit_speed").Timer()
    inner = timer.wrap("inner", lambda: sum(range(10_000)))
    outer = timer.wrap("outer", lambda: inner() + inner())
    outer()
    inner()
    assert set(timer.seconds) == {"outer", "inner"}
    assert timer.seconds["outer"] > 0 and timer.seconds["inner"] > 0
    assert not timer.active


def test_env_throughput_contention_writes_the_quiet_and_contended_columns(tmp_path):
    out = tmp_path / "env_throughput.md"
    _run("env_throughput.py", "--env", "SyntheticMDP-v0", "--sizes", "8", "12", "--quick",
         "--contention", "--contention-sizes", "8", "--sync-max", "8", "--load-note", "a test",
         "--trace-steps", "10", "--out", str(out))
    text = out.read_text()
    assert ("--sizes 8 12 --quick --contention --contention-sizes 8 --sync-max 8 "
            "--trace-steps 10` (") in text
    assert "Resident memory (MiB) over 10 steps at N = 12" in text
    assert "Also running on the machine: a test." in text
    assert "PPO-style update loop" in text and "1 torch thread(s)" in text
    paths = {row["N"]: row for row in _table(text, "| N | vector, eager")}
    assert _number(paths["8"]["SyncVectorEnv"]) > 0 and _number(paths["8"]["eager / sync"]) > 0
    assert paths["12"]["SyncVectorEnv"] == paths["12"]["eager / sync"] == ""
    assert _number(paths["12"]["vector, eager"]) > 0
    rows = _table(text, "| N | quiet, 1 thread")
    assert [row["N"] for row in rows] == ["8"]
    row = rows[0]
    rates = [_number(row[key]) for key in ("quiet, 1 thread", "quiet, default (1)",
                                           "contended, default")]
    assert all(rate > 0 for rate in rates)
    ratio = _number(row["contended default / quiet 1 thread"])
    assert ratio > 0
    assert row["target >= 0.5"] == ("met" if ratio >= 0.5 else "not met")
    assert _number(row["control: Python loop"]) > 0


def test_contention_neighbour_runs_only_when_asked_and_stops():
    neighbour = _benchmark("env_throughput").Neighbour(threads=1)
    try:
        def cpu_seconds() -> float:
            fields = Path(f"/proc/{neighbour.process.pid}/stat").read_text().rsplit(")", 1)[1]
            ticks = sum(int(value) for value in fields.split()[11:13])  # utime, stime
            return ticks / os.sysconf("SC_CLK_TCK")

        paused = cpu_seconds()
        time.sleep(0.3)
        assert cpu_seconds() - paused < 0.05  # stopped between measurements
        with neighbour.running(warm_up=0.5):
            pass
        assert cpu_seconds() - paused > 0.1  # it ran while asked
    finally:
        neighbour.close()
    assert neighbour.process.poll() is not None


def test_baseline_tree_envs_come_from_that_tree_and_are_timed_beside(tmp_path):
    import shutil

    import gymnasium as gym

    tree = tmp_path / "before"
    shutil.copytree(REPO / "recgym", tree / "recgym",
                    ignore=shutil.ignore_patterns("__pycache__"))
    reporting = _benchmark("reporting")
    baseline_id = reporting.register_baseline(tree, "SyntheticMDP-v0")
    spec = gym.spec(baseline_id)
    for entry in (spec.entry_point, spec.vector_entry_point):
        assert Path(entry.step.__code__.co_filename).is_relative_to(tree)
    import recgym

    assert Path(recgym.__file__).is_relative_to(REPO)  # this process's recgym is restored

    out = tmp_path / "env_throughput.md"
    _run("env_throughput.py", "--env", "SyntheticMDP-v0", "--sizes", "8", "--quick",
         "--baseline-tree", str(tree), "--baseline-label", "a copy", "--out", str(out))
    text = out.read_text()
    assert "Before: the eager vector env of a copy" in text
    row = _table(text, "| N | vector, eager")[0]
    assert _number(row["eager, before"]) > 0 and _number(row["after / before"]) > 0


def test_other_suites_writes_medians_and_yardstick_ratios(tmp_path, monkeypatch):
    other_suites = _benchmark("other_suites")

    def slow(step: int) -> None:
        time.sleep(1e-4)

    suites = {other_suites.YARDSTICK: other_suites.python_yardstick,
              other_suites.CARTPOLE: other_suites.python_yardstick, "Slow suite": lambda: slow}
    monkeypatch.setattr(other_suites, "SUITES", suites)
    out = tmp_path / "suites.json"
    monkeypatch.setattr(sys, "argv", ["other_suites.py", "--repeats", "2", "--seconds", "0.05",
                                      "--out", str(out)])
    other_suites.main()
    result = json.loads(out.read_text())["suites"]
    assert result[other_suites.YARDSTICK]["per_yardstick"] == 1.0
    assert 0.5 < result[other_suites.CARTPOLE]["per_yardstick"] < 2.0  # the same code
    assert 0 < result["Slow suite"]["per_yardstick"] < 0.5
    assert 0 < result["Slow suite"]["per_cartpole"] < 0.5
    assert result["Slow suite"]["steps_per_second"] < 1e4


def test_single_env_puts_other_suites_beside_recgym_through_the_yardstick(tmp_path):
    suites = {"date": "2026-12-07", "versions": {"recsim": "0.2.4"}, "load_average_1min": 0.5,
              "omp_num_threads": "1", "load_note": "nothing", "repeats": 5, "seconds": 2.0,
              "suites": {"Python yardstick": {"steps_per_second": 2e5, "per_yardstick": 1.0},
                         "CartPole-v1 (gym 0.26)": {"steps_per_second": 1e5,
                                                    "per_yardstick": 0.5},
                         "RecSim interest_evolution": {"steps_per_second": 7_300,
                                                       "per_yardstick": 0.0365}}}
    (tmp_path / "suites.json").write_text(json.dumps(suites))
    out = tmp_path / "single.md"
    _run("single_env.py", "--ids", "SyntheticMDP-v0", "--repeats", "1", "--seconds", "0.1",
         "--other-suites", str(tmp_path / "suites.json"), "--out", str(out))
    text = out.read_text()
    main_rows = {row["env"]: row for row in _table(text, "| env | steps/s |")}
    beside = {row["env"]: row for row in _table(text, "| env | steps/s (own process)")}
    assert set(beside) == {"RecSim interest_evolution", "recgym SyntheticMDP-v0"}
    recsim, ours = beside["RecSim interest_evolution"], beside["recgym SyntheticMDP-v0"]
    assert recsim["steps/s (own process)"] == "7,300"
    assert _number(recsim["/ Python yardstick"]) == 0.0365
    assert ours["steps/s (own process)"] == main_rows["SyntheticMDP-v0"]["steps/s"]
    # this run's yardstick speed, recovered from our row, scales RecSim's ratio
    yardstick = _number(ours["steps/s (own process)"]) / _number(ours["/ Python yardstick"])
    assert _number(recsim["at this run's speed, steps/s"]) == pytest.approx(0.0365 * yardstick,
                                                                           rel=0.01)
    assert "`gym` 0.26's ran 0.500x the yardstick there" in text
    # the draw-only floor is timed like the others and is the ceiling of the env itself
    floor = main_rows["RecgymDrawOnly-v0"]
    assert _number(floor["steps/s"]) > _number(main_rows["SyntheticMDP-v0"]["steps/s"])
    assert re.search(r"\* The floor \(RecgymDrawOnly-v0\): [\d,]+ steps/s, [\d.]+x", text)


def test_env_throughput_targets_name_the_size_and_say_met_or_not():
    target_lines = _benchmark("env_throughput").target_lines
    synthetic = target_lines("SyntheticMDP-v0", {4096: {"vector": 12e6, "compiled": 15e6}})
    assert any("eager at least 10,000,000" in line and "(1.20 of it, met)" in line
               for line in synthetic)
    assert any("compiled at least 20,000,000" in line and "not met" in line
               for line in synthetic)
    learned = target_lines("RecSimu-v0", {1024: {"vector": 250e3, "compiled": 310e3}})
    assert any(line.startswith("* eager (the default) at least 300,000") and
               "250,000 (0.83 of it, not met)" in line for line in learned)
    assert any(line.startswith("* compiled") and "310,000 (1.03 of it, met)" in line
               for line in learned)
    assert target_lines("RecSimu-v0", {64: {"vector": 1.0, "compiled": 1.0}}) == []


def test_step_profile_lists_the_top_operators_of_a_step(tmp_path):
    out = tmp_path / "profile.md"
    _run("step_profile.py", "--env", "SyntheticMDP-v0:8", "--steps", "5", "--top", "4",
         "--floor", "--out", str(out))
    text = out.read_text()
    assert "## SyntheticMDP-v0, N = 8" in text
    floor = text.split("## The vector env's own cost (draw-only users), N = 8")[1]
    assert re.search(r"[\d,.]+ µs per step without the profiler", floor)
    assert re.search(r"With `compile=True`: [\d,.]+ µs per step", floor)
    assert len(_table(floor, "| operator |")) == 4
    rows = _table(text, "| operator |")
    assert len(rows) == 4
    shares = [_number(row["share"]) for row in rows]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 100
    assert all(_number(row["µs / step"]) > 0 and _number(row["calls / step"]) > 0
               for row in rows)
    with pytest.raises(subprocess.CalledProcessError, match="exit status 2"):
        _run("step_profile.py", "--env", "SyntheticMDP-v0:0", "--out", str(out))


def test_allocator_alternates_fresh_processes_with_and_without_the_thresholds(tmp_path):
    out = tmp_path / "allocator.md"
    _run("allocator.py", "--env", "SyntheticMDP-v0:8", "--pairs", "1", "--seconds", "0.2",
         "--out", str(out))
    text = out.read_text()
    assert "MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824" in text
    (row,) = _table(text, "| env | N |")
    assert row["env"] == "SyntheticMDP-v0" and row["N"] == "8"
    default = _number(row["glibc defaults"].split()[0])
    tuned = _number(row["tuned thresholds"].split()[0])
    assert default > 0 and tuned > 0
    assert _number(row["tuned / default"]) == pytest.approx(tuned / default, abs=0.01)

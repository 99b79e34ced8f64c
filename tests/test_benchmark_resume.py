"""Multi-run benchmarks continue a killed run with --resume to the result of an uninterrupted one.

Each test runs a script on tiny settings, kills it (an exception from its unit of work)
once the first unit is saved, checks that the progress is refused without a flag and
with a changed argument, resumes it and compares the output with an uninterrupted run's.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest


def _killed_at_second_unit(monkeypatch, module, name):
    """Make ``module.name`` raise on its second call; returns the list of calls."""
    unit, calls = getattr(module, name), []

    def dies_on_the_second_call(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return unit(*args, **kwargs)

    monkeypatch.setattr(module, name, dies_on_the_second_call)
    return calls


def _counted(monkeypatch, module, name):
    """Record the calls of ``module.name`` (restoring the original); returns the list."""
    monkeypatch.undo()
    unit, calls = getattr(module, name), []

    def counts(*args, **kwargs):
        calls.append(args)
        return unit(*args, **kwargs)

    monkeypatch.setattr(module, name, counts)
    return calls


def _tiny_implicit_data(folder):
    """An LCF-format folder (``user item item ...``): 60 users, 40 items."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    items = [rng.choice(40, size=16, replace=False) for _ in range(60)]
    for name, part in (("train.txt", slice(0, 8)), ("test.txt", slice(8, 16))):
        lines = [" ".join(map(str, [user, *chosen[part]])) for user, chosen in enumerate(items)]
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def _cf_records(folder):
    """Every record of a cf_quality runs folder without its timings and machine."""
    records = {}
    for path in sorted(folder.glob("*/*.json")):
        if path.name == "ease_lambda.json":
            continue
        record = json.loads(path.read_text())
        for key in ("train_seconds", "eval_seconds", "machine"):
            record.pop(key)
        for epoch in record["history"]:
            epoch.pop("seconds")
        records[path.name] = record
    return records


def test_cf_quality_resumes_a_killed_run(benchmark_module, tmp_path, monkeypatch):
    bench = benchmark_module("cf_quality")
    data = _tiny_implicit_data(tmp_path / "data")
    tiny = ["--data", str(data), "--seeds", "0", "1", "--models", "popularity", "mult-dae",
            "--set", "epochs=2", "--batch-size", "16"]
    whole = tmp_path / "whole"
    bench.main([*tiny, "--runs", str(whole)])
    assert len(_cf_records(whole)) == 3 and not list(whole.glob("*.progress.json"))

    runs = tmp_path / "resumed"
    _killed_at_second_unit(monkeypatch, bench, "train_one")
    with pytest.raises(RuntimeError, match="killed"):
        bench.main([*tiny, "--runs", str(runs)])
    assert len(_cf_records(runs)) == 1
    with pytest.raises(FileExistsError, match="--resume"):
        bench.main([*tiny, "--runs", str(runs)])
    with pytest.raises(ValueError, match="--seeds"):
        bench.main([*tiny[:3], *tiny[4:], "--runs", str(runs), "--resume"])
    calls = _counted(monkeypatch, bench, "train_one")
    bench.main([*tiny, "--runs", str(runs), "--resume"])
    assert [call[:2] for call in calls] == [("mult-dae", 0), ("mult-dae", 1)]
    assert _cf_records(runs) == _cf_records(whole)
    assert not list(runs.glob("*.progress.json"))
    with pytest.raises(FileExistsError, match="--overwrite"):  # finished runs are not reused
        bench.main([*tiny, "--runs", str(runs)])


def test_recsimu_experiments_resumes_a_killed_run(benchmark_module, tmp_path, monkeypatch,
                                                  tiny_world):
    from recgym.data import LogDataset
    from recgym.fidelity import make_logs

    bench = benchmark_module("recsimu_experiments")
    logs = make_logs(tiny_world, "random", 400).drop(columns="true_state")
    last = logs["step"] == logs.groupby("session_id")["step"].transform("max")
    logs = logs[~(last & (logs["session_id"] % 2 == 0))].copy()  # some end with a click,
    skipped = np.random.default_rng(0).random(len(logs)) < 0.3  # some skip within: every
    logs.loc[skipped, "click"] = -1  # split of the tuples has both classes (for the AUC)
    data = tmp_path / "logs.parquet"
    LogDataset(logs, num_items=tiny_world.num_items).save(data)
    tiny = ["--data", str(data), "--seeds", "0", "1", "--state-length", "2", "--epochs", "1",
            "--pretrain-epochs", "1", "--embedding-epochs", "1", "--sensitivity-only",
            "--sensitivity-n", "2"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"  # named in the commands
    bench.main([*tiny, "--runs", str(whole / "runs.jsonl"), "--out", str(whole / "out.md")])

    paths = ["--runs", str(resumed / "runs.jsonl"), "--out", str(resumed / "out.md")]
    _killed_at_second_unit(monkeypatch, bench, "run_seed")
    with pytest.raises(RuntimeError, match="killed"):
        bench.main([*tiny, *paths])
    assert len((resumed / "runs.jsonl").read_text().splitlines()) == 1
    assert not (resumed / "out.md").exists()
    with pytest.raises(FileExistsError, match="--resume"):
        bench.main([*tiny, *paths])
    with pytest.raises(ValueError, match="--epochs"):
        bench.main([*tiny[:8], "2", *tiny[9:], *paths, "--resume"])
    calls = _counted(monkeypatch, bench, "run_seed")
    bench.main([*tiny, *paths, "--resume"])
    assert [call[1] for call in calls] == [1]
    for name in ("out.md", "runs.jsonl"):  # equal but for the folder in the commands
        assert (resumed / name).read_text().replace("resumed", "whole") == \
            (whole / name).read_text()
    assert not list(resumed.glob("*.progress.json"))


def _irecgan_records(path):
    """The runs of an irecgan_offline / _online runs file, without their timings."""
    return [{key: value for key, value in json.loads(line).items() if key != "seconds"}
            for line in path.read_text().splitlines()]


def _without_timing(path):
    """A results page without its line of dates and minutes, equal but for the folder name."""
    return [line.replace("resumed", "whole") for line in path.read_text().splitlines()
            if not line.startswith("Date ")]


def test_irecgan_offline_resumes_a_killed_run(benchmark_module, tmp_path, monkeypatch):
    bench = benchmark_module("irecgan_offline")
    tiny = ["--seeds", "0", "--sizes", "20", "--policies", "random", "max", "--hidden-size",
            "8", "--embedding-dim", "8", "--adversarial-updates", "1"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    bench.main([*tiny, "--runs", str(whole / "runs.jsonl"), "--out", str(whole / "out")])
    assert len(_irecgan_records(whole / "runs.jsonl")) == 2

    paths = ["--runs", str(resumed / "runs.jsonl"), "--out", str(resumed / "out")]
    _killed_at_second_unit(monkeypatch, bench, "run_setting")
    with pytest.raises(RuntimeError, match="killed"):
        bench.main([*tiny, *paths])
    assert len(_irecgan_records(resumed / "runs.jsonl")) == 1
    with pytest.raises(FileExistsError, match="--resume"):
        bench.main([*tiny, *paths])
    with pytest.raises(ValueError, match="--hidden-size"):
        bench.main([*tiny[:8], "16", *tiny[9:], *paths, "--resume"])
    calls = _counted(monkeypatch, bench, "run_setting")
    bench.main([*tiny, *paths, "--resume"])
    assert [call[:3] for call in calls] == [("max", 20, 0)]
    assert _irecgan_records(resumed / "runs.jsonl") == _irecgan_records(whole / "runs.jsonl")
    assert _without_timing(resumed / "out.md") == _without_timing(whole / "out.md")
    assert not (resumed / "out.progress.json").exists()


def test_irecgan_online_resumes_a_killed_run(benchmark_module, tmp_path, monkeypatch):
    bench = benchmark_module("irecgan_online")
    tiny = ["--seeds", "0", "1", "--iterations", "1"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    bench.main([*tiny, "--runs", str(whole / "runs.jsonl"), "--out", str(whole / "out")])
    assert len(_irecgan_records(whole / "runs.jsonl")) == 2

    paths = ["--runs", str(resumed / "runs.jsonl"), "--out", str(resumed / "out")]
    _killed_at_second_unit(monkeypatch, bench, "run_seed")
    with pytest.raises(RuntimeError, match="killed"):
        bench.main([*tiny, *paths])
    assert len(_irecgan_records(resumed / "runs.jsonl")) == 1
    with pytest.raises(FileExistsError, match="--resume"):
        bench.main([*tiny, *paths])
    with pytest.raises(ValueError, match="--iterations"):
        bench.main([*tiny[:-1], "2", *paths, "--resume"])
    calls = _counted(monkeypatch, bench, "run_seed")
    bench.main([*tiny, *paths, "--resume"])
    assert [call[0] for call in calls] == [1]
    assert _irecgan_records(resumed / "runs.jsonl") == _irecgan_records(whole / "runs.jsonl")
    assert _without_timing(resumed / "out.md") == _without_timing(whole / "out.md")
    assert not (resumed / "out.progress.json").exists()


def test_gan_user_fidelity_resumes_a_killed_run(benchmark_module, tmp_path, monkeypatch,
                                                shared_data):
    bench = benchmark_module("gan_user_fidelity")
    tiny = ["--data", "yoochoose", "--root", str(shared_data / "yoochoose-clicks-100k"),
            "--max-sessions", "300", "--seeds", "0", "1", "--epochs", "1",
            "--adversarial-epochs", "1", "--hidden", "8"]
    whole, resumed = tmp_path / "whole.md", tmp_path / "resumed.md"
    bench.main([*tiny, "--out", str(whole)])

    _killed_at_second_unit(monkeypatch, bench, "run_seed")
    with pytest.raises(RuntimeError, match="killed"):
        bench.main([*tiny, "--out", str(resumed)])
    assert "seeds [0]" in resumed.read_text()  # the table of the finished seed
    with pytest.raises(FileExistsError, match="--resume"):
        bench.main([*tiny, "--out", str(resumed)])
    with pytest.raises(ValueError, match="--max-sessions"):
        bench.main([*tiny[:5], "200", *tiny[6:], "--out", str(resumed), "--resume"])
    calls = _counted(monkeypatch, bench, "run_seed")
    bench.main([*tiny, "--out", str(resumed), "--resume"])
    assert [call[1] for call in calls] == [1]

    def table(path):  # without the minutes it took, and the file's name
        return re.sub(r"\d+ min on", "", path.read_text().replace("resumed.md", "whole.md"))

    assert table(resumed) == table(whole) and "seeds [0, 1]" in whole.read_text()
    assert not resumed.with_suffix(".progress.json").exists()


def _fidelity_runs(path):
    """The fits of a fidelity runs file, without their timings."""
    return [{key: value for key, value in json.loads(line).items()
             if key not in ("seconds", "timings")} for line in path.read_text().splitlines()]


def _fidelity_sections(path):
    """The per-fit sections of a fidelity results page, without their timings."""
    text = path.read_text().split("\n## Per kind\n", 1)[1]
    return [line for line in text.splitlines()
            if not line.startswith(("Time:", "Total ", "Note: resumed"))]


def test_fidelity_resumes_a_killed_run(benchmark_module, tmp_path, monkeypatch):
    import shutil

    bench = benchmark_module("fidelity")
    tiny = ["--logging", "random", "--sessions", "60", "--kinds", "count", "item-rate",
            "--seeds", "0", "--eval-sessions", "4", "--held-out", "20", "--ppo-timesteps",
            "2048", "--ensemble", "1"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    bench.main([*tiny, "--out", str(whole)])
    runs = "fidelity_default.runs.jsonl"
    assert len(_fidelity_runs(whole / runs)) == 2

    resumed.mkdir()  # the runs of an earlier command, kept by --append
    shutil.copy(whole / runs, resumed / runs)
    _killed_at_second_unit(monkeypatch, bench, "score")
    with pytest.raises(RuntimeError, match="killed"):
        bench.main([*tiny, "--out", str(resumed), "--append"])
    assert len(_fidelity_runs(resumed / runs)) == 3
    with pytest.raises(FileExistsError, match="--resume"):
        bench.main([*tiny, "--out", str(resumed), "--append"])
    with pytest.raises(ValueError, match="--append"):  # the earlier runs are not dropped
        bench.main([*tiny, "--out", str(resumed), "--resume"])
    with pytest.raises(ValueError, match="--sessions"):
        bench.main([*tiny[:3], "80", *tiny[4:], "--out", str(resumed), "--append", "--resume"])
    calls = _counted(monkeypatch, bench, "score")
    monkeypatch.setattr(bench, "train_ppo", None)  # the world's PPO is loaded, not retrained
    bench.main([*tiny, "--out", str(resumed), "--append", "--resume"])
    assert calls == [("item-rate",)]
    assert _fidelity_runs(resumed / runs) == 2 * _fidelity_runs(whole / runs)  # no duplicate
    sections = _fidelity_sections(resumed / "fidelity_default.md")
    assert sections[len(sections) // 2:] == _fidelity_sections(whole / "fidelity_default.md")
    assert not list(resumed.glob("*.progress*"))


def test_fidelity_real_resumes_a_killed_run(benchmark_module, tmp_path, monkeypatch,
                                            shared_data):
    bench = benchmark_module("fidelity_real")
    tiny = ["--root", str(shared_data), "--data", "coat", "--kinds", "count", "item-rate",
            "logistic", "--bootstrap", "20", "--refits", "1"]
    whole, resumed = tmp_path / "whole.md", tmp_path / "resumed.md"
    bench.main([*tiny, "--out", str(whole)])

    _killed_at_second_unit(monkeypatch, bench, "run_kind")
    with pytest.raises(RuntimeError, match="killed"):
        bench.main([*tiny, "--out", str(resumed)])
    assert len(json.loads(resumed.with_suffix(".progress.json").read_text())["rows"][
        "Coat: fit on self-selected ratings, predict random exposure"]) == 1
    with pytest.raises(FileExistsError, match="--resume"):
        bench.main([*tiny, "--out", str(resumed)])
    with pytest.raises(ValueError, match="--bootstrap"):
        bench.main([*tiny[:9], "30", *tiny[10:], "--out", str(resumed), "--resume"])
    calls = _counted(monkeypatch, bench, "run_kind")
    bench.main([*tiny, "--out", str(resumed), "--resume"])
    assert [call[1] for call in calls] == ["item-rate", "logistic"]

    def results(path):  # without the minutes, the load, the other processes and fit times
        text = re.sub(r"\(\d+ min\)|Also running.*|1-min load average [\d.]+", "",
                      path.read_text())
        return [re.sub(r"\| [~\d.]+( \(est\.\))? \| (\d*) \| ([^|]*) \|$", r"| \2 | \3 |", line)
                for line in text.replace("resumed.md", "whole.md").splitlines()]

    assert results(resumed) == results(whole)
    assert not resumed.with_suffix(".progress.json").exists()


def test_irecgan_diginetica_resumes_a_killed_run(benchmark_module, tmp_path, monkeypatch,
                                                 shared_data):
    bench = benchmark_module("irecgan_diginetica")
    tiny = ["--root", str(shared_data / "diginetica-cikm2016"), "--seeds", "0", "1",
            "--num-items", "50", "--list-size", "12", "--embedding-dim", "4",
            "--hidden-size", "4", "--user-epochs", "1", "--pretrain-epochs", "1",
            "--epochs", "1", "--rollouts", "1", "--max-steps", "3"]
    whole, resumed = tmp_path / "whole.md", tmp_path / "resumed.md"
    bench.main([*tiny, "--out", str(whole)])

    _killed_at_second_unit(monkeypatch, bench, "run_seed")
    with pytest.raises(RuntimeError, match="killed"):
        bench.main([*tiny, "--out", str(resumed)])
    assert len(json.loads(resumed.with_suffix(".progress.json").read_text())["runs"]) == 1
    with pytest.raises(FileExistsError, match="--resume"):
        bench.main([*tiny, "--out", str(resumed)])
    with pytest.raises(ValueError, match="--list-size"):
        bench.main([*tiny[:8], "10", *tiny[9:], "--out", str(resumed), "--resume"])
    calls = _counted(monkeypatch, bench, "run_seed")
    bench.main([*tiny, "--out", str(resumed), "--resume"])
    assert [call[2] for call in calls] == [1]
    assert resumed.read_text().replace("resumed.md", "whole.md") == whole.read_text()
    assert not resumed.with_suffix(".progress.json").exists()


@pytest.mark.slow
def test_a_sigkilled_benchmark_resumes_to_the_uninterrupted_table(tmp_path, shared_data):
    """A real SIGKILL, not a raised exception: the kill lands wherever the run is."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "irecgan_diginetica.py"
    tiny = ["--root", str(shared_data / "diginetica-cikm2016"), "--seeds", "0", "1", "2",
            "--num-items", "50", "--list-size", "12", "--embedding-dim", "4",
            "--hidden-size", "4", "--user-epochs", "1", "--pretrain-epochs", "1",
            "--epochs", "1", "--rollouts", "1", "--max-steps", "3"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(out: Path, *extra: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), *tiny, "--out", str(out), *extra],
                                env=environment, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

    whole, resumed = tmp_path / "whole.md", tmp_path / "resumed.md"
    assert run(whole).wait(timeout=600) == 0
    process, progress, started = run(resumed), resumed.with_suffix(".progress.json"), time.time()
    while not progress.exists() and process.poll() is None:
        assert time.time() - started < 600, "no progress file appeared"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(json.loads(progress.read_text())["runs"]) < 3  # killed before the end
    finished = run(resumed, "--resume")
    assert finished.wait(timeout=600) == 0, finished.stderr.read()[-2000:]
    assert resumed.read_text().replace("resumed.md", "whole.md") == whole.read_text()
    assert not progress.exists()

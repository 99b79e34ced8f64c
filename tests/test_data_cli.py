"""``recgym data info``: on log files, on every dataset folder and on dataset names."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from recgym.cli import main
from recgym.data import LogDataset, describe_logs


def run(argv, capsys):
    """Exit status, stdout and stderr of ``recgym ARGV`` run in this process."""
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def small_log():
    return pd.DataFrame({
        "session_id": [0, 0, 1], "user_id": [3, 3, 4], "step": [0, 1, 0],
        "slate": [[0, 1], [2, 3], [1, 2]], "click": [1, -1, 2], "feedback": [1, 0, 2],
    })


def test_info_on_log_file(tmp_path, capsys):
    LogDataset(small_log()).save(tmp_path / "logs.parquet")
    code, out, _ = run(["data", "info", str(tmp_path / "logs.parquet")], capsys)
    assert code == 0
    assert "page views: 3   sessions: 2   users: 2" in out
    assert "slate size: 2" in out
    assert "steps per session: min 1, median 1.5, mean 1.50, max 2" in out
    assert "click rate: 66.67% of page views (2 clicks, 1 without)" in out
    assert "feedback classes: 0: 1 (33.3%), 1: 1 (33.3%), 2: 1 (33.3%)" in out
    assert "optional user_id, feedback" in out
    assert "absent optional columns: candidates, reward, propensity, timestamp" in out


def test_info_on_bad_log_reports_problem(tmp_path, capsys):
    bad = small_log()
    bad["click"] = [7, -1, 2]
    bad["slate"] = bad["slate"].map(lambda s: " ".join(map(str, s)))
    bad.to_csv(tmp_path / "bad.csv", index=False)
    code, out, err = run(["data", "info", str(tmp_path / "bad.csv")], capsys)
    assert code == 2 and out == "" and err.startswith("recgym: error: ")
    assert "column 'click'" in err and "click=7" in err and "fix:" in err


def test_info_unknown_target(capsys):
    code, _, err = run(["data", "info", "no-such-dataset"], capsys)
    assert code == 2 and "known:" in err


FOLDERS = {
    "movielens-100k": ["MovieLens ml-100k", "rows: 100,000   users: 943   items: 1,682",
                       "slate size: 40"],
    "movielens-latest-small": ["rows: 100,836   users: 610   items: 9,724",
                               "page views: 100,836   sessions: 610"],
    "movielens-1m-implicit-lcf": ["rows: 796,244   users: 6,022   items: 3,043",
                                  "895,699 interactions, 6,022 users, 3,043 items"],
    "coat": ["rows: 6,960   users: 290   items: 300", "rows: 4,640"],
    "open-bandit-dataset-small": ["log: bts/women", "propensity: min 1e-06"],
    "yoochoose-clicks-100k": ["page views: 83,846   sessions: 21,210"],
    "diginetica-cikm2016": ["views 12,391, purchase rows 256", "feedback classes: 1:", "2:"],
}


@pytest.mark.parametrize("folder", list(FOLDERS))
def test_info_on_every_shared_dataset(shared_data, capsys, folder):
    code, out, err = run(["data", "info", str(shared_data / folder)], capsys)
    assert code == 0, err
    for text in FOLDERS[folder]:
        assert text in out, f"{text!r} missing from:\n{out}"


def test_info_on_names(shared_data, capsys):
    code, out, _ = run(["data", "info", "ml-latest-small"], capsys)
    assert code == 0 and "envs_data" in out and "ratings" in out
    code, out, _ = run(["data", "info", "open-bandit-dataset-small"], capsys)
    assert code == 0 and "log: random/all" in out
    code, out, _ = run(["data", "info", "ml-100k", "--root", str(shared_data)], capsys)
    assert code == 0 and "rows: 100,000" in out
    code, out, _ = run(["data", "info", "coat", "--root", str(shared_data)], capsys)
    assert code == 0 and "Coat" in out


def test_describe_logs_accepts_frames():
    text = describe_logs(small_log(), "tiny")
    assert text.startswith("log: tiny") and "item table: none" in text


def test_module_entry_point(tmp_path):
    LogDataset(small_log()).save(tmp_path / "l.parquet")
    proc = subprocess.run([sys.executable, "-m", "recgym.cli", "data", "info",
                           str(tmp_path / "l.parquet")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "page views: 3" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "recgym.cli", "data", "info", "nope"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("recgym: error: ")


def test_data_layer_does_not_import_torch():
    code = ("import sys, recgym.data, recgym.cli.data, recgym.data.info; "
            "assert 'torch' not in sys.modules, 'recgym.data imported torch'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr

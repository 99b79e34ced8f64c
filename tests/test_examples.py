"""Every example runs end to end with small arguments, in a subprocess, as a newcomer runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *args: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=cwd,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_ppo_example(tmp_path):
    out = _run("ppo_synthetic_mdp.py", "--total-steps", "2048", "--sessions", "50",
               cwd=tmp_path)
    assert {"random", "ppo", "oracle"} <= {line.split(":")[0].strip() for line in
                                          out.splitlines()}


def test_generate_offline_logs_example(tmp_path):
    _run("generate_offline_logs.py", "--sessions", "30", "--out-dir", "logs", cwd=tmp_path)
    for name in ("random", "max", "mix"):
        logs = pd.read_parquet(tmp_path / "logs" / f"synthetic_mdp_{name}_30.parquet")
        assert logs.session_id.nunique() == 30
        assert ((logs.propensity > 0) & (logs.propensity <= 1)).all()


def test_minimal_simulator_example(tmp_path):
    out = _run("minimal_simulator.py", cwd=tmp_path)
    returns = {line.split(":")[0]: float(line.split(":")[1].split()[0])
               for line in out.splitlines()}
    assert returns["popular slate"] > returns["random slates"] > 0

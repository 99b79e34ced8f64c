"""benchmarks/clients.py keeps each finished row and continues a killed run with --resume."""

from __future__ import annotations

import pytest


def _returns(path) -> list[list[str]]:
    """The table's rows without the timing column (training samples per second)."""
    return [line.split("|")[1:-2] for line in path.read_text().splitlines()
            if line.startswith("| ") and "stable-baselines3" in line]


def test_an_interrupted_run_resumes_to_the_same_table(benchmark_module, tmp_path, monkeypatch):
    clients = benchmark_module("clients")
    arguments = ["--ids", "SyntheticMDP-v0", "IRecGAN-v0", "--budget-scale", "0.0001",
                 "--sessions", "20"]
    whole = tmp_path / "whole.md"
    clients.main([*arguments, "--out", str(whole)])
    assert len(_returns(whole)) == 2

    measure, calls = clients.measure, []

    def dies_on_the_second_run(*args, **kwargs):
        calls.append(args[0].env_id)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return measure(*args, **kwargs)

    monkeypatch.setattr(clients, "measure", dies_on_the_second_run)
    out = tmp_path / "resumed.md"
    with pytest.raises(RuntimeError, match="killed"):
        clients.main([*arguments, "--out", str(out)])
    assert out.with_suffix(".progress.json").exists() and not out.exists()
    with pytest.raises(FileExistsError, match="--resume"):
        clients.main([*arguments, "--out", str(out)])
    with pytest.raises(ValueError, match="--sessions"):
        clients.main([*arguments[:-1], "30", "--out", str(out), "--resume"])
    resumed_calls = []

    def records(*args, **kwargs):
        resumed_calls.append(args[0].env_id)
        return measure(*args, **kwargs)

    monkeypatch.setattr(clients, "measure", records)
    clients.main([*arguments, "--out", str(out), "--resume"])
    assert resumed_calls == ["IRecGAN-v0"]  # the finished row is not trained again
    assert _returns(out) == _returns(whole)
    assert not out.with_suffix(".progress.json").exists()

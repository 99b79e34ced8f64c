"""``recgym train ...`` (agents.cf.cli) end to end on ml-latest-small, briefly."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from agents.cf import MultVAE, load_model
from agents.cf.cli import add_train_commands, main
from agents.cf.train import build_model, parse_overrides


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small models run fastest (and most predictably on a shared machine) on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)



def test_parser_wiring():
    parser = argparse.ArgumentParser(prog="recgym")
    add_train_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", "ract", "--data", "ml-100k", "--set", "ac_epochs=3"])
    assert args.model == "ract" and args.overrides == ["ac_epochs=3"] and callable(args.func)


def test_train_writes_checkpoint_curve_and_record(tmp_path, capsys):
    code = main(["train", "mult-vae", "--data", "ml-latest-small", "--out", str(tmp_path),
                 "--set", "epochs=2", "--set", "hidden_dims=(32,)", "--set", "latent_dim=8",
                 "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "test ndcg@100" in out
    stem = tmp_path / "mult-vae-ml-latest-small-seed0"
    model = load_model(f"{stem}.pt")
    assert isinstance(model, MultVAE) and model.epoch == 2
    assert (tmp_path / f"{stem.name}.png").stat().st_size > 0
    record = json.loads((tmp_path / f"{stem.name}.json").read_text())
    assert set(record["test"]) == {"recall@20", "recall@50", "ndcg@100"}
    # resume: one more epoch from the checkpoint
    main(["train", "mult-vae", "--data", "ml-latest-small", "--out", str(tmp_path),
          "--set", "epochs=3", "--set", "hidden_dims=(32,)", "--set", "latent_dim=8",
          "--no-progress", "--resume"])
    assert len(json.loads((tmp_path / f"{stem.name}.json").read_text())["history"]) == 3


def test_bad_options_are_reported():
    with pytest.raises(ValueError, match="no option"):
        build_model("mult-vae", 10, stepz=3)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["steps"])
    with pytest.raises(SystemExit, match="not found|unknown|no"):
        main(["train", "ease", "--data", "no-such-dataset", "--no-progress"])

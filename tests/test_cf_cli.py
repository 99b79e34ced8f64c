"""``recgym train ...`` (recgym.cli.train) end to end on ml-latest-small, briefly."""

from __future__ import annotations

import json

import pytest

from agents.cf import MultVAE, load_model
from agents.cf.train import MODEL_NAMES, build_model, check_overrides
from recgym.cli import build_parser, main
from recgym.cli.train import CF_MODELS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(argv, capsys):
    """Exit status, stdout and stderr of ``recgym ARGV`` run in this process."""
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_parser_wiring():
    args = build_parser().parse_args(["train", "ract", "--data", "ml-100k", "--set",
                                      "ac_epochs=3", "--set", "critic_metric=recall@100",
                                      "--heldout", "600", "--data-root", "/data"])
    assert args.model == "ract" and callable(args.func)
    assert args.overrides == [("ac_epochs", 3), ("critic_metric", "recall@100")]
    assert args.heldout == 600 and isinstance(args.heldout, int) and args.root == "/data"
    assert build_parser().parse_args(["train", "ease", "--data", "x", "--heldout",
                                      "0.2"]).heldout == 0.2
    assert CF_MODELS == tuple(MODEL_NAMES)


def test_train_writes_checkpoint_curve_and_record(tmp_path, capsys):
    assert main(["train", "mult-vae", "--data", "ml-latest-small", "--out", str(tmp_path),
                 "--set", "epochs=2", "--set", "hidden_dims=(32,)", "--set", "latent_dim=8",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "test ndcg@100" in out
    stem = tmp_path / "mult-vae-ml-latest-small-seed0"
    model = load_model(f"{stem}.pt")
    assert isinstance(model, MultVAE) and model.epoch == 2
    assert (tmp_path / f"{stem.name}.png").stat().st_size > 0
    record = json.loads((tmp_path / f"{stem.name}.json").read_text())
    assert set(record["test"]) == {"recall@20", "recall@50", "ndcg@100"}
    # resume: one more epoch from the checkpoint
    assert main(["train", "mult-vae", "--data", "ml-latest-small", "--out", str(tmp_path),
                 "--set", "epochs=3", "--set", "hidden_dims=(32,)", "--set", "latent_dim=8",
                 "--no-progress", "--resume"]) == 0
    assert len(json.loads((tmp_path / f"{stem.name}.json").read_text())["history"]) == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stepz": 3}, "no option"),
        ({"epochs": -1}, "mult-vae option epochs=-1: expected an integer >= 0"),
        ({"epochs": "abc"}, "mult-vae option epochs='abc': expected an integer >= 0"),
        ({"epochs": 2.5}, "epochs=2.5"),
        ({"lr": -1e-3}, "lr=-0.001: expected a number >= 0"),
        ({"lr": float("nan")}, "lr=nan"),
        ({"hidden_dims": 32}, "hidden_dims=32: expected a tuple of integers > 0"),
        ({"hidden_dims": (0,)}, "hidden_dims=(0,)"),
        ({"variational": 1}, "variational=1: expected True or False"),
    ],
)
def test_bad_options_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_overrides("mult-vae", overrides)
    with pytest.raises(ValueError, match="option|no option"):
        build_model("mult-vae", 10, **overrides)


def test_good_options_pass():
    check_overrides("ract", {"epochs": 0, "lr": 1, "hidden_dims": [64, 32],
                             "critic_metric": "recall@100", "variational": False})
    check_overrides("ease", {"l2": 100.0})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "epochs=-1"], "mult-vae option epochs=-1"),
        (["--set", "epochs=abc"], "epochs='abc'"),
        (["--set", "epochs"], "argument --set: expected KEY=VALUE"),
        (["--heldout", "-1"], "argument --heldout: expected a fraction of the users in (0, 1) "
                              "or a whole count >= 1, got '-1'"),
        (["--heldout", "2.5"], "got '2.5'"),
    ],
)
def test_bad_train_input_is_refused_before_the_data_is_read(argv, message, tmp_path, capsys):
    # the dataset does not exist: the message shows the options were checked first
    code, _, err = run(["train", "mult-vae", "--data", "no-such-dataset", "--out",
                        str(tmp_path / "out"), *argv], capsys)
    assert code == 2 and err.startswith("recgym: error: ") and message in err, err
    assert not (tmp_path / "out").exists()


def test_data_is_found_under_root_or_recgym_data_only(shared_data, tmp_path, monkeypatch,
                                                      capsys):
    monkeypatch.setenv("RECGYM_DATA", str(tmp_path))
    code, _, err = run(["train", "popularity", "--data", "ml-100k", "--no-progress",
                        "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "not found" in err and str(tmp_path) in err
    code, out, err = run(["train", "popularity", "--data", "ml-100k", "--root",
                          str(shared_data), "--no-progress", "--out", str(tmp_path / "out")],
                         capsys)
    assert code == 0, err
    assert "test ndcg@100" in out

"""recgym's one checkpoint convention: every bad file gets a message naming it and the fix."""

from __future__ import annotations

import pytest
import torch

from recgym.core.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    check_checkpoint,
    checkpoint_payload,
    load_checkpoint,
    read_checkpoint_file,
    save_checkpoint,
)
from recgym.data import envs_data_path
from recgym.simulators.gan_user import GANUsers
from recgym.simulators.irecgan import IRecGANUsers
from recgym.simulators.recsimu import RecSimuUsers

REBUILD = "recgym fit something --out x.pt"


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.pt"
    save_checkpoint(path, checkpoint_payload("demo", {"size": 3}, {"w": torch.ones(3)},
                                             note="extra entries survive"))
    return path


def test_round_trip_keeps_every_entry(good):
    loaded = load_checkpoint(good, "demo")
    assert loaded["recgym_checkpoint"] == FORMAT_VERSION and loaded["config"] == {"size": 3}
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(3))
    assert loaded["note"] == "extra entries survive"


def test_save_is_atomic_and_leaves_no_temporary_file(good):
    before = good.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - whatever torch raises for a lambda
        save_checkpoint(good, {"kind": "demo", "bad": lambda: 0})
    assert good.read_bytes() == before
    assert sorted(p.name for p in good.parent.iterdir()) == ["good.pt"]


def _bad_files(tmp_path, good):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(range(256)) * 8)
    bare = tmp_path / "bare.pt"
    torch.save(torch.zeros(3), bare)
    text = tmp_path / "text.pt"
    text.write_text("session_id,step\n1,0\n")
    return {"truncated or corrupt": truncated, "is empty": empty, "corrupt": noise,
            "holds a Tensor, not a dict": bare, "not a torch file": text}


@pytest.mark.parametrize("problem", ["truncated or corrupt", "is empty", "corrupt",
                                     "holds a Tensor, not a dict", "not a torch file"])
def test_unreadable_files_name_the_file_the_problem_and_the_fix(tmp_path, good, problem):
    path = _bad_files(tmp_path, good)[problem]
    with pytest.raises(CheckpointError) as error:
        read_checkpoint_file(path, rebuild=REBUILD)
    message = str(error.value)
    assert str(path) in message and problem in message and REBUILD in message


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*recgym fit something"):
        read_checkpoint_file(tmp_path / "missing.pt", rebuild=REBUILD)
    with pytest.raises(FileNotFoundError, match="is a directory"):
        read_checkpoint_file(tmp_path)


def test_pickled_objects_are_refused_not_run(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (marker.touch, ())

    path = tmp_path / "evil.pt"
    torch.save({"kind": "demo", "x": Payload()}, path)
    with pytest.raises(CheckpointError, match="never unpickles"):
        read_checkpoint_file(path)
    assert not marker.exists()


def test_kind_version_and_entries_are_checked(good):
    payload = load_checkpoint(good, "demo")
    with pytest.raises(CheckpointError, match="checkpoint of 'demo', expected 'other'"):
        check_checkpoint(payload, "other", source=good)
    with pytest.raises(CheckpointError, match="newer recgym .*format 99"):
        check_checkpoint({**payload, "recgym_checkpoint": 99}, "demo")
    with pytest.raises(CheckpointError, match="no 'kind' entry"):
        check_checkpoint({"state_dict": {}}, "demo")
    with pytest.raises(CheckpointError, match="lacks \\['config'\\]"):
        check_checkpoint({"recgym_checkpoint": 1, "kind": "demo", "state_dict": {}}, "demo")
    assert check_checkpoint(payload, ("other", "demo")) is payload


def test_files_from_before_the_format_version_are_read(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"kind": "demo", "state_dict": {}}, path)
    assert load_checkpoint(path, "demo")["kind"] == "demo"


@pytest.mark.parametrize(("users", "name"), [
    (RecSimuUsers, "recsimu-ml-latest-small.pt"),
    (IRecGANUsers, "irecgan-user-synthetic-mdp.pt"),
    (GANUsers, "gan-user-ml-latest-small.pt"),
])
def test_shipped_checkpoints_load_and_other_kinds_are_refused(users, name):
    assert users.checkpoint_path(None) == envs_data_path() / name
    simulator = users.from_checkpoint()
    assert simulator.num_items > 0
    others = [u for u in (RecSimuUsers, IRecGANUsers, GANUsers) if u is not users]
    with pytest.raises(CheckpointError, match=f"expected '{others[0].checkpoint_kind}'"):
        others[0].from_checkpoint(envs_data_path() / name)

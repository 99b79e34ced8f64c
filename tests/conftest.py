"""Shared pytest fixtures: where the real sample datasets live, and how their absence is handled."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data_root() -> Path:
    return Path(os.environ.get("RECGYM_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real sample datasets (``../shared/data`` or ``$RECGYM_SHARED_DATA``).

    Tests that use it skip when the folder is absent, except where
    ``RECGYM_REQUIRE_SHARED_DATA`` is set (CI), where absence is a failure.
    """
    root = _shared_data_root()
    if not root.is_dir():
        reason = f"real sample data not found at {root}; set RECGYM_SHARED_DATA to its folder"
        if os.environ.get("RECGYM_REQUIRE_SHARED_DATA"):
            pytest.fail(reason + " (RECGYM_REQUIRE_SHARED_DATA is set, so this must not skip)")
        pytest.skip(reason)
    return root


OPTIONAL_EXTRAS = {"ray.rllib": "ray", "minari": "minari"}


def pytest_report_header(config) -> list[str]:
    """Say up front which optional engines are missing, so their skipped tests are not silent."""
    import importlib.util

    missing = [extra for module, extra in OPTIONAL_EXTRAS.items()
               if importlib.util.find_spec(module.split(".")[0]) is None]
    if not missing:
        return ["recgym optional extras: all installed (RLlib and Minari tests run)"]
    return [f"recgym optional extras missing: {', '.join(missing)}; their tests skip "
            f"(install with pip install -e '.[{','.join(missing)}]')"]


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small models run fastest (and most predictably on a shared machine) on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_world():
    """A 3-state, 8-item synthetic world with slates of 2: simulators fit on it in seconds."""
    from recgym.simulators.synthetic_mdp import SyntheticMDP

    return SyntheticMDP(3, 8, 2)


@pytest.fixture(scope="module")
def tiny_logs(tiny_world):
    """300 random-policy sessions of ``tiny_world``."""
    from recgym.fidelity import make_logs

    return make_logs(tiny_world, "random", 300)


@pytest.fixture(scope="session")
def benchmark_module():
    """Load a script of ``benchmarks/`` by name (it is not a package) as a module.

    The folder goes on ``sys.path``, as when the script runs, for its shared ``reporting``.
    """
    folder = str(REPO_ROOT / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" /
                                                      f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses resolve their module by name
        spec.loader.exec_module(module)
        return module
    return load

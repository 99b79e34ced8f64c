"""Where a benchmark's numbers come from (command, machine, load), and how results are written.

Benchmarks run as scripts (``python benchmarks/NAME.py``), so they import this module as
``reporting``. A results file states the command, the machine and the load, because these
machines are shared: a figure without them cannot be compared with another.
"""

from __future__ import annotations

import importlib
import io
import os
import platform
import pstats
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE_NAMESPACE = "before"  # env ids of another commit's recgym, timed beside this one


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(*libraries: str) -> str:
    """Date, CPU, cores, memory, load, torch threads and the versions of ``libraries``.

    The 1-minute load average is read when the function is called: call it as the runs
    end, so that a loaded machine shows in the results.
    """
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    parts = [date.today().isoformat(), cpu_name(), f"{os.cpu_count()} CPU cores",
             f"{memory:.0f} GiB RAM", f"1-min load average {os.getloadavg()[0]:.1f}",
             f"Python {platform.python_version()}"]
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    for name in libraries:
        module = sys.modules.get(name) or __import__(name)
        parts.append(f"{name} {getattr(module, '__version__', '?')}")
    return "; ".join(parts)


def command_line() -> str:
    """The command that ran this script, as a user would type it (arguments quoted)."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def write_results(path: str | os.PathLike, text: str) -> Path:
    """Write a results file atomically (a killed run never leaves half a table)."""
    from recgym.data import atomic_write

    path = Path(path)
    with atomic_write(path) as temporary:
        temporary.write_text(text if text.endswith("\n") else text + "\n")
    return path


def profile_table(profiler, top: int, sort: str = "tottime") -> str:
    """The ``top`` rows of a ``cProfile.Profile`` as text, without pstats' preamble lines."""
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(sort).print_stats(top)
    lines = out.getvalue().strip().splitlines()
    return "\n".join(line for line in lines if line.strip() and "Ordered by" not in line
                     and "List reduced" not in line)


@contextmanager
def package_from(tree: Path) -> Iterator[None]:
    """Import ``recgym`` from ``tree`` while the block runs, then restore this one.

    Objects built inside the block keep the other version's code, so both versions run
    side by side in one process: a before / after ratio then shares the machine's load.
    """
    def loaded() -> dict:
        return {name: module for name, module in sys.modules.items()
                if name == "recgym" or name.startswith("recgym.")}

    current = loaded()
    for name in current:
        del sys.modules[name]
    sys.path.insert(0, str(tree))
    try:
        importlib.import_module("recgym")
        yield
    finally:
        sys.path.remove(str(tree))
        for name in loaded():
            del sys.modules[name]
        sys.modules.update(current)


def register_baseline(tree: Path, env_id: str) -> str:
    """Register ``env_id`` as the ``recgym`` under ``tree`` builds it; returns the new id.

    Single and vector entry points both come from ``tree``; the id is ``before/<env_id>``.
    """
    import gymnasium as gym

    def entry(path: str | None):
        if path is None:
            return None
        module, name = path.split(":")
        return getattr(importlib.import_module(module), name)

    baseline_id = f"{BASELINE_NAMESPACE}/{env_id}"
    with package_from(tree):
        spec = gym.spec(env_id)
        gym.register(baseline_id, entry_point=entry(spec.entry_point),
                     vector_entry_point=entry(spec.vector_entry_point),
                     max_episode_steps=spec.max_episode_steps, kwargs=spec.kwargs)
    return baseline_id

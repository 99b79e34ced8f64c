r"""Steps per second of the single envs of RecSim and RecoGym, next to CartPole-v1.

These are the simulators a user would otherwise pick. They need the retired ``gym``
package, TensorFlow 2.15 and numpy 1.x, which cannot share recgym's environment, so this
script runs in its own and imports nothing from recgym. Figures from two processes are
compared through a yardstick both time beside their envs: :func:`python_yardstick`, the
same pure-Python code on the same interpreter (CartPole-v1 is timed too, but ``gym``'s
with numpy 1.x and Gymnasium's with numpy 2.x do not run at the same speed).
:mod:`single_env` reads this script's JSON (``--other-suites``) and puts each suite's ratio
to the yardstick next to recgym's. A separate environment, from the repository
root (about 2 GB, a few minutes)::

    python -m venv /tmp/suites
    /tmp/suites/bin/pip install --no-deps recsim==0.2.4 recogym==0.1.3.0 dopamine-rl==4.1.2
    /tmp/suites/bin/pip install tensorflow-cpu==2.15.1 gym==0.26.2 gin-config absl-py six \
        scipy==1.11.4 "scikit-learn<1.6" "matplotlib<3.10" "pandas<2.3" numba tqdm \
        simplegeneric torch==2.13.0
    OMP_NUM_THREADS=1 /tmp/suites/bin/python benchmarks/other_suites.py \
        --out benchmarks/results/other_suites.json

RecSim: ``interest_evolution`` with the configuration of RecSim's own tutorial (10
candidates, slates of 2, documents resampled every step), built by its
``create_environment`` (RecSim registers no ``gym`` id, so no wrappers), random slates of
distinct candidates. RecoGym: ``reco-gym-v1`` with its ``env_1_args`` (10 products) made by
``gym.make``; a step is one recommendation, and the organic sessions RecoGym simulates
between them (``step(None)``) are timed with the steps they precede.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

CLOCK_EVERY = 64  # steps between clock reads
YARDSTICK = "Python yardstick"
CARTPOLE = "CartPole-v1 (gym 0.26)"


def python_yardstick():
    """A fixed pure-Python workload (20 rounds of integer hashing per step).

    Timed beside the envs in each process, it measures how fast this interpreter runs
    plain Python at that moment, whatever the packages installed.
    """
    state = [0x12345678]

    def step(i: int) -> None:
        x = state[0]
        for _ in range(20):
            x = (x * 0x7FEB352D + i) & 0xFFFFFFFF
            x ^= x >> 15
        state[0] = x

    return step


def cartpole():
    """``gym``'s CartPole-v1 and a stepping function (random actions)."""
    import gym
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(2, size=1024)

    def step(i: int) -> None:
        _, _, terminated, truncated, _ = env.step(int(actions[i % len(actions)]))
        if terminated or truncated:
            env.reset()

    return step


def recsim_interest_evolution():
    """RecSim's interest_evolution env as its tutorial configures it, random slates."""
    from recsim.environments import interest_evolution
    config = {"num_candidates": 10, "slate_size": 2, "resample_documents": True, "seed": 0}
    env = interest_evolution.create_environment(config)
    env.reset()
    rng = np.random.default_rng(0)
    slates = [rng.choice(config["num_candidates"], config["slate_size"], replace=False)
              for _ in range(1024)]

    def step(i: int) -> None:
        _, _, done, _ = env.step(slates[i % len(slates)])
        if done:
            env.reset()

    return step


def recogym_v1():
    """RecoGym's reco-gym-v1 with ``env_1_args``, random recommendations."""
    import gym
    import recogym  # noqa: F401  (registers the ids)
    from recogym import env_1_args
    env = gym.make("reco-gym-v1", disable_env_checker=True)
    env.init_gym(env_1_args)
    actions = np.random.default_rng(0).integers(env_1_args["num_products"], size=1024)
    env.reset()
    done = env.step(None)[2]

    def step(i: int) -> None:
        nonlocal done
        while done:  # a new user: RecoGym first plays its organic session
            env.reset()
            done = env.step(None)[2]
        done = env.step(int(actions[i % len(actions)]))[2]

    return step


SUITES = {YARDSTICK: python_yardstick, CARTPOLE: cartpole,
          "RecSim interest_evolution": recsim_interest_evolution,
          "RecoGym reco-gym-v1": recogym_v1}


def steps_per_second(step, seconds: float) -> float:
    """Steps per second of ``step`` over about ``seconds``."""
    steps = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for i in range(steps, steps + CLOCK_EVERY):
            step(i)
        steps += CLOCK_EVERY
    return steps / (time.perf_counter() - started)


def package_versions() -> dict[str, str]:
    """Versions of the packages the figures depend on."""
    from importlib.metadata import PackageNotFoundError, version
    versions = {}
    for name in ("recsim", "recogym", "gym", "numpy", "tensorflow-cpu"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def main() -> None:
    """Time each suite in turn, write medians and per-repeat ratios to the yardstick as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per suite and repeat")
    parser.add_argument("--load-note", default="nothing else known",
                        help="what else ran on the machine, for the results file")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()
    steps = {name: build() for name, build in SUITES.items()}
    speeds: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():
        steps_per_second(step, 0.2)
    for repeat in range(args.repeats):
        for name, step in steps.items():
            speeds[name].append(steps_per_second(step, args.seconds))
        print(f"repeat {repeat + 1}: " + ", ".join(f"{name} {values[-1]:,.0f}"
                                                  for name, values in speeds.items()),
              flush=True)

    def ratio(values: list[float], reference: str) -> float:
        return statistics.median(a / b for a, b in zip(values, speeds[reference], strict=True))

    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(), "versions": package_versions(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_1min": os.getloadavg()[0], "load_note": args.load_note,
        "repeats": args.repeats, "seconds": args.seconds,
        "suites": {name: {"steps_per_second": statistics.median(values),
                          "per_yardstick": ratio(values, YARDSTICK),
                          "per_cartpole": ratio(values, CARTPOLE)}
                   for name, values in speeds.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=args.out.parent, delete=False,
                                     suffix=".tmp") as handle:
        json.dump(result, handle, indent=1)
    os.replace(handle.name, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

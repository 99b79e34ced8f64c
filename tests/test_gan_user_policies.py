"""The synthetic source of benchmarks/gan_user_policies.py (Table 3 on logs with non-clicks)."""

from __future__ import annotations

import itertools
import json
from argparse import Namespace

import pytest
import torch

from recgym.core.policy import RandomPolicy
from recgym.evaluation import evaluate_policy
from recgym.simulators.synthetic_mdp import SyntheticWorld


def _brute_force_values(world: SyntheticWorld, k: int, horizon: int) -> torch.Tensor:
    """Expected clicks of the best slate sequence, by enumerating every slate: ``(m,)``."""
    rewards, transition = world.rewards.double(), world.transition.double()
    value = torch.zeros(world.num_states, dtype=torch.float64)
    for _ in range(horizon):
        after = 1.0 + torch.einsum("asz,z->sa", transition, value)
        best = torch.full_like(value, -1.0)
        for slate in itertools.combinations(range(world.num_items), k):
            shown = rewards[:, list(slate)]
            worth = (shown.pow(2) * after[:, list(slate)]).sum(1) / shown.sum(1)
            best = torch.maximum(best, worth)
        value = best
    return value


def test_optimal_slates_equal_the_brute_force_optimum(benchmark_module):
    bench = benchmark_module("gan_user_policies")
    world = SyntheticWorld.random(3, 7, seed=1)
    slates, values = bench.optimal_slates(world, 3, 4)
    assert slates.shape == (4, 3, 3) and values.shape == (4, 3)
    for steps_left in (1, 4):
        expected = _brute_force_values(world, 3, steps_left)
        torch.testing.assert_close(values[4 - steps_left], expected)
    greedy, one_step = bench.optimal_slates(world, 3, 1)
    torch.testing.assert_close(one_step[0], values[-1])
    assert torch.equal(greedy[0], slates[-1])


@pytest.mark.parametrize("world_name", ["default", "clickbait"])
def test_synthetic_source_has_non_clicks_and_a_true_world_test(benchmark_module, world_name):
    bench = benchmark_module("gan_user_policies")
    args = Namespace(ks=[2], world_seed=0, world=world_name, log_sessions=300, epochs=1,
                     no_click="learned",
                     iterations=8, users=16, hidden=8, bandit_iterations=2, alpha=0.5,
                     sessions=200)
    setting = next(bench.synthetic_settings(args, seed=0))
    assert setting.train_model.no_click_reward is not None
    rewards = setting.offline["reward"]
    assert (rewards == -1).any() and (rewards == 1).any()  # logged pages without a click
    assert bool((setting.offline["done"][rewards == -1] == 1).all())
    world = setting.world
    optimal = bench.WorldSlates(bench.optimal_slates(world.world.world, 2, 10)[0], "optimal")
    random = evaluate_policy(world, RandomPolicy(world.num_candidates, 2, seed=0), 400,
                             seed=5, max_steps=10, coverage_at=())
    best = evaluate_policy(world, optimal, 400, seed=5, max_steps=10, coverage_at=())
    assert best.mean_return > random.mean_return + 1.0
    assert 0.0 < random.ctr < 1.0
    out = {"results": {}, "train_results": {}, "seconds": {}}
    bench.run_policies(args, 0, setting, out)
    assert set(out["world_results"]) == {f"{name}|2" for name in bench.WORLD_ORDER}
    ctr = [ctr for _, ctr in out["results"].values()]
    assert max(ctr) < 1.0  # the test model's users also leave pages without a click
    greedy, optimal = (out["world_results"][f"true {name} (world)|2"][0]
                       for name in ("greedy", "optimal"))
    if world_name == "clickbait":  # planning pays there
        assert optimal > 1.5 * greedy
    else:  # the paper's world: the greedy slate is (about) optimal
        assert optimal < 1.1 * greedy


def test_an_interrupted_run_resumes_from_the_next_seed(benchmark_module, tmp_path,
                                                        monkeypatch):
    bench = benchmark_module("gan_user_policies")
    tiny = ["--source", "synthetic-mdp", "--no-click", "learned", "--seeds", "0", "1",
            "--ks", "3", "--epochs", "1", "--iterations", "8", "--users", "16", "--hidden",
            "8", "--bandit-iterations", "2", "--log-sessions", "300", "--sessions", "50"]
    whole = tmp_path / "whole.json"
    bench.main([*tiny, "--out", str(tmp_path / "whole.md"), "--raw", str(whole)])
    run_seed, calls, killing = bench.run_seed, [], [True]

    def dies_on_the_second_seed(args, seed, ml):
        calls.append(seed)
        if seed == 1 and killing[0]:
            raise RuntimeError("killed")
        return run_seed(args, seed, ml)

    monkeypatch.setattr(bench, "run_seed", dies_on_the_second_seed)
    out, raw = tmp_path / "resumed.md", tmp_path / "resumed.json"
    with pytest.raises(RuntimeError, match="killed"):
        bench.main([*tiny, "--out", str(out), "--raw", str(raw)])
    with pytest.raises(FileExistsError, match="--resume"):
        bench.main([*tiny, "--out", str(out), "--raw", str(raw)])
    calls.clear()
    killing[0] = False
    bench.main([*tiny, "--out", str(out), "--raw", str(raw), "--resume"])
    assert calls == [1] and not out.with_suffix(".progress.json").exists()
    finished = [{k: v for k, v in run.items() if k != "seconds"}
                for run in json.loads(raw.read_text())]
    expected = [{k: v for k, v in run.items() if k != "seconds"}
                for run in json.loads(whole.read_text())]
    assert finished == expected

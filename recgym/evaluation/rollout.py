"""Roll a policy out in a simulator: evaluate it, or record what it did as an offline log.

Online evaluation follows IRecGAN sec. 7.1: cumulative reward averaged over generated
sessions, the click-through rate, and coverage@r, the share of the true top-r items
under the current state that appear in the recommended slate, averaged over all steps
(available when the simulator knows its ground truth).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from recgym.core.batch import SimulationBatch, as_slate_tensor
from recgym.core.env import num_candidates
from recgym.core.policy import Policy
from recgym.core.simulator import GroundTruth, UserSimulator


@dataclass
class PolicyEvaluation:
    """Summary of ``n_sessions`` simulated sessions under one policy.

    Attributes:
        mean_return: cumulative reward per session, averaged over sessions.
        return_std_err: standard error of ``mean_return``.
        ctr: clicks per step (page view) over all steps.
        mean_length: steps per session.
        coverage: ``{r: coverage@r}``; empty when the simulator has no ground truth.
        n_sessions: number of sessions.
    """

    mean_return: float
    return_std_err: float
    ctr: float
    mean_length: float
    n_sessions: int
    coverage: dict[int, float] = field(default_factory=dict)

    def as_row(self) -> dict[str, float]:
        """Flat dict for tables."""
        row = {"return": self.mean_return, "return_se": self.return_std_err, "ctr": self.ctr,
               "length": self.mean_length}
        row.update({f"coverage@{r}": value for r, value in self.coverage.items()})
        return row


def _act(policy: Policy, observation: dict[str, Tensor], simulator: UserSimulator,
         batch: SimulationBatch) -> Tensor:
    slate = policy.act(observation)
    return as_slate_tensor(slate, simulator.slate_size, num_candidates(simulator), batch.device,
                           batch_size=batch.num_users)


def evaluate_policy(simulator: UserSimulator, policy: Policy, n_sessions: int = 1000, *,
                    seed: int = 0, max_steps: int = 200,
                    coverage_at: Sequence[int] = (1, 5, 10), progress: bool = False,
                    device: torch.device | str = "cpu") -> PolicyEvaluation:
    """Simulate ``n_sessions`` sessions under ``policy``, all in one batch.

    Args:
        simulator: the user model (the world).
        policy: acts on the simulator's full observation dict.
        n_sessions: how many sessions to generate (1000 in IRecGAN sec. 7.1).
        seed: session ``i`` uses random stream ``seed + i``.
        max_steps: sessions still running after this many steps are cut.
        coverage_at: the ``r`` of coverage@r (ignored without ground truth).
        progress: show a progress bar over steps.
        device: where to simulate.
    """
    if n_sessions < 1:
        raise ValueError(f"n_sessions must be >= 1, got {n_sessions}")
    batch = SimulationBatch(simulator, n_sessions, device=device)
    batch.seed(torch.arange(n_sessions) + seed)
    batch.reset()
    alive = torch.ones(n_sessions, dtype=torch.bool, device=batch.device)
    returns = torch.zeros(n_sessions, dtype=torch.float64, device=batch.device)
    clicks = steps = 0
    with_truth = isinstance(simulator, GroundTruth) and len(coverage_at) > 0
    top_r = sorted(set(coverage_at)) if with_truth else []
    hits = {r: 0.0 for r in top_r}
    for _ in tqdm(range(max_steps), desc="evaluate", disable=not progress, leave=False):
        if not bool(alive.any()):
            break
        with torch.no_grad():
            slate = _act(policy, batch.observe(), simulator, batch)
        if top_r:
            best = simulator.true_item_rewards(batch.state).topk(max(top_r), dim=1).indices
            shown = (best[:, :, None] == slate[:, None, :]).any(-1)
            for r in top_r:
                hits[r] += float((shown[:, :r].sum(1)[alive]).sum()) / r
        reward, clicked, terminated, _, _ = batch.step(slate)
        returns += reward.double() * alive
        clicks += int(((clicked >= 0) & alive).sum())
        steps += int(alive.sum())
        alive &= ~terminated
    returns_np = returns.cpu().numpy()
    std_err = float(returns_np.std(ddof=1) / math.sqrt(n_sessions)) if n_sessions > 1 else 0.0
    return PolicyEvaluation(
        mean_return=float(returns_np.mean()), return_std_err=std_err,
        ctr=clicks / max(steps, 1), mean_length=steps / n_sessions, n_sessions=n_sessions,
        coverage={r: hits[r] / max(steps, 1) for r in top_r},
    )


def collect_logs(simulator: UserSimulator, policy: Policy, n_sessions: int, *, seed: int = 0,
                 max_steps: int = 200, extra_observation_keys: Sequence[str] = (),
                 progress: bool = False, device: torch.device | str = "cpu") -> pd.DataFrame:
    """Record ``n_sessions`` sessions under ``policy`` as a log (one row per page view).

    Columns follow the recgym log schema: ``session_id``, ``step``, ``slate``, ``click``
    (-1 for none), ``reward``, and ``propensity`` (the policy's probability of the ordered
    slate) when the policy has ``slate_probability``; plus one column per key in
    ``extra_observation_keys`` (e.g. the synthetic MDP's ``true_state``).
    """
    if n_sessions < 1:
        raise ValueError(f"n_sessions must be >= 1, got {n_sessions}")
    batch = SimulationBatch(simulator, n_sessions, device=device)
    batch.seed(torch.arange(n_sessions) + seed)
    batch.reset()
    alive = torch.ones(n_sessions, dtype=torch.bool, device=batch.device)
    session_ids = torch.arange(n_sessions, device=batch.device)
    with_propensity = hasattr(policy, "slate_probability")
    chunks: dict[str, list[np.ndarray]] = {}
    for step in tqdm(range(max_steps), desc="generate logs", disable=not progress, leave=False):
        if not bool(alive.any()):
            break
        observation = batch.observe()
        with torch.no_grad():
            slate = _act(policy, observation, simulator, batch)
            propensity = policy.slate_probability(observation, slate) if with_propensity else None
        reward, clicked, terminated, _, _ = batch.step(slate)
        columns = {"session_id": session_ids, "step": torch.full_like(session_ids, step),
                   "slate": slate, "click": clicked, "reward": reward}
        if propensity is not None:
            columns["propensity"] = propensity
        columns.update({key: observation[key] for key in extra_observation_keys})
        for name, values in columns.items():
            chunks.setdefault(name, []).append(values[alive].cpu().numpy())
        alive &= ~terminated
    data = {name: np.concatenate(parts) for name, parts in chunks.items()}
    data["slate"] = list(data["slate"])
    frame = pd.DataFrame(data)
    return frame.sort_values(["session_id", "step"], kind="stable").reset_index(drop=True)

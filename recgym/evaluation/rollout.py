"""Roll a policy out in a simulator: evaluate it, or record what it did as an offline log.

Online evaluation follows IRecGAN sec. 7.1: cumulative reward averaged over generated
sessions, the click-through rate, and coverage@r, the share of the true top-r items
under the current state that appear in the recommended slate, averaged over all steps
(available when the simulator knows its ground truth).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
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


@dataclass
class _Page:
    """One step of :func:`run_sessions` for every user of the batch."""

    step: int
    observation: dict[str, Tensor]
    slate: Tensor
    reward: Tensor
    clicked: Tensor
    alive: Tensor  # bool (B,): the session was still running when this slate was shown
    extra: dict[str, Tensor]  # what ``on_slate`` returned for this step


def run_sessions(simulator: UserSimulator, policy: Policy, n_sessions: int, *, seed: int,
                 max_steps: int, device: torch.device | str = "cpu", progress: bool = False,
                 description: str = "sessions",
                 on_slate: Callable[..., dict[str, Tensor] | None] | None = None
                 ) -> Iterator[_Page]:
    """The one roll-out loop: every step of ``n_sessions`` sessions run in one batch.

    Session ``i`` draws from random stream ``seed + i``; the loop stops when every session
    has ended or after ``max_steps`` steps. ``on_slate(batch, observation, slate, alive)``
    runs (without gradients) between the policy's choice and the step, e.g. to score the
    slate against the ground truth or to ask the policy its probability; what it returns
    comes back in the page's ``extra``.
    """
    if n_sessions < 1:
        raise ValueError(f"n_sessions must be >= 1, got {n_sessions}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    batch = SimulationBatch(simulator, n_sessions, device=device)
    batch.seed(torch.arange(n_sessions) + seed)
    batch.reset()
    alive = torch.ones(n_sessions, dtype=torch.bool, device=batch.device)
    for step in tqdm(range(max_steps), desc=description, disable=not progress, leave=False):
        if not bool(alive.any()):
            break
        observation = batch.observe()
        with torch.no_grad():
            slate = as_slate_tensor(policy.act(observation), simulator.slate_size,
                                    num_candidates(simulator), batch.device,
                                    batch_size=n_sessions)
            extra = (on_slate(batch, observation, slate, alive) if on_slate else None) or {}
        reward, clicked, terminated, _, _ = batch.step(slate)
        yield _Page(step, observation, slate, reward, clicked, alive.clone(), extra)
        alive &= ~terminated


def session_totals(simulator: UserSimulator, policy: Policy, n_sessions: int, *,
                   seed: int = 0, max_steps: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Reward summed per session, float64 ``(n_sessions,)``, and page views, int64."""
    returns = torch.zeros(n_sessions, dtype=torch.float64)
    lengths = torch.zeros(n_sessions, dtype=torch.int64)
    for page in run_sessions(simulator, policy, n_sessions, seed=seed, max_steps=max_steps):
        returns += page.reward.double().cpu() * page.alive.cpu()
        lengths += page.alive.long().cpu()
    return returns.numpy(), lengths.numpy()


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
    with_truth = isinstance(simulator, GroundTruth) and len(coverage_at) > 0
    top_r = sorted(set(coverage_at)) if with_truth else []
    hits = {r: 0.0 for r in top_r}

    def count_hits(batch: SimulationBatch, observation, slate: Tensor, alive: Tensor) -> None:
        best = simulator.true_item_rewards(batch.state).topk(max(top_r), dim=1).indices
        shown = (best[:, :, None] == slate[:, None, :]).any(-1)
        for r in top_r:
            hits[r] += float((shown[:, :r].sum(1)[alive]).sum()) / r

    returns = torch.zeros(n_sessions, dtype=torch.float64, device=device)
    clicks = steps = 0
    for page in run_sessions(simulator, policy, n_sessions, seed=seed, max_steps=max_steps,
                             device=device, progress=progress, description="evaluate",
                             on_slate=count_hits if top_r else None):
        returns += page.reward.double() * page.alive
        clicks += int(((page.clicked >= 0) & page.alive).sum())
        steps += int(page.alive.sum())
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
    with_propensity = hasattr(policy, "slate_probability")
    chunks: dict[str, list[np.ndarray]] = {}

    def propensity(batch, observation, slate: Tensor, alive: Tensor) -> dict[str, Tensor]:
        return {"propensity": policy.slate_probability(observation, slate)}

    for page in run_sessions(simulator, policy, n_sessions, seed=seed, max_steps=max_steps,
                             device=device, progress=progress, description="generate logs",
                             on_slate=propensity if with_propensity else None):
        session_ids = torch.arange(n_sessions, device=page.slate.device)
        columns = {"session_id": session_ids, "step": torch.full_like(session_ids, page.step),
                   "slate": page.slate, "click": page.clicked, "reward": page.reward,
                   **page.extra}
        columns.update({key: page.observation[key] for key in extra_observation_keys})
        for name, values in columns.items():
            chunks.setdefault(name, []).append(values[page.alive].cpu().numpy())
    data = {name: np.concatenate(parts) for name, parts in chunks.items()}
    data["slate"] = list(data["slate"])
    frame = pd.DataFrame(data)
    return frame.sort_values(["session_id", "step"], kind="stable").reset_index(drop=True)

"""Fitting the choice-continuation users by maximum a-posteriori on slate logs (L-BFGS)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from recgym.data.slates import logged_slates
from recgym.simulators.choice_continuation.model import LoggedSessions, forward
from recgym.simulators.choice_continuation.users import ChoiceContinuationUsers

LOG_COLUMNS = ("session_id", "step", "slate", "click")


@dataclass(frozen=True)
class ChoiceContinuationConfig:
    """Options of the fit.

    Attributes:
        num_latent: ``K``, latent states (capacity).
        prior_scale: standard deviation of the Gaussian prior around the anchor, and of
            the anchor's own draw around 0.
        max_iter: L-BFGS iterations.
        item_continuation: fit the per-item continuation term ``e[a]``.
        logging_model: also fit which items the logs show in each latent state, so that
            the slates of a logger that reads the hidden state identify the latent state
            (see the package docstring); the fitted users do not keep it.
        acceptance_offset_scale: standard deviation of one offset shared by every
            acceptance anchor of the fit: each ensemble member assumes its own level for
            the item-state pairs the logs never show (a randomized prior with a shared
            part), so members disagree on policies that lean on such pairs.
    """

    num_latent: int = 10
    prior_scale: float = 2.0
    max_iter: int = 300
    item_continuation: bool = True
    logging_model: bool = False
    acceptance_offset_scale: float = 0.0

    def __post_init__(self) -> None:
        for name in ("num_latent", "max_iter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"choice-continuation {name} must be an integer >= 1, "
                                 f"got {value!r}")
        if not np.isfinite(self.prior_scale) or self.prior_scale <= 0:
            raise ValueError(f"choice-continuation prior_scale must be a finite number > 0, "
                             f"got {self.prior_scale!r}")
        if not np.isfinite(self.acceptance_offset_scale) or self.acceptance_offset_scale < 0:
            raise ValueError("choice-continuation acceptance_offset_scale must be a finite "
                             f"number >= 0, got {self.acceptance_offset_scale!r}")

    def to_dict(self) -> dict:
        """Plain dict (checkpoint ``config``)."""
        return asdict(self)


def check_logs(logs: pd.DataFrame, num_items: int, slate_size: int) -> None:
    """Raise a ``ValueError`` naming what the fit cannot read in ``logs``."""
    missing = [column for column in LOG_COLUMNS if column not in logs.columns]
    if missing:
        raise ValueError(f"the choice-continuation fit needs the log columns {list(LOG_COLUMNS)}; "
                         f"missing {missing}")
    if len(logs) == 0:
        raise ValueError("the choice-continuation fit got an empty log: it needs sessions")
    slates = logged_slates(logs)
    if slates.ndim != 2 or slates.shape[1] != slate_size:
        raise ValueError(f"the log's slates have {slates.shape[-1]} items, the fit was asked "
                         f"for slate_size={slate_size}")
    if slates.min() < 0 or slates.max() >= num_items:
        raise ValueError(f"the log shows item ids {int(slates.min())}..{int(slates.max())}, "
                         f"outside 0..{num_items - 1}: pass num_items > {int(slates.max())}")
    click = logs["click"].to_numpy(np.int64)
    off_slate = (click >= 0) & ~(slates == click[:, None]).any(1)
    if off_slate.any():
        row = int(np.flatnonzero(off_slate)[0])
        raise ValueError(f"log row {row} clicks item {int(click[row])}, which its slate does not "
                         "show (clicks must be a shown item or -1 for no click)")


def fit_choice_continuation(logs: pd.DataFrame, num_items: int, slate_size: int, *,
                            history_length: int = 10, seed: int = 0,
                            config: ChoiceContinuationConfig | None = None,
                            progress: bool = False) -> ChoiceContinuationUsers:
    """:class:`ChoiceContinuationUsers` by maximum a-posteriori on ``logs``.

    Args:
        logs: sessions in the log schema (``session_id``, ``step``, ``slate``, ``click``).
        num_items: catalogue size ``n``.
        slate_size: ``k``.
        history_length: clicks in the fitted users' observation.
        seed: draws the anchor (prior mean and start point); fits with different seeds
            form an anchored ensemble.
        config: the fit's options (default :class:`ChoiceContinuationConfig`).
        progress: show a bar over the likelihood evaluations.
    """
    config = config or ChoiceContinuationConfig()
    check_logs(logs, num_items, slate_size)
    n, num_latent, prior_scale = num_items, config.num_latent, config.prior_scale
    data = LoggedSessions(logs, n)
    generator = torch.Generator().manual_seed(int(seed))
    shapes = {"start": (num_latent,), "attraction": (num_latent, n),
              "acceptance": (num_latent, n), "transition": (n + 1, num_latent, num_latent),
              "continue_type": (2,), "continue_state": (num_latent, 2),
              "continue_item": (n,)}
    if config.logging_model:
        shapes["logging"] = (num_latent, n)
    anchor = {name: prior_scale * torch.randn(shape, generator=generator, dtype=torch.float64)
              for name, shape in shapes.items()}
    anchor["continue_type"] = torch.zeros(2, dtype=torch.float64)
    if config.acceptance_offset_scale > 0:
        anchor["acceptance"] += config.acceptance_offset_scale * torch.randn(
            (), generator=generator, dtype=torch.float64)
    fitted = [name for name in shapes
              if (name != "acceptance" or data.any_no_click)
              and (name != "continue_item" or config.item_continuation)]
    fixed = {"acceptance": torch.full((num_latent, n), 30.0, dtype=torch.float64),
             "continue_item": torch.zeros(n, dtype=torch.float64)}
    variables = {name: anchor[name].clone().requires_grad_(True) for name in fitted}
    optimizer = torch.optim.LBFGS(list(variables.values()), max_iter=config.max_iter,
                                  line_search_fn="strong_wolfe", history_size=20)
    bar = tqdm(total=config.max_iter, desc="choice-continuation fit (likelihood evaluations)",
               unit="eval", disable=not progress, leave=False)

    def parameters() -> dict[str, Tensor]:
        return {name: variables.get(name, fixed.get(name)) for name in shapes}

    def closure() -> Tensor:
        optimizer.zero_grad()
        penalty = sum(((variables[name] - anchor[name]) ** 2).sum() for name in fitted)
        loss = (-forward(parameters(), data, n) + 0.5 * penalty / prior_scale ** 2) \
            / data.num_pages
        loss.backward()
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        return loss

    optimizer.step(closure)
    bar.close()
    return ChoiceContinuationUsers({name: value.detach() for name, value in
                                    parameters().items() if name != "logging"},
                                   slate_size, history_length)

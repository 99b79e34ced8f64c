"""Collaborative-filtering policies: Mult-VAE / Mult-DAE, RaCT, CF-SFL, EASE and popularity.

```python
from agents.cf import RaCT
model = RaCT(split.num_items).fit(split.train, valid=(split.val_fold_in, split.val_target))
print(model.evaluate(split.test_fold_in, split.test_target))  # Recall@20/50, NDCG@100
policy = model.as_policy(k=10)                                 # a recgym Policy
```

Every model is an ``nn.Module`` with a config dataclass, scores users from binary histories,
evaluates with `recgym.evaluation.ranking` (RaCT appendix E.2), saves to one checkpoint file
(`load_model` reads any of them) and turns into a `CFPolicy`. See docs/cf.md.
"""

from __future__ import annotations

from agents.cf.base import CFModel, TrainableCF, check_interactions
from agents.cf.baselines import EASE, Popularity
from agents.cf.cfsfl import CFSFL
from agents.cf.checkpoint import load_model
from agents.cf.policy import CFPolicy
from agents.cf.ract import RaCT
from agents.cf.vae import MultDAE, MultVAE

MODELS: dict[str, type[CFModel]] = {
    cls.__name__: cls for cls in (MultVAE, MultDAE, RaCT, CFSFL, EASE, Popularity)
}

__all__ = [
    "CFSFL",
    "EASE",
    "MODELS",
    "CFModel",
    "CFPolicy",
    "MultDAE",
    "MultVAE",
    "Popularity",
    "RaCT",
    "TrainableCF",
    "check_interactions",
    "load_model",
]

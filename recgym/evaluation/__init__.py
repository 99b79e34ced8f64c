"""Evaluation: policy roll-outs in simulators, offline logs, ranking metrics and OPE.

:mod:`~recgym.evaluation.rollout` rolls policies out and records logs,
:mod:`~recgym.evaluation.ranking` holds Recall@R / NDCG@R (RaCT appendix E.2), and
:mod:`~recgym.evaluation.ope` the off-policy estimators (``ope.evaluate``).
"""

from __future__ import annotations

from recgym.evaluation.rollout import PolicyEvaluation, collect_logs, evaluate_policy

__all__ = ["PolicyEvaluation", "collect_logs", "evaluate_policy"]

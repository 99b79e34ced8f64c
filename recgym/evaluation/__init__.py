"""Evaluation: policy roll-outs in simulators, offline logs, and (later) ranking metrics and OPE."""

from __future__ import annotations

from recgym.evaluation.rollout import PolicyEvaluation, collect_logs, evaluate_policy

__all__ = ["PolicyEvaluation", "collect_logs", "evaluate_policy"]

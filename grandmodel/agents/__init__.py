"""Learners (PPO, SAC, dueling double DQN) as LightningModules on TorchRL losses, env-agnostic."""

from grandmodel.agents.base import Algorithm, NonFiniteError
from grandmodel.agents.groups import GroupSpec, group_specs
from grandmodel.agents.registry import ALGORITHMS, build_learner

__all__ = ["ALGORITHMS", "Algorithm", "GroupSpec", "NonFiniteError", "build_learner", "group_specs"]

"""Algorithm registry: ``algorithm`` name in the config → learner class."""

from __future__ import annotations

from typing import Any

from grandmodel.agents.base import Algorithm
from grandmodel.agents.dqn import DQN
from grandmodel.agents.groups import GroupSpec
from grandmodel.agents.ppo import PPO
from grandmodel.agents.sac import SAC

ALGORITHMS: dict[str, type[Algorithm]] = {"ppo": PPO, "sac": SAC, "dqn": DQN}


def build_learner(cfg: Any, group: GroupSpec) -> Algorithm:
    """The learner named by ``cfg.algorithm`` for ``group``."""
    name = str(cfg.algorithm)
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; expected one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[name](cfg, group)

"""Algorithm registry: ``algorithm`` name in the config → learner class and its config schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grandmodel.agents.base import Algorithm
from grandmodel.agents.dqn import DQN
from grandmodel.agents.groups import GroupSpec
from grandmodel.agents.ppo import PPO
from grandmodel.agents.sac import SAC
from grandmodel.config import ConfigError, typed

ALGORITHMS: dict[str, type[Algorithm]] = {"ppo": PPO, "sac": SAC, "dqn": DQN}


def build_learner(cfg: Any, group: GroupSpec) -> Algorithm:
    """The learner named by ``cfg.algorithm`` for ``group``.

    ``cfg``: an ``agent.<role>`` node of the composed config, the plain dict a checkpoint stores
    (or ``OmegaConf.create`` of it), or a ``PPOConfig`` / ``SACConfig`` / ``DQNConfig``; it is
    validated into that dataclass here, once.
    """
    name = str(cfg["algorithm"] if isinstance(cfg, Mapping) else cfg.algorithm)
    if name not in ALGORITHMS:
        raise ConfigError(f"algorithm: unknown {name!r}; expected one of {sorted(ALGORITHMS)}")
    learner = ALGORITHMS[name]
    return learner(typed(cfg, learner.config_type), group)

"""The joint acting policy: each role acts by its learner, its baseline, or a frozen checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase, TensorDictSequential
from torch import nn
from torchrl.envs.utils import ExplorationType, set_exploration_type

from grandmodel.agents import Algorithm, GroupSpec, build_learner
from grandmodel.config.env import ROLES
from grandmodel.env.baselines import baseline_policy
from grandmodel.errors import GrandModelError


class Deterministic(TensorDictModuleBase):
    """Runs a policy in deterministic mode whatever the caller's exploration type (frozen roles)."""

    def __init__(self, module: TensorDictModuleBase) -> None:
        super().__init__()
        self.module = module
        self.in_keys, self.out_keys = list(module.in_keys), list(module.out_keys)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
            return self.module(tensordict)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint, read with ``weights_only=True`` (a tampered pickle cannot run code)."""
    path = Path(path)
    if not path.is_file():
        raise GrandModelError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GrandModelError(f"{path}: not a loadable GrandModel checkpoint ({first})") from None


def frozen_learner(path: str | Path, role: str, group: GroupSpec) -> Algorithm:
    """The ``role`` learner of an earlier run's checkpoint, with its trained weights."""
    checkpoint = load_checkpoint(path)
    config = OmegaConf.create(checkpoint.get("grandmodel", {}).get("config", {}))
    if role not in config.get("agent", {}):
        raise GrandModelError(f"{path}: checkpoint has no configuration for the {role} agent")
    learner = build_learner(config.agent[role], group)
    learner.prepare_for_loading()
    prefix = f"learners.{role}."
    weights = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    if not weights:
        raise GrandModelError(
            f"{path}: the {role} agent did not learn in that run (no weights under {prefix})"
        )
    learner.load_state_dict(weights)
    learner.eval()
    return learner


def build_policies(
    cfg: DictConfig, groups: dict[str, GroupSpec], feature_names: tuple[str, ...]
) -> tuple[dict[str, Algorithm], dict[str, nn.Module], TensorDictSequential]:
    """(learners, fixed modules, joint policy) for the market roles as ``cfg.agent`` says."""
    agent = cfg.agent
    learners: dict[str, Algorithm] = {}
    fixed: dict[str, nn.Module] = {}
    steps: list[TensorDictModuleBase] = []
    base = agent.baselines
    params = {
        "tactical": {
            "timing": 1.0,
            "stop": float(base.tactical_stop),
            "scale": float(base.tactical_scale),
        },
        "risk": {"level": int(base.risk_level)},
    }
    for role in ROLES:
        if role in agent.learn:
            learners[role] = build_learner(agent[role], groups[role])
            steps.append(learners[role].exploration_policy())
        elif agent.frozen[role]:
            fixed[role] = Deterministic(
                frozen_learner(agent.frozen[role], role, groups[role]).exploration_policy()
            )
            steps.append(fixed[role])
        else:
            fixed[role] = baseline_policy(
                role, str(base[role]), feature_names, **params.get(role, {})
            )
            steps.append(fixed[role])
    return learners, fixed, TensorDictSequential(*steps)

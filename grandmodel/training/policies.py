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
from grandmodel.checkpoints import acting_learners, load_checkpoint, run_checkpoint
from grandmodel.config.env import ROLES
from grandmodel.env.baselines import baseline_policy
from grandmodel.errors import GrandModelError
from grandmodel.training.phases import PhasedRole, Phases


class Deterministic(TensorDictModuleBase):
    """Runs a policy in deterministic mode whatever the caller's exploration type (frozen roles)."""

    def __init__(self, module: TensorDictModuleBase) -> None:
        super().__init__()
        self.module = module
        self.in_keys, self.out_keys = list(module.in_keys), list(module.out_keys)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
            return self.module(tensordict)


def _weights(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def _trained(cfg: Any, group: GroupSpec, weights: dict[str, torch.Tensor]) -> Algorithm:
    learner = build_learner(cfg, group)
    learner.prepare_for_loading()
    learner.load_state_dict(weights)
    return learner.eval()


def baseline_params(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Keyword arguments of the tactical and risk baselines from ``cfg.agent.baselines``."""
    base = cfg.agent.baselines
    return {
        "tactical": {
            "timing": 1.0,
            "stop": float(base.tactical_stop),
            "scale": float(base.tactical_scale),
        },
        "risk": {"level": int(base.risk_level)},
    }


def frozen_learner(
    path: str | Path, role: str, group: GroupSpec
) -> tuple[Algorithm, dict[str, Any]]:
    """The ``role`` learner of an earlier run's checkpoint (or run folder: its best checkpoint) with
    its trained weights, and its config."""
    folder = Path(path)
    checkpoint = load_checkpoint(
        run_checkpoint(folder, f"agent.frozen.{role}") if folder.is_dir() else path
    )
    config = OmegaConf.create(checkpoint.get("grandmodel", {}).get("config", {}))
    if role not in config.get("agent", {}):
        raise GrandModelError(f"{path}: checkpoint has no configuration for the {role} agent")
    prefix = f"learners.{role}."
    if role in config.agent.get("learn", ()) and role not in acting_learners(checkpoint):
        raise GrandModelError(
            f"{path}: the {role} agent had not started learning when that checkpoint was written "
            "(agent.phases); expected a checkpoint from its learning phase or later"
        )
    weights = _weights(checkpoint["state_dict"], prefix)
    if not weights:
        raise GrandModelError(
            f"{path}: the {role} agent did not learn in that run (no weights under {prefix})"
        )
    role_cfg = OmegaConf.to_container(config.agent[role], resolve=True)
    return _trained(OmegaConf.create(role_cfg), group, weights), role_cfg  # type: ignore[return-value]


def build_policies(
    cfg: DictConfig,
    groups: dict[str, GroupSpec],
    feature_names: tuple[str, ...],
    phases: Phases | None = None,
) -> tuple[dict[str, Algorithm], dict[str, nn.Module], TensorDictSequential, dict[str, Any]]:
    """(learners, fixed modules, joint policy, configs of frozen roles) as ``cfg.agent`` says; a
    learning role with a learning phase (``phases``) acts through a :class:`PhasedRole`, kept
    with the fixed modules."""
    agent = cfg.agent
    learners: dict[str, Algorithm] = {}
    fixed: dict[str, nn.Module] = {}
    frozen: dict[str, Any] = {}
    steps: list[TensorDictModuleBase] = []
    params = baseline_params(cfg)
    for role in ROLES:
        if role in agent.learn:
            learners[role] = build_learner(agent[role], groups[role])
            acting = learners[role].exploration_policy()
            if phases is not None and phases.phased(role):
                baseline = baseline_policy(
                    role, str(agent.baselines[role]), feature_names, **params.get(role, {})
                )
                acting = fixed[role] = PhasedRole(role, acting, baseline, phases)
            steps.append(acting)
            continue
        if agent.frozen[role]:
            learner, frozen[role] = frozen_learner(agent.frozen[role], role, groups[role])
            fixed[role] = Deterministic(learner.exploration_policy())
        else:
            fixed[role] = baseline_policy(
                role, str(agent.baselines[role]), feature_names, **params.get(role, {})
            )
        steps.append(fixed[role])
    return learners, fixed, TensorDictSequential(*steps), frozen


def restore_policy(
    checkpoint: dict[str, Any], groups: dict[str, GroupSpec], feature_names: tuple[str, ...]
) -> tuple[dict[str, Algorithm], TensorDictSequential]:
    """The trained joint policy of a checkpoint (learners and frozen roles with their weights,
    other roles, and learners still waiting for their phase, by their baselines), acting
    deterministically. Returns (learners, policy)."""
    extra = checkpoint.get("grandmodel", {})
    cfg = OmegaConf.create(extra.get("config", {}))
    frozen = extra.get("frozen", {})
    params = baseline_params(cfg)
    acting = acting_learners(checkpoint)
    learners: dict[str, Algorithm] = {}
    steps: list[TensorDictModuleBase] = []
    for role in ROLES:
        if role in acting:
            learners[role] = _trained(
                cfg.agent[role],
                groups[role],
                _weights(checkpoint["state_dict"], f"learners.{role}."),
            )
            steps.append(Deterministic(learners[role].exploration_policy()))
        elif role in frozen:  # stored as the frozen learner's acting policy
            acting = build_learner(
                OmegaConf.create(frozen[role]), groups[role]
            ).exploration_policy()
            acting.load_state_dict(_weights(checkpoint["state_dict"], f"fixed.{role}.module."))
            steps.append(Deterministic(acting.eval()))
        else:
            steps.append(
                baseline_policy(
                    role, str(cfg.agent.baselines[role]), feature_names, **params.get(role, {})
                )
            )
    return learners, TensorDictSequential(*steps)

"""Plain deterministic heads: raw features in, the env's action out, normalisation inside the graph.

One head per role, built from the trained learner (or the frozen role's learner) of a checkpoint, or
from the role's baseline rule when that rule is a fixed function of the observation. Each head is an
``nn.Module`` with no TorchRL or TensorDict in its forward pass, so it exports to ONNX as is and its
``state_dict`` loads with ``torch.load(weights_only=True)``.

The decodings mirror what the TorchRL actors do in deterministic mode:

- strategic (PPO, categorical): ``argmax(logits)`` -> 0 short, 1 flat, 2 long;
- tactical (SAC, tanh-normal): ``centre + radius * clamp(tanh(loc), ±(1 - 1e-6))`` with
  ``centre, radius = (high + low) / 2, (high - low) / 2`` of the env's bounds (the distribution's
  deterministic sample);
- risk (DQN, dueling Q): ``argmax(Q)`` -> index into ``env.risk_cap``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from grandmodel.agents import Algorithm, GroupSpec, build_learner
from grandmodel.checkpoints import acting_learners
from grandmodel.data.normalise import NormStats
from grandmodel.env.baselines import RiskBaseline, StrategicBaseline, TacticalBaseline
from grandmodel.errors import GrandModelError
from grandmodel.training.policies import baseline_params

TANH_LIMIT = 1.0 - float(torch.finfo(torch.float32).resolution)  # torchrl's safe tanh


class Normalise(nn.Module):
    """``NormStats.transform`` as a graph: ``(x - mean) / std`` in float64, NaN -> 0, clipped to
    ``±clip``, then float32 (bit-identical to the env's features). Identity when ``stats`` is None."""

    def __init__(self, stats: NormStats | None, n_features: int, normalise: bool = True) -> None:
        super().__init__()
        if stats is None or not normalise:
            mean, std = np.zeros(n_features), np.ones(n_features)
            clip = float(np.finfo(np.float64).max)  # only NaN -> 0, as with data.normalize=false
        else:
            mean, std, clip = np.asarray(stats.mean), np.asarray(stats.std), float(stats.clip)
        self.enabled = stats is not None
        self.clip = clip
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        z = (x - self.mean) / self.std
        z = torch.nan_to_num(z, nan=0.0, posinf=self.clip, neginf=-self.clip)
        return z.clamp(-self.clip, self.clip).to(torch.float32)


class Argmax(nn.Module):
    """First index of the largest score (ties -> the lower index, as ``torch.argmax``)."""

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.argmax(dim=-1)


class TanhBounds(nn.Module):
    """The tanh-normal's deterministic action from ``[loc, scale]``: the bounded ``tanh(loc)``."""

    def __init__(self, low: torch.Tensor, high: torch.Tensor) -> None:
        super().__init__()
        low, high = low.to(torch.float32), high.to(torch.float32)
        self.register_buffer("centre", (high + low) / 2)
        self.register_buffer("radius", (high - low) / 2)
        self.n = int(low.shape[-1])

    def forward(self, params: torch.Tensor) -> torch.Tensor:
        loc = params[..., : self.n]
        return self.centre + self.radius * torch.tanh(loc).clamp(-TANH_LIMIT, TANH_LIMIT)


class Head(nn.Module):
    """``decode(body(normalise(features)))``."""

    def __init__(self, normalise: nn.Module, body: nn.Module, decode: nn.Module) -> None:
        super().__init__()
        self.normalise, self.body, self.decode = normalise, body, decode

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.decode(self.body(self.normalise(features)))


@dataclass
class RoleHead:
    """A role's exportable head (None for a rule the consumer applies) and how it was made."""

    role: str
    source: str  # "trained", "frozen" or "baseline"
    kind: str  # the algorithm (ppo / sac / dqn) or the baseline's name
    module: Head | None
    network: dict[str, Any] = field(default_factory=dict)  # the learner's config, for the record
    rule: dict[str, Any] = field(default_factory=dict)  # baseline parameters


def _weights(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def _learner(
    checkpoint: dict[str, Any], role: str, group: GroupSpec
) -> tuple[Algorithm, str, dict]:
    """The role's learner with its weights: trained in this run, or frozen from an earlier one."""
    extra = checkpoint.get("grandmodel", {})
    cfg = OmegaConf.create(extra["config"])
    state = checkpoint["state_dict"]
    if role in acting_learners(checkpoint):
        role_cfg = OmegaConf.to_container(cfg.agent[role], resolve=True)
        learner = build_learner(cfg.agent[role], group)
        learner.prepare_for_loading()
        learner.load_state_dict(_weights(state, f"learners.{role}."))
        return learner.eval(), "trained", role_cfg  # type: ignore[return-value]
    role_cfg = dict(extra["frozen"][role])
    learner = build_learner(OmegaConf.create(role_cfg), group)
    learner.exploration_policy().load_state_dict(_weights(state, f"fixed.{role}.module."))
    return learner.eval(), "frozen", role_cfg


def _learned_body(role: str, learner: Algorithm, group: GroupSpec) -> tuple[nn.Module, nn.Module]:
    """(body, decode) from the learner's networks (deep copies, eval mode)."""
    algorithm = type(learner).__name__
    if algorithm == "PPO" and group.discrete:
        trunk = learner.agent.module[0].module
        policy = learner.agent.get_policy_head().module[0].module
        return nn.Sequential(copy.deepcopy(trunk), copy.deepcopy(policy)), Argmax()
    if algorithm == "SAC":
        actor = learner.actor.module[0].module  # encoder, MLP, linear, NormalParamExtractor
        low, high = group.bounds
        return copy.deepcopy(nn.Sequential(*list(actor)[:-1])), TanhBounds(low, high)
    if algorithm == "DQN":
        return copy.deepcopy(learner.qnet.module[0].module), Argmax()
    raise GrandModelError(
        f"agent.{role}: a {algorithm} learner on a "
        f"{'discrete' if group.discrete else 'continuous'} action cannot be exported; "
        "expected PPO (discrete), SAC or DQN"
    )


def _baseline(
    role: str, kind: str, params: dict[str, Any], feature_names: tuple[str, ...]
) -> tuple[nn.Module | None, dict[str, Any]]:
    """The baseline as a module, or None for the random one (a rule the consumer applies)."""
    if role == "strategic":
        if kind == "random":
            return None, {"draw": "uniform over {0, 1, 2} at each strategic decision"}
        column = feature_names.index("trend_regime") if "trend_regime" in feature_names else -1
        rule = {"feature": "trend_regime", "column": column} if kind == "ma_crossover" else {}
        return StrategicBaseline(kind, column), rule
    if role == "tactical":
        return TacticalBaseline(**params), dict(params)
    return RiskBaseline(int(params["level"])), dict(params)


def build_heads(
    checkpoint: dict[str, Any],
    groups: dict[str, GroupSpec],
    norm: dict[str, NormStats],
    feature_names: dict[str, tuple[str, ...]],
) -> dict[str, RoleHead]:
    """One :class:`RoleHead` per role of a training checkpoint (heads in eval mode)."""
    extra = checkpoint.get("grandmodel", {})
    cfg = OmegaConf.create(extra["config"])
    normalise_on = bool(cfg.data.get("normalize", True))
    params = baseline_params(cfg)
    heads: dict[str, RoleHead] = {}
    for role, group in groups.items():
        width = int(group.observation_spec.shape[-1])
        normalise = Normalise(norm.get(role), width, normalise_on)
        if role in acting_learners(checkpoint) or role in extra.get("frozen", {}):
            learner, source, role_cfg = _learner(checkpoint, role, group)
            body, decode = _learned_body(role, learner, group)
            head = Head(normalise, body, decode).eval()
            heads[role] = RoleHead(role, source, str(role_cfg["algorithm"]), head, role_cfg)
            continue
        kind = str(cfg.agent.baselines[role])
        module, rule = _baseline(role, kind, params.get(role, {}), feature_names.get(role, ()))
        head = None if module is None else Head(normalise, module, nn.Identity()).eval()
        heads[role] = RoleHead(role, "baseline", kind, head, rule=rule)
    return heads

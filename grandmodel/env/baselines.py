"""Baseline policies per role, as TorchRL modules over the env's observations.

strategic: ``flat``, ``always_long``, ``ma_crossover`` (long when EMA20 > EMA50 by half an ATR, short
when below: the ``trend_regime`` feature of the last completed 30-minute bar), ``random``;
tactical: ``full_entry`` (trade the whole gap now, fixed stop, scale 1), ``hold`` (the same without a
protective stop: buy-and-hold); risk: ``fixed`` (one level).
"""

from __future__ import annotations

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from grandmodel.config.env import ROLES

STRATEGIC = ("flat", "always_long", "ma_crossover", "random")
TACTICAL = ("full_entry", "hold")
RISK = ("fixed",)
KINDS = {"strategic": STRATEGIC, "tactical": TACTICAL, "risk": RISK}


class StrategicBaseline(nn.Module):
    """Direction 0 short, 1 neutral, 2 long from the strategic observation ``[B, W, F]``."""

    def __init__(self, kind: str, trend_column: int) -> None:
        super().__init__()
        self.kind, self.trend_column = kind, trend_column

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        batch = observation.shape[:-2]
        if self.kind == "flat":
            return torch.ones(batch, dtype=torch.int64, device=observation.device)
        if self.kind == "always_long":
            return torch.full(batch, 2, dtype=torch.int64, device=observation.device)
        if self.kind == "ma_crossover":
            return observation[..., -1, self.trend_column].round().clamp(-1, 1).to(torch.int64) + 1
        return torch.randint(3, batch, device=observation.device)


class TacticalBaseline(nn.Module):
    """Constant ``[entry_timing, stop_distance, position_scale]``."""

    def __init__(self, timing: float = 1.0, stop: float = 0.01, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("action", torch.tensor([timing, stop, scale], dtype=torch.float32))

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.action.expand(*observation.shape[:-2], 3).clone()


class RiskBaseline(nn.Module):
    """A fixed risk level."""

    def __init__(self, level: int = 4) -> None:
        super().__init__()
        self.level = level

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return torch.full(
            observation.shape[:-1], self.level, dtype=torch.int64, device=observation.device
        )


def baseline_policy(
    role: str, kind: str, feature_names: tuple[str, ...] = (), **params: float
) -> TensorDictModule:
    """The baseline ``kind`` of ``role`` reading ``(role, "observation")``, writing ``(role, "action")``."""
    if kind not in KINDS[role]:
        raise ValueError(f"unknown {role} baseline {kind!r}; expected one of {list(KINDS[role])}")
    if role == "strategic":
        column = feature_names.index("trend_regime") if "trend_regime" in feature_names else -1
        if kind == "ma_crossover" and column < 0:
            raise ValueError(
                "the ma_crossover baseline needs the trend_regime feature in the strategic observation"
            )
        module: nn.Module = StrategicBaseline(kind, column)
    elif role == "tactical":
        # a NaN stop distance means no protective stop (docs/architecture.md, "Time and look-ahead")
        module = TacticalBaseline(**(params | {"stop": float("nan")} if kind == "hold" else params))
    else:
        module = RiskBaseline(int(params.get("level", 4)))
    return TensorDictModule(module, in_keys=[(role, "observation")], out_keys=[(role, "action")])


def joint_baseline(
    feature_names: tuple[str, ...],
    kinds: dict[str, str] | None = None,
    params: dict[str, dict[str, float]] | None = None,
) -> TensorDictSequential:
    """All three roles acting by their baselines (default: ma_crossover, full_entry, fixed level 4)."""
    kinds = {"strategic": "ma_crossover", "tactical": "full_entry", "risk": "fixed"} | (kinds or {})
    params = params or {}
    return TensorDictSequential(
        *(
            baseline_policy(role, kinds[role], feature_names, **params.get(role, {}))
            for role in ROLES
        )
    )

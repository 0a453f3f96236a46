"""Reward terms (DESIGN.md §5): each is a fraction of equity, computable online from history up to t."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grandmodel.config.env import REWARD_TERMS, ROLES

TERM_SIGN = {"profit": 1.0, "turnover": -1.0, "risk": -1.0, "drawdown": -1.0, "sharpe": 1.0}
OBJECTIVE_TERM = {"profit": "profit", "risk": "risk", "sharpe": "sharpe", "drawdown": "drawdown"}


@dataclass(frozen=True)
class RewardWeights:
    """Signed weights over ``REWARD_TERMS`` for the team reward and for each role's reward."""

    team: torch.Tensor  # [5]
    roles: dict[str, torch.Tensor]  # role -> [5] = team + shaping
    scale: float
    dsr_eta: float

    @classmethod
    def from_config(cls, cfg, device: torch.device) -> RewardWeights:
        base = {
            "profit": float(cfg.profit_weight),
            "turnover": float(cfg.transaction_cost),
            "risk": float(cfg.risk_penalty),
            "drawdown": float(cfg.max_drawdown_penalty),
            "sharpe": float(cfg.sharpe_bonus),
        }
        if cfg.objectives:
            # the seed's MultiObjectiveTrainer: weighted objectives replace the term weights
            base = {name: 0.0 for name in REWARD_TERMS} | {"turnover": float(cfg.transaction_cost)}
            for objective, weight in zip(cfg.objectives, cfg.objective_weights, strict=True):
                base[OBJECTIVE_TERM[str(objective)]] += float(weight)
        team = torch.tensor(
            [TERM_SIGN[k] * base[k] for k in REWARD_TERMS], dtype=torch.float64, device=device
        )
        roles = {}
        for role in ROLES:
            extra = cfg.shaping[role]
            shaping = torch.tensor(
                [TERM_SIGN[k] * float(extra[k]) for k in REWARD_TERMS],
                dtype=torch.float64,
                device=device,
            )
            roles[role] = team + shaping
        return cls(team, roles, float(cfg.scale), float(cfg.dsr_eta))


def differential_sharpe(
    ret: torch.Tensor, a: torch.Tensor, b: torch.Tensor, eta: float, var_floor: float = 1e-10
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Moody & Saffell (1998) differential Sharpe ratio of this step's return.

    ``D = (B ΔA - ½ A ΔB) / (B - A²)^{3/2}`` with exponential moments A, B (rate ``eta``). Returned as
    ``eta·D`` — the step's first-order change of the moving Sharpe ratio, clipped to ±1 — plus the
    updated moments.
    """
    delta_a = eta * (ret - a)
    delta_b = eta * (ret * ret - b)
    variance = (b - a * a).clamp_min(var_floor)
    d = (b * delta_a - 0.5 * a * delta_b) / variance.pow(1.5)
    return (eta * d).clamp(-1.0, 1.0), a + delta_a, b + delta_b

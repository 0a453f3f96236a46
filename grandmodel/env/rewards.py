"""Reward terms (docs/architecture.md, "Reward"): each is a fraction of equity, computable online
from history up to t."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from grandmodel.config import typed
from grandmodel.config.env import REWARD_TERMS, ROLES, RewardConfig

TERM_SIGN = {"profit": 1.0, "turnover": -1.0, "risk": -1.0, "drawdown": -1.0, "sharpe": 1.0}


@dataclass(frozen=True)
class RewardWeights:
    """Signed weights over ``REWARD_TERMS`` for the team reward and for each role's reward."""

    team: torch.Tensor  # [5]
    roles: dict[str, torch.Tensor]  # role -> [5] = team + shaping
    scale: float
    dsr_eta: float

    @classmethod
    def from_config(cls, cfg: RewardConfig | Any, device: torch.device) -> RewardWeights:
        """From the ``reward`` config (a ``RewardConfig`` or its config node)."""
        cfg = typed(cfg, RewardConfig)
        base = {
            "profit": cfg.profit_weight,
            "turnover": cfg.transaction_cost,
            "risk": cfg.risk_penalty,
            "drawdown": cfg.max_drawdown_penalty,
            "sharpe": cfg.sharpe_bonus,
        }
        if cfg.objectives:
            # weighted objectives (reward=multi_objective) replace the term weights; the
            # objectives are named after the terms they weigh
            base = {name: 0.0 for name in REWARD_TERMS} | {"turnover": cfg.transaction_cost}
            for objective, weight in zip(cfg.objectives, cfg.objective_weights or [], strict=True):
                base[objective] += weight
        team = torch.tensor(
            [TERM_SIGN[k] * base[k] for k in REWARD_TERMS], dtype=torch.float64, device=device
        )
        roles = {}
        for role in ROLES:
            extra = getattr(cfg.shaping, role)
            shaping = torch.tensor(
                [TERM_SIGN[k] * getattr(extra, k) for k in REWARD_TERMS],
                dtype=torch.float64,
                device=device,
            )
            roles[role] = team + shaping
        return cls(team, roles, cfg.scale, cfg.dsr_eta)


def differential_sharpe(
    ret: torch.Tensor, a: torch.Tensor, b: torch.Tensor, eta: float, var_floor: float = 1e-10
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Moody & Saffell (1998) differential Sharpe ratio of this step's return.

    With exponential moments ``A_t = A + η ΔA``, ``B_t = B + η ΔB`` (``ΔA = R − A``, ``ΔB = R² − B``),
    ``D = (B ΔA − ½ A ΔB) / (B − A²)^{3/2}`` and the moving Sharpe ratio ``S = A / sqrt(B − A²)``
    moves by ``S_t − S_{t−1} ≈ η·D`` (first order in η). Returned: ``η·D`` clipped to ±1, then the
    updated moments A_t, B_t.
    """
    delta_a = ret - a
    delta_b = ret * ret - b
    variance = (b - a * a).clamp_min(var_floor)
    d = (b * delta_a - 0.5 * a * delta_b) / variance.pow(1.5)
    return (eta * d).clamp(-1.0, 1.0), a + eta * delta_a, b + eta * delta_b

"""TensorDict specs of the market env: nested per-agent keys (docs/architecture.md, "The market env")."""

from __future__ import annotations

import torch
from torchrl.data import Bounded, Categorical, Composite, Unbounded

from grandmodel.config.env import ROLES

RISK_FEATURES = (
    "position",
    "unrealised_pnl_pct",
    "realised_pnl_pct",
    "drawdown_pct",
    "volatility",
    "var95_pct",
    "leverage",
    "bars_in_trade",
    "win_rate",
    "stop_distance_pct",
)
INFO_FLOAT = (
    "equity", "position", "realised", "unrealised", "costs", "step_cost", "traded", "fill_price", "stop_price", "mark", "drawdown",
    "closed_fill_pnl", "closed_stop_pnl",  # net PnL of a round trip closed by the fill / by the stop (NaN: none)
)  # fmt: skip
INFO_INT = (
    "t",
    "trades",
    "wins",
    "direction",
    "stop_bar",
)  # stop_bar: base bar where the stop filled (-1: none)
N_TERMS = 5


def _flag(n: int, device: torch.device) -> Categorical:
    return Categorical(2, shape=(n, 1), dtype=torch.bool, device=device)


def observation_spec(
    n: int, windows: dict[str, int], n_features: dict[str, int], device: torch.device
) -> Composite:
    f32, f64 = torch.float32, torch.float64
    info = {k: Unbounded((n, 1), dtype=f64, device=device) for k in INFO_FLOAT}
    info |= {k: Unbounded((n, 1), dtype=torch.int64, device=device) for k in INFO_INT}
    info["stop_hit"] = _flag(n, device)
    info["terms"] = Unbounded((n, N_TERMS), dtype=f64, device=device)
    return Composite(
        strategic=Composite(
            observation=Unbounded(
                (n, windows["strategic"], n_features["strategic"]), dtype=f32, device=device
            ),
            decision=_flag(n, device),
            shape=(n,),
            device=device,
        ),
        tactical=Composite(
            observation=Unbounded(
                (n, windows["tactical"], n_features["tactical"]), dtype=f32, device=device
            ),
            shape=(n,),
            device=device,
        ),
        risk=Composite(
            observation=Unbounded((n, len(RISK_FEATURES)), dtype=f32, device=device),
            shape=(n,),
            device=device,
        ),
        info=Composite(info, shape=(n,), device=device),
        shape=(n,),
        device=device,
    )


def action_spec(
    n: int, stop_bounds: list[float], scale_bounds: list[float], n_levels: int, device: torch.device
) -> Composite:
    low = torch.tensor([0.0, stop_bounds[0], scale_bounds[0]], device=device).expand(n, 3)
    high = torch.tensor([1.0, stop_bounds[1], scale_bounds[1]], device=device).expand(n, 3)
    return Composite(
        strategic=Composite(
            action=Categorical(3, shape=(n,), device=device), shape=(n,), device=device
        ),
        tactical=Composite(
            action=Bounded(low, high, shape=(n, 3), dtype=torch.float32, device=device),
            shape=(n,),
            device=device,
        ),
        risk=Composite(
            action=Categorical(n_levels, shape=(n,), device=device), shape=(n,), device=device
        ),
        shape=(n,),
        device=device,
    )


def reward_spec(n: int, device: torch.device) -> Composite:
    return Composite(
        {
            role: Composite(
                reward=Unbounded((n, 1), dtype=torch.float32, device=device),
                shape=(n,),
                device=device,
            )
            for role in ROLES
        },
        shape=(n,),
        device=device,
    )


def done_spec(n: int, device: torch.device) -> Composite:
    return Composite(
        done=_flag(n, device),
        terminated=_flag(n, device),
        truncated=_flag(n, device),
        shape=(n,),
        device=device,
    )

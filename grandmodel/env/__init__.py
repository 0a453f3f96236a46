"""The three-agent market env (TorchRL), its baselines, and PettingZoo / Gymnasium adapters."""

from __future__ import annotations

from typing import Any

from grandmodel.data.market_data import MarketData
from grandmodel.data.pipeline import prepare_data
from grandmodel.env.market_env import MarketEnv


def build_env(
    cfg: Any,
    data: MarketData | None = None,
    *,
    n_envs: int | None = None,
    split: str = "train",
    mode: str = "train",
    seed: int | None = None,
) -> MarketEnv:
    """A :class:`MarketEnv` for the composed config (prepares the data unless given)."""
    if data is None:
        data = prepare_data(cfg)
    return MarketEnv(data, cfg, n_envs=n_envs, split=split, mode=mode, seed=seed)


def to_pettingzoo(cfg: Any, data: MarketData | None = None, **kwargs: Any):
    """The market as a PettingZoo ``ParallelEnv`` of the three roles (see ``adapters``)."""
    from grandmodel.env.adapters import MarketParallelEnv

    return MarketParallelEnv(cfg, data, **kwargs)


def to_gymnasium(cfg: Any, role: str, data: MarketData | None = None, **kwargs: Any):
    """The market as a Gymnasium env for one ``role``; the others act by their baselines."""
    from grandmodel.env.adapters import MarketRoleEnv

    return MarketRoleEnv(cfg, role, data, **kwargs)


__all__ = ["MarketEnv", "build_env", "to_gymnasium", "to_pettingzoo"]

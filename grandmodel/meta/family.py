"""A family of synthetic markets to meta-train on: each task is the same instrument and calendar
with its own generator, seed and parameters (trend drift, volatility, regime persistence, jump
intensity), drawn once from the run's seed so a resumed run sees the same tasks."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from grandmodel.config.meta import MarketFamilyConfig
from grandmodel.data.market_data import MarketData
from grandmodel.data.pipeline import prepare_data


def task_parameters(family: MarketFamilyConfig, seed: int) -> list[dict[str, Any]]:
    """The ``family.tasks`` markets' generator and parameters (seeded)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(family.tasks):
        out.append(
            {
                "generator": str(family.generators[i % len(family.generators)]),
                "seed": int(rng.integers(2**31 - 1)),
                "trend_drift": float(rng.uniform(*family.trend_drift)),
                "annual_vol": float(rng.uniform(*family.annual_vol)),
                "mean_minutes": float(rng.uniform(*family.mean_minutes)),
                "jumps_per_day": float(rng.uniform(*family.jumps_per_day)),
            }
        )
    return out


def synthetic_overrides(params: dict[str, Any], days: int) -> dict[str, Any]:
    """``data.synthetic`` keys of one task: regime markets scale the four regimes around the
    drawn drift, volatility and persistence; jump markets add the drawn jump intensity."""
    d, v, m = params["trend_drift"], params["annual_vol"], params["mean_minutes"]
    regimes = [
        {"name": "trend_up", "drift": d, "vol": v, "mean_minutes": m},
        {"name": "trend_down", "drift": -d, "vol": 1.1 * v, "mean_minutes": m},
        {"name": "sideways", "drift": 0.0, "vol": 0.7 * v, "mean_minutes": m},
        {"name": "volatile", "drift": 0.0, "vol": 2.0 * v, "mean_minutes": m / 3},
    ]
    return {
        "generator": params["generator"],
        "seed": params["seed"],
        "days": days,
        "annual_vol": v,
        "annual_drift": d / 4 if params["seed"] % 2 else -d / 4,
        "regimes": regimes,
        "jump": {"per_day": params["jumps_per_day"]},
    }


class MarketFamily:
    """Prepared tasks, built on first use and kept (``task(i)`` → the run config and its data)."""

    def __init__(self, cfg: DictConfig, family: MarketFamilyConfig, seed: int) -> None:
        self.cfg, self.family = cfg, family
        self.parameters = task_parameters(family, seed)
        self._tasks: dict[int, tuple[DictConfig, MarketData]] = {}

    def __len__(self) -> int:
        return len(self.parameters)

    def task(self, index: int) -> tuple[DictConfig, MarketData]:
        if index not in self._tasks:
            cfg = copy.deepcopy(self.cfg)
            overrides = synthetic_overrides(self.parameters[index], self.family.days)
            data = OmegaConf.merge(
                cfg.data,
                {"name": f"task{index}", "source": "synthetic", "path": None, "cache": False,
                 "synthetic": overrides},
            )  # fmt: skip
            cfg.data = data
            self._tasks[index] = (cfg, prepare_data(cfg))
        return self._tasks[index]

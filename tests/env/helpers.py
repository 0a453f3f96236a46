"""Helpers for env tests: configs on crafted bars, stepping with chosen actions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from tensordict import TensorDictBase

import grandmodel
from grandmodel.env import MarketEnv
from tests.conftest import es_bars, write_csv

COMMISSION, SLIPPAGE_TICKS, TICK, MULTIPLIER = 2.0, 0.5, 0.25, 50.0
COST_PER_SIDE = COMMISSION + SLIPPAGE_TICKS * TICK * MULTIPLIER


def flat_bars(days: int = 12, price: float = 4000.0) -> pd.DataFrame:
    """Bars at one constant price (every OHLC equal), on the ES session calendar."""
    frame = es_bars(days=days)
    frame[["open", "high", "low", "close"]] = price
    return frame


def config(path: Path, outputs: Path, *overrides: str):
    return grandmodel.load_config(
        [
            "data=csv",
            f"data.path={path}",
            f"paths.outputs_dir={outputs}",
            "data.episode_length=64",
            "env.n_envs=1",
            f"env.costs.commission={COMMISSION}",
            f"env.costs.slippage_ticks={SLIPPAGE_TICKS}",
            *overrides,
        ]
    )


def env_on(
    frame: pd.DataFrame, tmp_path: Path, *overrides: str, name: str = "bars.csv", **kwargs
) -> MarketEnv:
    path = write_csv(frame, tmp_path / name)
    return grandmodel.build_env(config(path, tmp_path / "outputs", *overrides), **kwargs)


def act(
    td: TensorDictBase,
    direction: int,
    timing: float = 1.0,
    stop: float = 0.05,
    scale: float = 1.0,
    level: int = 4,
) -> TensorDictBase:
    """Write the same actions for every env: direction -1/0/1, tactical triple, risk level."""
    n = td.batch_size[0]
    td.set(("strategic", "action"), torch.full((n,), direction + 1, dtype=torch.int64))
    td.set(
        ("tactical", "action"),
        torch.tensor([[timing, stop, scale]], dtype=torch.float32).expand(n, 3).clone(),
    )
    td.set(("risk", "action"), torch.full((n,), level, dtype=torch.int64))
    return td


def step(env: MarketEnv, td: TensorDictBase, **action) -> tuple[TensorDictBase, TensorDictBase]:
    """One step; returns (the transition, the next observation to act on)."""
    out = env.step(act(td, **action))
    return out, out.get("next").clone()


def wait_for_decision(env: MarketEnv, td: TensorDictBase) -> TensorDictBase:
    """Step flat until the strategic agent gets to decide."""
    while not bool(td.get(("strategic", "decision")).all()):
        _, td = step(env, td, direction=0)
    return td

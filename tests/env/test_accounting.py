"""Accounting identities of the env: costs, PnL bookkeeping, stops, and a cost-monotonicity property."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig

import grandmodel
from grandmodel.data.pipeline import prepare_data
from tests.conftest import es_bars, write_csv
from tests.env.helpers import (
    COST_PER_SIDE,
    MULTIPLIER,
    config,
    env_on,
    flat_bars,
    step,
    wait_for_decision,
)


def test_round_trip_at_constant_price_loses_exactly_two_sides_of_costs(tmp_path: Path) -> None:
    env = env_on(flat_bars(), tmp_path)
    td = wait_for_decision(env, env.reset())
    before = float(td.get(("info", "equity")))
    # level 1 caps at 0.25 x 5 contracts, scale 0.8 -> exactly one contract
    entry, td = step(env, td, direction=1, scale=0.8, level=1)
    assert float(entry.get(("next", "info", "position"))) == 1.0
    exit_, td = step(env, td, direction=1, scale=0.8, level=0)
    assert float(exit_.get(("next", "info", "position"))) == 0.0
    after = float(td.get(("info", "equity")))
    assert before - after == pytest.approx(2 * COST_PER_SIDE, abs=1e-9)
    assert float(td.get(("info", "costs"))) == pytest.approx(2 * COST_PER_SIDE, abs=1e-9)
    assert int(td.get(("info", "trades"))) == 1 and int(td.get(("info", "wins"))) == 0


def test_pnl_terms_add_up_to_the_equity_change(tmp_path: Path) -> None:
    env = env_on(es_bars(days=12, vol=6e-4), tmp_path, "env.n_envs=8")
    torch.manual_seed(0)
    rollout = env.rollout(60, auto_reset=True, break_when_any_done=False)
    nxt = rollout.get("next")
    info = nxt.get("info")
    capital = env.env_cfg.initial_capital
    equity = info.get("equity")[..., 0]
    # equity = capital + realised - costs + unrealised, at every step
    rebuilt = (
        capital
        + info.get("realised")[..., 0]
        - info.get("costs")[..., 0]
        + info.get("unrealised")[..., 0]
    )
    torch.testing.assert_close(equity, rebuilt, rtol=0, atol=1e-6)
    # the profit terms (per-step returns) compound to the episode's equity change
    growth = (1.0 + info.get("terms")[..., 0]).prod(dim=1)
    torch.testing.assert_close(growth * capital, equity[:, -1], rtol=1e-12, atol=1e-6)
    # costs inside the reward: the step cost is what equity lost beyond the mark-to-market move
    assert bool((info.get("step_cost") >= 0).all())
    assert bool((info.get("costs")[:, 1:] >= info.get("costs")[:, :-1]).all())


def test_a_stop_gapped_through_fills_at_the_open(tmp_path: Path) -> None:
    frame = flat_bars()
    path = write_csv(frame, tmp_path / "flat.csv")
    data = prepare_data(config(path, tmp_path / "outputs"))
    start = data.splits["train"][0]
    t = start + int(torch.nonzero(data.strategic_decision[start:])[0])  # first strategic decision
    gap_bar = int(data.step_bars[t + 1, 2])  # third base bar after the decision t + 1
    gapped = frame.copy()
    gapped.iloc[gap_bar:, :4] = 3900.0  # the market reopens 100 points lower and stays there
    gapped.iloc[gap_bar, gapped.columns.get_loc("low")] = 3890.0
    env = env_on(gapped, tmp_path, "data.cache=false", name="gap.csv", mode="eval", split="train")
    td = env.reset()
    while int(td.get(("info", "t"))) < t:
        _, td = step(env, td, direction=0)
    entry, td = step(
        env, td, direction=1, scale=0.8, level=1, stop=0.01
    )  # long 1 at 4000, stop 3960
    assert float(entry.get(("next", "info", "position"))) == 1.0 and not bool(
        entry.get(("next", "info", "stop_hit"))
    )
    hit, td = step(env, td, direction=1, scale=0.8, level=1, stop=0.01)
    info = hit.get(("next", "info"))
    assert bool(info.get("stop_hit")) and float(info.get("stop_price")) == 3900.0
    assert float(info.get("position")) == 0.0
    expected = env.env_cfg.initial_capital + (3900.0 - 4000.0) * MULTIPLIER - 2 * COST_PER_SIDE
    assert float(info.get("equity")) == pytest.approx(expected, abs=1e-9)


@pytest.fixture(scope="module")
def random_walk_config(tmp_path_factory) -> DictConfig:
    """A random-walk market in 4 envs, composed once (each example below changes its costs)."""
    folder = tmp_path_factory.mktemp("walk")
    path = write_csv(es_bars(days=12, vol=8e-4, seed=5), folder / "walk.csv")
    return grandmodel.load_config(
        [
            "data=csv",
            f"data.path={path}",
            f"paths.outputs_dir={folder / 'outputs'}",
            "data.episode_length=64",
            "env.n_envs=4",
        ]
    )


@settings(max_examples=15, deadline=None)
@given(
    low=st.floats(0.0, 5.0),
    extra=st.floats(0.01, 20.0),
    slippage=st.floats(0.0, 2.0),
    seed=st.integers(0, 1000),
)
def test_higher_costs_never_raise_pnl(
    random_walk_config: DictConfig, low: float, extra: float, slippage: float, seed: int
) -> None:
    finals = []
    for commission in (low, low + extra):
        cfg = copy.deepcopy(random_walk_config)
        cfg.env.costs.commission = commission
        cfg.env.costs.slippage_ticks = slippage
        cfg.seed = seed
        env = grandmodel.build_env(cfg)
        torch.manual_seed(seed)
        rollout = env.rollout(64, break_when_any_done=False, auto_reset=True)
        finals.append(rollout.get(("next", "info", "equity"))[:, -1, 0].numpy())
    assert np.all(finals[1] <= finals[0] + 1e-9)
    assert np.all(finals[1] < finals[0]) or np.allclose(finals[1], finals[0])

"""Position sizing: whole units from a notional fraction of equity, the leverage cap, and the
one-line error when the sizing cannot be met."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from grandmodel.env.execution import target_units
from grandmodel.errors import GrandModelError
from tests.env.helpers import env_on, flat_bars, step, wait_for_decision

F64 = torch.float64


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


def test_notional_targets_are_whole_units_of_a_fraction_of_equity() -> None:
    # 1,000,000 of equity, a 450-dollar share: a full position is floor(1e6 / 450) = 2222 shares
    units = target_units(_t(1.0, -0.5, 0.0, 2.0), _t(1e6), _t(450.0), 5.0, 1.0, 4.0, True)
    assert units.tolist() == [2222.0, -1111.0, 0.0, 4444.0]
    # max_exposure 0.5 halves it; max_leverage 1.5 caps |units| at floor(1.5e6 / 450) = 3333
    assert target_units(_t(1.0), _t(1e6), _t(450.0), 5.0, 0.5, 4.0, True).item() == 1111.0
    assert target_units(_t(2.0, -2.0), _t(1e6), _t(450.0), 5.0, 1.0, 1.5, True).tolist() == [
        3333.0,
        -3333.0,
    ]


def test_contract_targets_are_capped_by_leverage() -> None:
    # 5 ES contracts at 4000 x 50 = 1,000,000 of notional; 300,000 of equity at 2x allows 3
    assert target_units(_t(1.0), _t(1e6), _t(2e5), 5.0, 1.0, 4.0, False).item() == 5.0
    assert target_units(_t(-1.0), _t(3e5), _t(2e5), 5.0, 1.0, 2.0, False).item() == -3.0


def test_the_env_sizes_by_notional(tmp_path: Path) -> None:
    # ES at 4000: one contract is 200,000 of notional; 700,000 of equity -> floor(3.5) = 3 contracts
    env = env_on(
        flat_bars(),
        tmp_path,
        "env.sizing=notional",
        "env.initial_capital=700000",
        "env.costs.commission=0",
        "env.costs.slippage_ticks=0",
    )
    td = wait_for_decision(env, env.reset())
    out, td = step(env, td, direction=1)
    assert float(out.get(("next", "info", "position"))) == 3.0
    exposure = float(td.get(("risk", "observation"))[0, 6])
    assert exposure == pytest.approx(3 * 200_000 / 700_000, rel=1e-6)
    out, td = step(env, td, direction=1, scale=0.34)  # the direction holds until its next decision
    assert float(out.get(("next", "info", "position"))) == 1.0  # round(0.34 x 3)


def test_sizing_that_cannot_be_met_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(GrandModelError, match=r"over env.max_leverage=4; lower env.max_contracts"):
        env_on(flat_bars(), tmp_path, "env.initial_capital=100000")
    with pytest.raises(GrandModelError, match=r"env.sizing=notional: one ES unit is 200,000"):
        env_on(flat_bars(), tmp_path, "env.initial_capital=100000", "env.sizing=notional")

"""Risk-gate transitions: daily loss (REDUCING, HALTED, next day ACTIVE), session close, stale data,
kill switch, max position, and the actions that make the env's step obey the gate."""

from __future__ import annotations

import numpy as np
import pandas as pd

from grandmodel.config.paper import RiskGateConfig
from grandmodel.deploy.paper.gate import ACTIVE, HALTED, REDUCING, RiskGate, gated_actions

TZ = "America/Chicago"


def _ns(text: str) -> int:
    return pd.Timestamp(text, tz=TZ).value


def test_transitions() -> None:
    gate = RiskGate(RiskGateConfig(daily_loss_limit=0.02, reduce_at=0.5, max_position=3), TZ)
    assert gate.update(_ns("2023-01-03 09:00"), 100_000) is None and gate.state == ACTIVE
    moved = gate.update(_ns("2023-01-03 09:05"), 98_900)  # -1.1%: past half the limit
    assert (moved.before, moved.after) == (ACTIVE, REDUCING)
    moved = gate.update(_ns("2023-01-03 09:10"), 97_900)  # -2.1%: the limit
    assert moved.after == HALTED and "daily loss" in moved.reason
    assert gate.allowed(2, 3) == 0.0
    # the next trading day starts at 17:00: a fresh day's equity, ACTIVE again
    assert gate.update(_ns("2023-01-03 17:05"), 97_900).after == ACTIVE
    assert gate.update(_ns("2023-01-04 15:56"), 97_900).after == HALTED  # session close
    assert gate.update(_ns("2023-01-04 17:00"), 97_900).after == ACTIVE
    assert gate.set_stale(True).after == HALTED
    gate.set_stale(False)
    assert gate.update(_ns("2023-01-04 17:05"), 97_900).after == ACTIVE
    gate.kill("SIGTERM")
    assert gate.update(_ns("2023-01-04 17:10"), 97_900).reason == "kill switch: SIGTERM"
    assert gate.update(_ns("2023-01-05 17:10"), 97_900) is None and gate.state == HALTED


def test_limits_on_positions() -> None:
    gate = RiskGate(RiskGateConfig(max_position=3), TZ)
    assert gate.allowed(0, 5) == 3 and gate.allowed(0, -5) == -3 and gate.allowed(1, 2) == 2
    gate.state = REDUCING
    assert gate.allowed(3, 1) == 1 and gate.allowed(3, 4) == 3 and gate.allowed(3, -2) == 0


def test_gated_actions_land_on_the_allowed_position() -> None:
    actions = {"strategic": np.array(2), "tactical": np.array([0.8, 0.01, 1.0], np.float32),
               "risk": np.array(4)}  # fmt: skip
    # the step trades round(timing x (target - position)); target 5 from 0, the gate allows 3
    sent = gated_actions(actions, 0.0, 5.0, 4.0, 3.0)
    assert round(float(sent["tactical"][0]) * 5) == 3 and int(sent["risk"]) == 4
    # flatten from +4 while the model wants more: risk level 0 (zero target), full timing
    sent = gated_actions(actions, 4.0, 5.0, 5.0, 0.0)
    assert int(sent["risk"]) == 0 and float(sent["tactical"][0]) == 1.0
    assert gated_actions(actions, 0.0, 5.0, 4.0, 4.0) is actions

"""The risk gate between the model and the broker: ACTIVE, REDUCING or HALTED.

- ACTIVE: the model's orders pass, its position cut to ``max_position`` contracts.
- REDUCING: only orders that bring the position toward flat pass (the day's loss has reached
  ``reduce_at`` x ``daily_loss_limit``); leaves at the next trading day.
- HALTED: flat and no new exposure: the day's loss reached ``daily_loss_limit`` (until the next
  trading day), the session close is within ``flatten_minutes`` (until the next session), the feed
  has been silent ``stale_seconds`` (until a bar arrives), or the kill switch (a file or SIGTERM:
  for the rest of the session).

The gate is a function of the bars, the account and the kill switch, never of the wall clock except
for the stale-data timeout, so a restarted session replays it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from grandmodel.config.paper import RiskGateConfig

ACTIVE, REDUCING, HALTED = "ACTIVE", "REDUCING", "HALTED"


@dataclass
class Transition:
    before: str
    after: str
    reason: str


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


class RiskGate:
    def __init__(self, cfg: RiskGateConfig, timezone: str) -> None:
        self.cfg, self.zone = cfg, ZoneInfo(timezone)
        self.state, self.reason = ACTIVE, "start"
        self.day: object = None
        self.day_equity = 0.0
        self.killed = ""  # why the kill switch fired ("" while it has not)
        self.stale = False
        self.close_min, self.start_min = _minutes(cfg.session_close), _minutes(cfg.day_start)

    def restore(self, state: str, reason: str) -> None:
        self.state, self.reason = state, reason
        if reason.startswith("kill switch"):
            self.killed = reason

    def kill(self, why: str) -> None:
        self.killed = f"kill switch: {why}"

    def set_stale(self, stale: bool) -> Transition | None:
        self.stale = stale
        if stale and self.state != HALTED:
            return self._move(HALTED, "stale data: no bar for the configured timeout")
        return None

    def update(self, time_ns: int, equity: float) -> Transition | None:
        """The state at the close of a decision bar at ``time_ns`` with ``equity``."""
        local = datetime.fromtimestamp(time_ns / 1e9, self.zone)
        minute = local.hour * 60 + local.minute
        day = (local + timedelta(minutes=24 * 60 - self.start_min)).date()
        if day != self.day:
            self.day, self.day_equity = day, equity
        loss = max(0.0, 1.0 - equity / self.day_equity) if self.day_equity > 0 else 0.0
        closing = self.cfg.flatten_minutes > 0 and (
            self.close_min - self.cfg.flatten_minutes <= minute < self.start_min
        )
        limit = self.cfg.daily_loss_limit
        if self.killed:
            return self._move(HALTED, self.killed)
        if loss >= limit:
            return self._move(HALTED, f"daily loss {loss:.2%} >= limit {limit:.2%}")
        if closing:
            return self._move(HALTED, f"session close within {self.cfg.flatten_minutes} min")
        if self.stale:
            return self._move(HALTED, "stale data")
        if loss >= self.cfg.reduce_at * limit:
            return self._move(REDUCING, f"daily loss {loss:.2%} >= {self.cfg.reduce_at:g} x limit")
        return self._move(ACTIVE, "within limits")

    def _move(self, state: str, reason: str) -> Transition | None:
        if state == self.state:
            return None
        moved = Transition(self.state, state, reason)
        self.state, self.reason = state, reason
        return moved

    def allowed(self, position: float, wanted: float) -> float:
        """The position the gate lets the model reach from ``position`` when it wants ``wanted``."""
        cap = float(self.cfg.max_position)
        if self.state == HALTED:
            return 0.0
        if self.state == REDUCING:
            toward_flat = position * wanted >= 0 and abs(wanted) <= abs(position)
            return wanted if toward_flat else (0.0 if position * wanted < 0 else position)
        return max(-cap, min(cap, wanted))


def gated_actions(
    actions: dict, position: float, target: float, wanted: float, allowed: float
) -> dict:
    """Actions that make the env's step reach ``allowed`` instead of ``wanted``.

    The step trades ``round(entry_timing x (target - position))``; entry timing is set so that
    this lands on ``allowed`` when it lies between the position and the target, otherwise the risk
    level becomes 0 (a zero target) and the timing brings the position toward flat.
    """
    if allowed == wanted:
        return actions
    out = {role: value.copy() for role, value in actions.items()}
    if target != position and min(position, target) <= allowed <= max(position, target):
        out["tactical"][0] = (allowed - position) / (target - position)
    else:
        out["risk"] = out["risk"] * 0
        out["tactical"][0] = 1.0 - allowed / position if position else 0.0
    return out

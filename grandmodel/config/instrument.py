"""Schema of the ``instrument`` config group: what is traded and when (``conf/instrument/*.yaml``).

``data.*`` (timezone, trading time) and ``env.*`` (contract, costs, sizing) take their defaults from
here by interpolation, so one ``instrument=<preset>`` sets a market consistently
(docs/architecture.md, "Instruments and trading time").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from grandmodel.config.base import Problem, check
from grandmodel.config.env import CostConfig, Sizing


class AssetClass(StrEnum):
    future = "future"
    fx = "fx"
    equity = "equity"


class Calendar(StrEnum):
    """Session calendars: CME Globex (23 h, daily halt), 24x5 spot FX, US equities 09:30-16:00."""

    globex = "globex"
    fx = "fx"
    us_equity = "us_equity"


@dataclass
class InstrumentConfig:
    """One traded instrument.

    ``multiplier``: account currency per point per unit (contract, share or FX lot);
    ``session_hours`` x ``trading_days``: its trading time per year, which sets the annualisation
    factor; ``exchange``: the ``exchange_calendars`` code whose sessions and holidays it follows.
    """

    name: str = "es"
    symbol: str = "ES"
    description: str = "E-mini S&P 500 future (CME)"
    asset_class: AssetClass = AssetClass.future
    multiplier: float = 50.0
    tick_size: float = 0.25
    costs: CostConfig = field(default_factory=CostConfig)
    sizing: Sizing = Sizing.contracts
    calendar: Calendar = Calendar.globex
    exchange: str = "CMES"
    timezone: str = "America/Chicago"
    session_hours: float = 23.0
    trading_days: int = 252

    def problems(self) -> list[Problem]:
        out = check(self.multiplier > 0, "multiplier", f"must be > 0, got {self.multiplier}")
        out += check(self.tick_size > 0, "tick_size", f"must be > 0, got {self.tick_size}")
        out += check(
            0 < self.session_hours <= 24,
            "session_hours",
            f"expected trading hours per day in (0, 24], got {self.session_hours}",
        )
        out += check(
            1 <= self.trading_days <= 366,
            "trading_days",
            f"expected trading days per year in [1, 366], got {self.trading_days}",
        )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            out += [("timezone", f"expected an IANA time zone, got {self.timezone!r}")]
        return out

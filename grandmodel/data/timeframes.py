"""Bar sizes of the configured timeframes and the annualisation factor they imply
(docs/architecture.md, "Instruments and trading time")."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from grandmodel.config import typed
from grandmodel.config.base import timedelta_of
from grandmodel.config.data import DataConfig

TIMEFRAMES = ("base", "tactical", "strategic")
DAY = pd.Timedelta(days=1)


def bar_sizes(data_cfg: DataConfig) -> dict[str, pd.Timedelta]:
    """Bar size of each timeframe (validated at composition)."""
    return {name: timedelta_of(getattr(data_cfg.timeframes, name)) for name in TIMEFRAMES}  # type: ignore[misc]


def trading_day_bars(size: pd.Timedelta) -> int:
    """Trading days per bar for bars of whole days (``5D`` = a trading week), else 0 (intraday)."""
    return int(size / DAY) if size >= DAY and size % DAY == pd.Timedelta(0) else 0


def bars_per_year(size: pd.Timedelta, session_hours: float, trading_days: int) -> float:
    """Bars of ``size`` in a year of trading time.

    Intraday bars: ``trading_days`` x bars per session, a bar that covers part of a session counting
    as one (ES 5-minute bars: 23 h x 12 x 252 = 69,552; US equities' 6.5 h in hourly bars: 7 x 252);
    bars of k days: ``trading_days / k`` (daily: 252, weekly ``5D``: 50.4). Never 252 for intraday bars.
    """
    days = trading_day_bars(size)
    if days:
        return trading_days / days
    per_session = math.ceil(round(session_hours * 3600.0 / size.total_seconds(), 9))
    return float(trading_days * per_session)


def periods_per_year(data_cfg: DataConfig | Any, timeframe: str = "tactical") -> float:
    """Bars of ``timeframe`` in a year of the instrument's trading time (``data.session_hours`` and
    ``data.trading_days``, which default to the instrument's); see :func:`bars_per_year`.

    ``data_cfg``: a ``DataConfig`` or a ``data`` config node (composed, or stored with a run).
    """
    data_cfg = typed(data_cfg, DataConfig)
    size = bar_sizes(data_cfg)[timeframe]
    return bars_per_year(size, data_cfg.session_hours, data_cfg.trading_days)

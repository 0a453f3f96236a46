"""Bar sizes of the configured timeframes and the annualisation factor they imply."""

from __future__ import annotations

from typing import Any

import pandas as pd

from grandmodel.config import typed
from grandmodel.config.base import timedelta_of
from grandmodel.config.data import DataConfig

TIMEFRAMES = ("base", "tactical", "strategic")


def bar_sizes(data_cfg: DataConfig) -> dict[str, pd.Timedelta]:
    """Bar size of each timeframe (validated at composition)."""
    return {name: timedelta_of(getattr(data_cfg.timeframes, name)) for name in TIMEFRAMES}  # type: ignore[misc]


def periods_per_year(data_cfg: DataConfig | Any, timeframe: str = "tactical") -> float:
    """Bars of ``timeframe`` in a year of trading time, ``session_hours`` x ``trading_days``
    (ES 5-minute bars: 23 h x 252 days → 69,552); never 252 for intraday bars.

    ``data_cfg``: a ``DataConfig`` or a ``data`` config node (composed, or stored with a run).
    """
    data_cfg = typed(data_cfg, DataConfig)
    seconds = bar_sizes(data_cfg)[timeframe].total_seconds()
    return data_cfg.session_hours * 3600.0 * data_cfg.trading_days / seconds

"""One-minute OHLCV bars from a log-return path: noise, Brownian-bridge extremes, ticks, volume."""

from __future__ import annotations

import numpy as np

from grandmodel.data.synthetic.calendar import BARS_PER_SESSION, session_minute_of_day

RTH_OPEN_MINUTE = 8 * 60 + 30  # 08:30 CT, US regular session
RTH_CLOSE_MINUTE = 15 * 60 + 15  # 15:15 CT
EUROPE_OPEN_MINUTE = 2 * 60  # 02:00 CT, overnight volume picks up with Europe
OVERNIGHT_LEVEL = 0.25  # intraday volume profile relative to US midday (= 1)
EUROPE_LEVEL = 0.4
POST_CLOSE_LEVEL = 0.5  # 15:15-16:00 CT
RTH_OPEN_BOOST, RTH_OPEN_DECAY = 2.0, 30.0  # extra volume at 08:30, e-folding minutes
RTH_CLOSE_BOOST, RTH_CLOSE_DECAY = 1.2, 45.0  # extra volume at 15:15, e-folding minutes
VOLUME_LOG_SD = 0.35  # lognormal volume noise
VOLUME_RETURN_SLOPE = 0.25  # volume x (1 + slope * |return| / sigma), normalised to mean 1
MAX_ABS_Z = 10.0  # cap on |return| / sigma in the volume response (jumps, gaps, crashes)


def intraday_volume_profile(days: int) -> np.ndarray:
    """Relative volume of every bar: U-shaped over 08:30-15:15 CT, lower overnight."""
    minute = session_minute_of_day(1)
    since_open = minute - RTH_OPEN_MINUTE
    rth = (
        1.0
        + RTH_OPEN_BOOST * np.exp(-since_open / RTH_OPEN_DECAY)
        + RTH_CLOSE_BOOST * np.exp(-(RTH_CLOSE_MINUTE - minute) / RTH_CLOSE_DECAY)
    )
    in_rth = (minute >= RTH_OPEN_MINUTE) & (minute < RTH_CLOSE_MINUTE)
    before_rth = np.where(
        (minute >= EUROPE_OPEN_MINUTE) & (minute < RTH_OPEN_MINUTE), EUROPE_LEVEL, OVERNIGHT_LEVEL
    )
    after_rth = minute >= RTH_CLOSE_MINUTE
    one_session = np.where(in_rth, rth, np.where(after_rth, POST_CLOSE_LEVEL, before_rth))
    return np.tile(one_session, days)


def _round_to_tick(prices: np.ndarray, tick_size: float) -> np.ndarray:
    """Nearest positive multiple of ``tick_size``."""
    return np.maximum(np.round(prices / tick_size), 1.0) * tick_size


def build_bars(
    log_returns: np.ndarray,
    gaps: np.ndarray,
    sigma: np.ndarray,
    *,
    initial_price: float,
    tick_size: float,
    noise_level: float,
    base_volume: float,
    rngs: tuple[np.random.Generator, np.random.Generator, np.random.Generator],
) -> dict[str, np.ndarray]:
    """Open, high, low, close and volume of every minute of a path.

    The efficient log close is ``log(initial_price) + cumsum(gaps + log_returns)``; the observed
    one adds ``noise_level * sigma * N(0, 1)``. A bar opens at the previous observed close (plus
    its gap); its high and low are drawn from the extremes of a Brownian bridge between open and
    close with variance ``sigma**2``. Prices are rounded to ticks, volumes to whole contracts.
    """
    noise_rng, bridge_rng, volume_rng = rngs
    n = log_returns.size
    close = np.log(initial_price) + np.cumsum(gaps + log_returns)
    if noise_level > 0:
        close += noise_level * sigma * noise_rng.standard_normal(n)
    open_ = np.empty(n)
    open_[0] = np.log(initial_price)
    open_[1:] = close[:-1]
    open_ += gaps

    move = close - open_
    centre = 0.5 * (open_ + close)
    bridge_var = -2.0 * sigma**2 * np.log(bridge_rng.random((2, n)))  # -2 s^2 log U >= 0
    high = centre + 0.5 * np.sqrt(move**2 + bridge_var[0])
    low = centre - 0.5 * np.sqrt(move**2 + bridge_var[1])

    open_px = _round_to_tick(np.exp(open_), tick_size)
    close_px = _round_to_tick(np.exp(close), tick_size)
    high_px = np.maximum(_round_to_tick(np.exp(high), tick_size), np.maximum(open_px, close_px))
    low_px = np.minimum(_round_to_tick(np.exp(low), tick_size), np.minimum(open_px, close_px))

    abs_z = np.minimum(np.abs(move) / sigma, MAX_ABS_Z)
    response = (1.0 + VOLUME_RETURN_SLOPE * abs_z) / (
        1.0 + VOLUME_RETURN_SLOPE * np.sqrt(2 / np.pi)
    )
    noise = np.exp(VOLUME_LOG_SD * volume_rng.standard_normal(n) - 0.5 * VOLUME_LOG_SD**2)
    profile = intraday_volume_profile(n // BARS_PER_SESSION)
    volume = np.maximum(np.round(base_volume * profile * response * noise), 1.0)
    return {"open": open_px, "high": high_px, "low": low_px, "close": close_px, "volume": volume}

"""TA-Lib is the oracle: our indicators equal its values after warm-up to 1e-9 (pandas resampling
for realized volatility, which TA-Lib does not have)."""

from __future__ import annotations

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from grandmodel.data import indicators as ta
from grandmodel.data.features import (
    MOMENTUM_BARS,
    REALIZED_VOL_BARS,
    compute_features,
    first_complete_row,
)
from grandmodel.data.pipeline import build_tables
from grandmodel.data.resample import resample_bars
from tests.conftest import es_bars

TOL = {"rtol": 1e-9, "atol": 1e-9}


def _same(ours: np.ndarray, ref: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(ours[~np.isnan(ref)]), False)
    mask = ~np.isnan(ref)
    np.testing.assert_allclose(ours[mask], ref[mask], **TOL)


def _ohlc(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = np.round(4000 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))) * 4) / 4
    high = close + 0.25 * rng.integers(0, 8, n)
    low = close - 0.25 * rng.integers(0, 8, n)
    return high, low, close


@pytest.mark.parametrize("seed", [0, 1])
def test_indicators_equal_talib(seed: int) -> None:
    high, low, close = _ohlc(5000, seed)
    _same(ta.rsi(close, 14), talib.RSI(close, 14))
    _same(ta.atr(high, low, close, 14), talib.ATR(high, low, close, 14))
    for ours, ref in zip(ta.macd(close, 12, 26, 9), talib.MACD(close, 12, 26, 9), strict=True):
        _same(ours, ref)
    for ours, ref in zip(
        ta.bbands(close, 20, 2.0), talib.BBANDS(close, 20, 2.0, 2.0, 0), strict=True
    ):
        _same(ours, ref)
    _same(ta.sma(close, 20), talib.SMA(close, 20))
    _same(ta.ema(close, 50), talib.EMA(close, 50))
    _same(ta.true_range(high, low, close), talib.TRANGE(high, low, close))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=2, max_value=30),
    st.integers(min_value=40, max_value=300),
)
def test_periods_and_lengths_match_talib(seed: int, period: int, n: int) -> None:
    high, low, close = _ohlc(n, seed)
    _same(ta.rsi(close, period), talib.RSI(close, period))
    _same(ta.atr(high, low, close, period), talib.ATR(high, low, close, period))
    _same(ta.ema(close, period), talib.EMA(close, period))
    fast, slow = period, period + 7
    for ours, ref in zip(
        ta.macd(close, fast, slow, 5), talib.MACD(close, fast, slow, 5), strict=True
    ):
        _same(ours, ref)


@pytest.mark.parametrize("size", ["5min", "30min"])
def test_feature_table_columns_equal_talib(size: str) -> None:
    import pandas as pd

    base = es_bars(days=6)
    bars = compute_features(resample_bars(base, pd.Timedelta(size), pd.Timedelta("1min")))
    h, lo, c, v = (bars[n].to_numpy() for n in ("high", "low", "close", "volume"))
    _same(bars["rsi_14"].to_numpy(), talib.RSI(c, 14))
    _same(bars["atr_14"].to_numpy(), talib.ATR(h, lo, c, 14))
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    _same(bars["macd"].to_numpy(), macd)
    _same(bars["macd_signal"].to_numpy(), signal)
    _same(bars["macd_hist"].to_numpy(), hist)
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    _same(bars["bb_upper"].to_numpy(), upper)
    _same(bars["bb_middle"].to_numpy(), middle)
    _same(bars["bb_lower"].to_numpy(), lower)
    _same(bars["volume_sma"].to_numpy(), talib.SMA(v, 20))
    _same(bars["volume_ratio"].to_numpy(), v / talib.SMA(v, 20))
    for k in MOMENTUM_BARS:  # TA-Lib's ROCR is close_t / close_t-k
        _same(bars[f"momentum_{k}"].to_numpy(), np.log(talib.ROCR(c, k)))


def test_realized_volatility_equals_pandas_resampling_of_the_minute_bars() -> None:
    """Strategic bars are built from tactical ones; their realized variance is still the sum over
    the one-minute bars inside, so both timeframes equal pandas' resampling of the base bars."""
    import pandas as pd

    base = es_bars(days=6, seed=2)
    quiet = slice(3000, 3030)  # half an hour without a move: floored, not NaN (the warm-up holds)
    for column in ("open", "high", "low", "close"):
        base.iloc[quiet, base.columns.get_loc(column)] = base["close"].iloc[2999]
    sizes = {"base": pd.Timedelta("1min"), "tactical": pd.Timedelta("5min")}
    tables = build_tables(base, {**sizes, "strategic": pd.Timedelta("30min")})
    squared = np.log(base["close"] / base["open"]) ** 2
    for name, size in (("tactical", "5min"), ("strategic", "30min")):
        bars = tables[name]
        ref = squared.resample(size, closed="left", label="left").sum().reindex(bars.index)
        np.testing.assert_allclose(bars["realized_var"].to_numpy(), ref.to_numpy(), **TOL)
        assert (ref == 0).any()
        for k in REALIZED_VOL_BARS:
            expected = 0.5 * np.log(np.maximum(ref.rolling(k).mean().to_numpy(), 1e-12))
            _same(bars[f"realized_vol_{k}"].to_numpy(), expected)
            assert first_complete_row(bars, (f"realized_vol_{k}",)) == k - 1

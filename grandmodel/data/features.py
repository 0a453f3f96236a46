"""Feature tables: TA-Lib indicators under their usual names, and the observation features built on them.

Every value at bar t uses bars up to t only (prefix-invariant). ``FEATURES`` documents each observation
feature (README table); ``OBSERVATION`` says which ones each agent sees.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from grandmodel.data import indicators as ta

# name -> (formula, kind); kind "scaled" features are z-scored on the train split, "categorical" kept as is.
FEATURES: dict[str, tuple[str, str]] = {
    "log_return": ("ln(close_t / close_t-1)", "scaled"),
    "range_pct": ("(high - low) / close", "scaled"),
    "body_pct": ("(close - open) / open", "scaled"),
    "rsi_14": ("RSI(close, 14), Wilder smoothing (TA-Lib)", "scaled"),
    "macd_pct": ("MACD(12, 26) line / close", "scaled"),
    "macd_signal_pct": ("MACD signal EMA(9) / close", "scaled"),
    "atr_pct": ("ATR(14), Wilder smoothing / close", "scaled"),
    "bb_position": (
        "(close - bb_lower) / (bb_upper - bb_lower), BBANDS(20, 2σ population)",
        "scaled",
    ),
    "bb_width": ("(bb_upper - bb_lower) / bb_middle", "scaled"),
    "volume_ratio": ("volume / SMA(volume, 20)", "scaled"),
    "trend_regime": ("+1 if EMA20 - EMA50 > 0.5·ATR14, -1 if < -0.5·ATR14, else 0", "categorical"),
    "vol_regime": (
        "std(log_return, 10) / std(log_return, 50): 0 if < 0.8, 2 if > 1.25, else 1",
        "categorical",
    ),
    "market_session": (
        "CT clock: 0 Asia 17:00-02:00, 1 Europe 02:00-08:30, 2 US 08:30-15:15, 3 close 15:15-16:00",
        "categorical",
    ),
}
# time-series momentum over k bars (2, 6, 12 and 24 hours of 30-minute bars), observed only when
# listed in data.features.<role> (experiments/learning_quality: no better than the default 13)
MOMENTUM_BARS = (4, 12, 24, 48)
DEFAULT_FEATURES = tuple(FEATURES)
FEATURES.update({f"momentum_{k}": (f"ln(close_t / close_t-{k})", "scaled") for k in MOMENTUM_BARS})
# realized volatility (Andersen, Bollerslev, Diebold & Labys 2003, "Modeling and Forecasting Realized
# Volatility", Econometrica 71(2)) over the last k bars, from the base bars inside them: it tells
# regimes apart by their volatility far sooner than the bar range does (a down-trend's higher vol,
# the leverage effect); observed only when listed in data.features.<role>
REALIZED_VOL_BARS = (1, 4, 12, 24)
# k bars without a price move (quiet 5-minute bars at tick resolution): the variance is floored here
# (a per-bar vol of 1e-6, far below one tick of any listed contract) instead of ln 0 = -inf, which
# would make the row incomplete and restart the warm-up there
REALIZED_VAR_FLOOR = 1e-12
FEATURES.update(
    {
        f"realized_vol_{k}": (
            f"ln sqrt(mean over the last {k} bars of realized_var, floored at 1e-12), realized_var = "
            "Σ ln(close/open)² of the base bars inside a bar",
            "scaled",
        )
        for k in REALIZED_VOL_BARS
    }
)

OBSERVATION: dict[str, tuple[str, ...]] = {
    "strategic": DEFAULT_FEATURES,
    "tactical": (
        "log_return",
        "range_pct",
        "body_pct",
        "rsi_14",
        "atr_pct",
        "bb_position",
        "volume_ratio",
    ),
}

# features from other sources than the bars (name -> (formula, kind, source key)), observed only
# when listed in data.features.<role>; each bar gets the values known strictly before its close
SOURCE_FEATURES: dict[str, tuple[str, str, str]] = {
    "trade_count": ("trades in the bar (data.format=ticks)", "scaled", "format"),
    "signed_volume_ratio": ("signed volume / volume (side or tick rule)", "scaled", "format"),
    "spread_pct": ("(ask - bid) / mid of the last book snapshot", "scaled", "book"),
    "depth": ("sizes shown on every level", "scaled", "book"),
    "imbalance": ("(bid - ask size) / (bid + ask size), all levels", "scaled", "book"),
    "microprice_pct": ("size-weighted top-of-book price / mid - 1", "scaled", "book"),
    "hours_to_next": ("hours to the next scheduled release (capped at a year)", "scaled", "events"),
    "hours_since_last": ("hours since the last release", "scaled", "events"),
    "last_surprise": ("(actual - forecast) / |forecast| of the last release", "scaled", "events"),
    # fitted on the training split (data/hmm.py), stored with the model in its strategic NormStats
    "regime_edge": (
        "Σ_k p_k·mean_k·D_k: expected log return until the regime ends, p the posterior of a "
        "Gaussian HMM of the base returns after the bar's last base bar",
        "scaled",
        "fit",
    ),
    "regime_vol": ("Σ_k p_k·sqrt(var_k): the posterior's per-base-bar volatility", "scaled", "fit"),
}
# the features fitted on the training split (added in pipeline.assemble, filtered live by the paper loop)
FITTED_FEATURES: tuple[str, ...] = tuple(n for n, s in SOURCE_FEATURES.items() if s[2] == "fit")

SESSION_CLOCK = "America/Chicago"
_SESSION_EDGES = np.array(
    [2 * 60, 8 * 60 + 30, 15 * 60 + 15, 16 * 60, 17 * 60]
)  # minutes after midnight CT
_SESSION_CODES = np.array([0, 1, 2, 3, 0, 0])  # <02:00 Asia, Europe, US, close, halt, >=17:00 Asia


def compute_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Add indicator and observation-feature columns to OHLCV ``bars`` (indexed by open time); the
    ``realized_vol_k`` columns where ``bars`` has ``realized_var`` (:func:`realized_variance`)."""
    o, h, lo, c, v = (
        bars[n].to_numpy(np.float64) for n in ("open", "high", "low", "close", "volume")
    )
    col: dict[str, np.ndarray] = {"rsi_14": ta.rsi(c, 14)}
    col["macd"], col["macd_signal"], col["macd_hist"] = ta.macd(c, 12, 26, 9)
    col["atr_14"] = ta.atr(h, lo, c, 14)
    col["bb_upper"], col["bb_middle"], col["bb_lower"] = ta.bbands(c, 20, 2.0)
    col["volume_sma"] = ta.sma(v, 20)

    log_return = np.log(c / np.concatenate(([np.nan], c[:-1])))
    for k in MOMENTUM_BARS:
        col[f"momentum_{k}"] = np.log(c / np.concatenate((np.full(k, np.nan), c[:-k]))[: c.size])
    if "realized_var" in bars:
        variance = bars["realized_var"].to_numpy(np.float64)
        for k in REALIZED_VOL_BARS:
            floored = np.maximum(ta.sma(variance, k), REALIZED_VAR_FLOOR)  # NaN stays NaN
            col[f"realized_vol_{k}"] = 0.5 * np.log(floored)
    width = col["bb_upper"] - col["bb_lower"]
    with np.errstate(divide="ignore", invalid="ignore"):
        col["log_return"] = log_return
        col["range_pct"] = (h - lo) / c
        col["body_pct"] = (c - o) / o
        col["macd_pct"] = col["macd"] / c
        col["macd_signal_pct"] = col["macd_signal"] / c
        col["atr_pct"] = col["atr_14"] / c
        col["bb_position"] = np.where(width > 0, (c - col["bb_lower"]) / width, 0.5)
        col["bb_width"] = width / col["bb_middle"]
        col["volume_ratio"] = np.where(col["volume_sma"] > 0, v / col["volume_sma"], 1.0)
    col["bb_position"][np.isnan(width)] = np.nan
    col["volume_ratio"][np.isnan(col["volume_sma"])] = np.nan
    col["trend_regime"] = _trend_regime(c, col["atr_14"])
    col["vol_regime"] = _vol_regime(log_return)
    col["market_session"] = market_session(bars.index)
    return pd.concat([bars, pd.DataFrame(col, index=bars.index)], axis=1)


def realized_variance(base: pd.DataFrame, bars: pd.DataFrame) -> np.ndarray:
    """Σ ln(close / open)² of the base bars inside each of ``bars`` (rows ``first``..``last`` of
    ``base``, as :func:`~grandmodel.data.resample.resample_bars` records them): open-to-close, so a
    gap between sessions is not counted and the sum is the same whichever bars it is built from."""
    log_body = np.log(base["close"].to_numpy(np.float64) / base["open"].to_numpy(np.float64))
    total = np.concatenate(([0.0], np.cumsum(log_body**2)))
    return total[bars["last"].to_numpy() + 1] - total[bars["first"].to_numpy()]


def _trend_regime(close: np.ndarray, atr: np.ndarray) -> np.ndarray:
    gap = ta.ema(close, 20) - ta.ema(close, 50)
    regime = np.sign(gap) * (np.abs(gap) > 0.5 * atr)
    regime[np.isnan(gap) | np.isnan(atr)] = np.nan
    return regime


def _vol_regime(log_return: np.ndarray) -> np.ndarray:
    short, long = ta.rolling_std(log_return, 10), ta.rolling_std(log_return, 50)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(long > 0, short / long, 1.0)
    regime = np.where(ratio < 0.8, 0.0, np.where(ratio > 1.25, 2.0, 1.0))
    regime[np.isnan(long)] = np.nan
    return regime


def market_session(index: pd.DatetimeIndex) -> np.ndarray:
    """Session code of each bar's open time on the CME clock (America/Chicago)."""
    local = index.tz_convert(SESSION_CLOCK).tz_localize(None) if index.tz is not None else index
    minutes = (local.as_unit("ns").asi8 // 60_000_000_000) % 1440
    return _SESSION_CODES[np.searchsorted(_SESSION_EDGES, minutes, side="right")].astype(np.float64)


def first_complete_row(table: pd.DataFrame, columns: tuple[str, ...]) -> int:
    """Index after the last row where a listed feature is not finite (the warm-up length)."""
    finite = np.isfinite(table[list(columns)].to_numpy(np.float64)).all(axis=1)
    bad = np.flatnonzero(~finite)
    return int(bad[-1] + 1) if bad.size else 0

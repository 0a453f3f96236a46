"""Technical indicators with TA-Lib's exact definitions (seeding, Wilder smoothing, population std).

Every function takes float64 arrays and returns arrays of the same length with NaN during warm-up,
where TA-Lib's output starts. Recursions run through ``scipy.signal.lfilter`` (C speed).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter


def _recursive_mean(x: np.ndarray, alpha: float, start: int, seed: float) -> np.ndarray:
    """``y[start] = seed``; ``y[t] = y[t-1] + alpha * (x[t] - y[t-1])`` after; NaN before ``start``."""
    out = np.full(x.shape, np.nan)
    if start >= len(x):
        return out
    out[start] = seed
    if start + 1 < len(x):
        tail, _ = lfilter([alpha], [1.0, alpha - 1.0], x[start + 1 :], zi=[(1.0 - alpha) * seed])
        out[start + 1 :] = tail
    return out


def window_sum(x: np.ndarray, period: int) -> np.ndarray:
    """Sum over each trailing window of ``period`` values; NaN where the window is short or has NaN.

    Differences of a running sum of the values shifted by their first finite value: O(n), and the
    shift keeps the running sum small enough for ~1e-10 accuracy at futures price levels.
    """
    out = np.full(x.shape, np.nan)
    if len(x) < period:
        return out
    missing = np.isnan(x)
    finite = x[~missing]
    shift = finite[0] if finite.size else 0.0
    running = np.empty(len(x) + 1)
    running[0] = 0.0
    np.cumsum(np.where(missing, 0.0, x - shift), out=running[1:])
    out[period - 1 :] = running[period:] - running[:-period] + period * shift
    if missing.any():
        holes = np.concatenate(([0], np.cumsum(missing)))
        out[period - 1 :][holes[period:] - holes[:-period] > 0] = np.nan
    return out


def sma(x: np.ndarray, period: int) -> np.ndarray:
    """Simple moving average (TA-Lib SMA: first value at ``period - 1``)."""
    return window_sum(x, period) / period


def rolling_std(x: np.ndarray, period: int) -> np.ndarray:
    """Population standard deviation of each trailing window (TA-Lib STDDEV with nbdev 1).

    Sums of the values shifted by their first finite value keep the variance free of cancellation
    at futures price levels.
    """
    finite = x[np.isfinite(x)]
    shifted = x - (finite[0] if finite.size else 0.0)
    mean = window_sum(shifted, period) / period
    var = window_sum(shifted * shifted, period) / period - mean * mean
    return np.sqrt(np.maximum(var, 0.0))


def ema(x: np.ndarray, period: int, start: int | None = None) -> np.ndarray:
    """TA-Lib EMA, k = 2/(period+1), seeded at ``start`` with the SMA of the ``period`` values ending there.

    ``start`` defaults to the first index where the input has ``period`` finite values.
    """
    first = int(np.argmax(np.isfinite(x))) if np.isfinite(x).any() else len(x)
    start = first + period - 1 if start is None else start
    if start >= len(x):
        return np.full(x.shape, np.nan)
    seed = float(np.mean(x[start - period + 1 : start + 1]))
    return _recursive_mean(x, 2.0 / (period + 1), start, seed)


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """TA-Lib TRANGE: max(high, prev close) - min(low, prev close); NaN at index 0."""
    prev = np.concatenate(([np.nan], close[:-1]))
    tr = np.maximum(high, prev) - np.minimum(low, prev)
    tr[0] = np.nan
    return tr


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """Average true range with Wilder smoothing, seeded with the mean of TR[1..period]."""
    tr = true_range(high, low, close)
    if len(tr) <= period:
        return np.full(tr.shape, np.nan)
    return _recursive_mean(tr, 1.0 / period, period, float(np.mean(tr[1 : period + 1])))


def rsi(close: np.ndarray, period: int = 14) -> np.ndarray:
    """Relative strength index with Wilder smoothing (TA-Lib RSI: first value at ``period``)."""
    out = np.full(close.shape, np.nan)
    if len(close) <= period:
        return out
    change = np.diff(close, prepend=np.nan)
    gain = np.where(change > 0, change, 0.0)
    loss = np.where(change < 0, -change, 0.0)
    avg_gain = _recursive_mean(gain, 1.0 / period, period, float(np.mean(gain[1 : period + 1])))
    avg_loss = _recursive_mean(loss, 1.0 / period, period, float(np.mean(loss[1 : period + 1])))
    total = avg_gain + avg_loss
    with np.errstate(invalid="ignore", divide="ignore"):
        out[period:] = np.where(
            total[period:] != 0, 100.0 * avg_gain[period:] / total[period:], 0.0
        )
    return out


def macd(
    close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TA-Lib MACD: both EMAs seeded at index ``slow - 1``; outputs start at ``slow + signal - 2``."""
    nan = np.full(close.shape, np.nan)
    first = slow - 1
    if len(close) < slow + signal - 1:
        return nan, nan.copy(), nan.copy()
    line = ema(close, fast, start=first) - ema(close, slow, start=first)
    sig = ema(line, signal, start=first + signal - 1)
    line[: first + signal - 1] = np.nan
    return line, sig, line - sig


def bbands(
    close: np.ndarray, period: int = 20, nbdev: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger bands on the SMA with the population standard deviation (TA-Lib BBANDS, matype 0)."""
    middle = sma(close, period)
    std = rolling_std(close, period)
    return middle + nbdev * std, middle, middle - nbdev * std

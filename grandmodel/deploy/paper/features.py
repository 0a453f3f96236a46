"""Incremental bars and features: each new base bar updates the resampled bars, the indicators and the
observation windows in O(1), with the batch pipeline's definitions (``grandmodel.data.features``).

The batch indicators (``grandmodel.data.indicators``) run recursions and running sums over a whole
array; here the same recursions advance one completed bar at a time, and the running sums are kept
exactly as the batch code accumulates them (sums of values shifted by the series' first value), so a
replayed file gives the batch values to rounding. Only completed bars enter (docs/architecture.md,
"Time and look-ahead"): a resampled bar is complete when its last base bar has arrived or a bar of a
later bin arrives.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from grandmodel.data.features import (
    FEATURES,
    FITTED_FEATURES,
    MOMENTUM_BARS,
    OBSERVATION,
    REALIZED_VAR_FLOOR,
    REALIZED_VOL_BARS,
    market_session,
)
from grandmodel.data.hmm import RegimeFit

# what the loop computes: every bar feature and the fitted ones (not those of a book, events or trades)
LIVE_FEATURES: tuple[str, ...] = (*FEATURES, *FITTED_FEATURES)


@dataclass(frozen=True)
class Bar:
    """One OHLCV bar; ``open_ns`` is its open time (UTC ns), ``known_ns`` when it is complete;
    ``realized_var`` the Σ ln(close / open)² of the base bars inside (NaN: a base bar, its own)."""

    open_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    known_ns: int = 0
    realized_var: float = math.nan

    @property
    def variance(self) -> float:
        """``realized_var``, or ln(close / open)² for a base bar."""
        if math.isnan(self.realized_var):
            return math.log(self.close / self.open) ** 2
        return self.realized_var


class Resampler:
    """Coarser bars on open stamps (``closed=left, label=left``) binned on absolute time, as
    ``grandmodel.data.resample.resample_bars`` bins them (``offset_ns``: the first bar's UTC offset)."""

    def __init__(self, size_ns: int, base_ns: int, offset_ns: int) -> None:
        self.size, self.base, self.offset = size_ns, base_ns, offset_ns
        self.bin: int | None = None
        self.acc: list[float] = []

    def push(self, bar: Bar) -> list[Bar]:
        """Add ``bar``; returns the bars it completes (at most two: the previous bin and its own)."""
        done: list[Bar] = []
        b = (bar.open_ns + self.offset) // self.size
        if self.bin is not None and b != self.bin:
            done.append(self._close())
        if self.bin is None:
            self.bin = b
            self.acc = [bar.open, bar.high, bar.low, bar.close, bar.volume, bar.variance]
        else:
            a = self.acc
            a[1], a[2], a[3], a[4], a[5] = (
                max(a[1], bar.high),
                min(a[2], bar.low),
                bar.close,
                a[4] + bar.volume,
                a[5] + bar.variance,
            )
        if bar.open_ns + self.base >= self._label() + self.size:  # its last slot has arrived
            done.append(self._close())
        return done

    def _label(self) -> int:
        return int(self.bin) * self.size - self.offset

    def _close(self) -> Bar:
        label, (o, h, lo, c, v, var) = self._label(), self.acc
        self.bin, self.acc = None, []
        return Bar(label, o, h, lo, c, v, label + self.size, var)


class _Ema:
    """TA-Lib EMA seeded at value number ``start`` (0-based) with the mean of the last ``period``."""

    def __init__(self, period: int, start: int | None = None, alpha: float | None = None) -> None:
        self.period = period
        self.start = period - 1 if start is None else start
        self.alpha = 2.0 / (period + 1) if alpha is None else alpha
        self.seen, self.value = 0, math.nan
        self.last: deque[float] = deque(maxlen=period)

    def update(self, x: float) -> float:
        if self.seen > self.start:
            self.value = self.alpha * x + (1.0 - self.alpha) * self.value
        else:
            self.last.append(x)
            if self.seen == self.start:
                self.value = float(np.mean(np.fromiter(self.last, float)))
        self.seen += 1
        return self.value


class _Window:
    """Trailing-window sum and population std as the batch ``window_sum`` / ``rolling_std`` compute
    them: running sums of ``x - first`` (and its square) differenced ``period`` apart."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.first = math.nan
        self.run = deque([0.0], maxlen=period + 1)
        self.run2 = deque([0.0], maxlen=period + 1)
        self.count = 0

    def update(self, x: float) -> tuple[float, float]:
        """(sum, std) of the window ending at ``x``; NaN until ``period`` values are in."""
        if math.isnan(self.first):
            self.first = x
        s = x - self.first
        self.run.append(self.run[-1] + s)
        self.run2.append(self.run2[-1] + s * s)
        self.count += 1
        if self.count < self.period:
            return math.nan, math.nan
        shifted = self.run[-1] - self.run[0]
        mean = shifted / self.period
        var = (self.run2[-1] - self.run2[0]) / self.period - mean * mean
        return shifted + self.period * self.first, math.sqrt(max(var, 0.0))


class _Wilder:
    """Wilder smoothing seeded at value ``period`` with the mean of values 1..period (ATR, RSI)."""

    def __init__(self, period: int) -> None:
        self.ema = _Ema(period, start=period, alpha=1.0 / period)

    def update(self, x: float) -> float:
        if self.ema.seen == 0:  # value 0 is outside the seed (TA-Lib skips the first bar)
            self.ema.seen = 1
            return math.nan
        return self.ema.update(x)


class FeatureState:
    """Indicators of one timeframe, advanced one completed bar at a time; :meth:`update` returns the
    raw (un-normalised) values of ``columns`` (default ``OBSERVATION[role]``; any of
    :data:`LIVE_FEATURES`) for that bar, as ``compute_features`` would."""

    def __init__(self, role: str, columns: tuple[str, ...] | None = None) -> None:
        self.columns = tuple(columns or OBSERVATION[role])
        self.closes: deque[float] = deque(maxlen=max(MOMENTUM_BARS) + 1)
        self.variance = {k: _Window(k) for k in REALIZED_VOL_BARS}
        self.prev_close = math.nan
        self.rsi_gain, self.rsi_loss, self.atr = _Wilder(14), _Wilder(14), _Wilder(14)
        self.macd_fast, self.macd_slow = _Ema(12, start=25), _Ema(26, start=25)
        self.macd_signal = _Ema(9, start=8)
        self.ema20, self.ema50 = _Ema(20), _Ema(50)
        self.close20, self.volume20 = _Window(20), _Window(20)
        self.ret10, self.ret50 = _Window(10), _Window(50)
        self.n = 0

    def update(self, bar: Bar, fitted: dict[str, float] | None = None) -> np.ndarray:
        """The row of ``bar``; ``fitted``: the values of :data:`FITTED_FEATURES` at its close."""
        o, h, lo, c, v = bar.open, bar.high, bar.low, bar.close, bar.volume
        prev, n = self.prev_close, self.n
        self.prev_close, self.n = c, n + 1
        f: dict[str, float] = dict(fitted or {})
        change = c - prev if n else math.nan
        gain = self.rsi_gain.update(change if change > 0 else 0.0)
        loss = self.rsi_loss.update(-change if change < 0 else 0.0)
        total = gain + loss
        f["rsi_14"] = math.nan if math.isnan(total) else (100.0 * gain / total if total else 0.0)
        fast, slow = self.macd_fast.update(c), self.macd_slow.update(c)
        line = fast - slow
        signal = self.macd_signal.update(line) if n >= 25 else math.nan
        line = line if n >= 33 else math.nan
        tr = max(h, prev) - min(lo, prev) if n else math.nan
        atr = self.atr.update(tr)
        middle_sum, std = self.close20.update(c)
        middle = middle_sum / 20
        vol_sum, _ = self.volume20.update(v)
        volume_sma = vol_sum / 20
        log_return = float(np.log(c / prev)) if n else math.nan
        width = (middle + 2.0 * std) - (middle - 2.0 * std)
        f["log_return"] = log_return
        f["range_pct"] = (h - lo) / c
        f["body_pct"] = (c - o) / o
        f["macd_pct"] = line / c
        f["macd_signal_pct"] = signal / c
        f["atr_pct"] = atr / c
        lower = middle - 2.0 * std
        f["bb_position"] = (
            math.nan if math.isnan(width) else ((c - lower) / width if width > 0 else 0.5)
        )
        f["bb_width"] = width / middle
        f["volume_ratio"] = (
            math.nan if math.isnan(volume_sma) else (v / volume_sma if volume_sma > 0 else 1.0)
        )
        gap = self.ema20.update(c) - self.ema50.update(c)
        f["trend_regime"] = (
            math.nan
            if math.isnan(gap) or math.isnan(atr)
            else float(np.sign(gap)) * float(abs(gap) > 0.5 * atr)
        )
        short = self.ret10.update(log_return)[1] if n else math.nan
        long = self.ret50.update(log_return)[1] if n else math.nan
        ratio = (short / long if long > 0 else 1.0) if n else math.nan
        f["vol_regime"] = (
            math.nan if math.isnan(long) else (0.0 if ratio < 0.8 else 2.0 if ratio > 1.25 else 1.0)
        )
        if "market_session" in self.columns:
            stamp = pd.DatetimeIndex([pd.Timestamp(bar.open_ns, tz="UTC")])
            f["market_session"] = float(market_session(stamp)[0])
        self.closes.append(c)
        for k in MOMENTUM_BARS:
            f[f"momentum_{k}"] = math.log(c / self.closes[-k - 1]) if n >= k else math.nan
        for k, window in self.variance.items():
            mean = window.update(bar.variance)[0] / k
            floored = max(mean, REALIZED_VAR_FLOOR)
            f[f"realized_vol_{k}"] = math.nan if math.isnan(mean) else 0.5 * math.log(floored)
        return np.array([f[name] for name in self.columns], dtype=np.float64)


class Windows:
    """The last ``length`` feature rows of a timeframe and the warm-up rule of the batch pipeline:
    a window counts once ``length`` rows after the last row with a non-finite feature are in."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.rows: deque[np.ndarray] = deque(maxlen=length)
        self.clean = 0  # rows since the last non-finite one

    def push(self, row: np.ndarray) -> None:
        self.rows.append(row)
        self.clean = self.clean + 1 if np.isfinite(row).all() else 0

    @property
    def ready(self) -> bool:
        return self.clean >= self.length

    def array(self) -> np.ndarray:
        return np.stack(self.rows)


@dataclass
class Completed:
    """A tactical bar that has just completed, with whether a new strategic bar completed with it."""

    bar: Bar
    strategic_new: bool


class LiveFeatures:
    """Base bars in → completed tactical bars out, with tactical and strategic observation windows.
    ``regime``: the model's fitted HMM, filtered one base bar at a time where a role observes
    :data:`FITTED_FEATURES` (each bar takes the posterior after its last base bar, as in
    ``data/hmm.py``'s ``add_regime_features``)."""

    def __init__(
        self,
        sizes_ns: dict[str, int],
        windows: dict[str, int],
        columns: dict[str, tuple[str, ...]] | None = None,
        regime: RegimeFit | None = None,
    ) -> None:
        fitted = [c for cols in (columns or {}).values() for c in cols if c in FITTED_FEATURES]
        if fitted and regime is None:
            raise ValueError(f"features {fitted} need the model's regime fit")
        self.regime = regime if fitted else None
        self.posterior: np.ndarray | None = None  # log posterior after the last base bar
        self.before: np.ndarray | None = None  # and after the base bar before it
        self.last_close = math.nan
        self.sizes = sizes_ns
        self.tactical_bins: Resampler | None = None
        self.strategic_bins: Resampler | None = None
        self.state = {
            role: FeatureState(role, (columns or {}).get(role))
            for role in ("tactical", "strategic")
        }
        self.windows = {role: Windows(windows[role]) for role in ("tactical", "strategic")}
        self.tactical_count = 0
        self.strategic_count = 0

    def push(self, bar: Bar, offset_ns: int) -> list[Completed]:
        """Add a base bar (``offset_ns``: the UTC offset of the session's first bar, fixing the bins)."""
        if self.tactical_bins is None:
            self.tactical_bins = Resampler(self.sizes["tactical"], self.sizes["base"], offset_ns)
            self.strategic_bins = Resampler(
                self.sizes["strategic"], self.sizes["tactical"], offset_ns
            )
        if self.regime is not None:
            previous = bar.open if math.isnan(self.last_close) else self.last_close
            self.before = self.posterior
            self.posterior = self.regime.step(self.posterior, math.log(bar.close / previous))
            self.last_close = bar.close
        out = []
        for tac in self.tactical_bins.push(bar):
            fitted = self._fitted(tac, bar)
            self.windows["tactical"].push(self.state["tactical"].update(tac, fitted))
            self.tactical_count += 1
            new = False
            assert self.strategic_bins is not None
            for strat in self.strategic_bins.push(tac):
                fitted = self._fitted(strat, bar)
                self.windows["strategic"].push(self.state["strategic"].update(strat, fitted))
                self.strategic_count += 1
                new = True
            out.append(Completed(tac, new))
        return out

    def _fitted(self, done: Bar, bar: Bar) -> dict[str, float] | None:
        """The fitted features of the completed bar ``done``: after ``bar`` when it lies inside
        ``done``, else after the base bar before it (``bar`` opened a later bin)."""
        if self.regime is None:
            return None
        posterior = self.posterior if bar.open_ns < done.known_ns else self.before
        assert posterior is not None  # a completed bar holds at least one base bar
        return {k: float(v) for k, v in self.regime.features(posterior).items()}

    @property
    def ready(self) -> bool:
        return self.windows["tactical"].ready and self.windows["strategic"].ready

    def observation(self) -> dict[str, np.ndarray]:
        """Raw windows ``[window, features]`` of the last completed bars (the bundle's input)."""
        return {role: w.array() for role, w in self.windows.items()}

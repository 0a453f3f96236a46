"""Resample base bars to coarser bars on open stamps (``closed='left', label='left'``), with known-at times.

A bar is *known* at its close: open + bar size. Binning runs on absolute (UTC) time aligned to the local
midnight of the first bar's UTC offset, so a daylight-saving change never merges or splits bars.
Bars of k >= 2 whole days count trading days instead (``5D`` = five trading days present in the data,
a trading week, not five calendar days); such a bar is known at the local midnight after its last
day, and a last bar with fewer than k days is left out (it is never complete within the data).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from grandmodel.data.loader import OHLCV
from grandmodel.data.timeframes import trading_day_bars

TRADE_COUNTS = ("trades", "signed_volume")


def resample_bars(base: pd.DataFrame, size: pd.Timedelta, base_size: pd.Timedelta) -> pd.DataFrame:
    """Aggregate ``base`` (indexed by open time) into bars of ``size``.

    Columns: open, high, low, close, volume, ``known_ns`` (close time, UTC ns), ``first`` and ``last``
    (positions of the first and last base bar inside), and ``regime`` (of the last base bar) when present.
    ``base`` may itself be resampled bars (with ``first``/``last``): positions then still point at the
    original base bars.
    """
    stamps = base.index.as_unit("ns")
    ns = stamps.asi8
    if size == base_size:
        keep = (*OHLCV, *TRADE_COUNTS, "regime", "first", "last")
        out = base[[c for c in keep if c in base]].copy()
        out["known_ns"] = ns + size.value
        if "first" not in base:
            out["first"] = out["last"] = np.arange(len(base))
        return out
    days = trading_day_bars(size)
    if days > 1:
        base, index, known, starts, ends = _trading_day_bins(base, days)
    else:
        offset = int(stamps[0].utcoffset().total_seconds() * 1e9) if stamps.tz is not None else 0
        bins = (ns + offset) // size.value
        starts = np.flatnonzero(np.concatenate(([True], bins[1:] != bins[:-1])))
        ends = np.concatenate((starts[1:], [len(ns)])) - 1
        label = bins[starts] * size.value - offset
        index = pd.DatetimeIndex(label, tz="UTC")
        index = index.tz_convert(stamps.tz) if stamps.tz is not None else index.tz_localize(None)
        known = label + size.value
    o, h, lo, c, v = (base[name].to_numpy() for name in OHLCV)
    out = pd.DataFrame(
        {
            "open": o[starts],
            "high": np.maximum.reduceat(h, starts),
            "low": np.minimum.reduceat(lo, starts),
            "close": c[ends],
            "volume": np.add.reduceat(v, starts),
            "known_ns": known,
            "first": base["first"].to_numpy()[starts] if "first" in base else starts,
            "last": base["last"].to_numpy()[ends] if "last" in base else ends,
        },
        index=index.rename(base.index.name or "timestamp"),
    )
    for name in TRADE_COUNTS:  # bars built from trades (data/ticks.py): sums, like volume
        if name in base:
            out[name] = np.add.reduceat(base[name].to_numpy(), starts)
    if "regime" in base:
        out["regime"] = base["regime"].to_numpy()[ends]
    return out


def _trading_day_bins(
    base: pd.DataFrame, days: int
) -> tuple[pd.DataFrame, pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]:
    """Bins of ``days`` consecutive trading days (local dates present in ``base``): the rows kept,
    each bin's label (its first local midnight), known time (the local midnight after its last day),
    and the first and last row of each bin."""
    local = base.index.tz_localize(None) if base.index.tz is not None else base.index
    dates = local.normalize()
    ordinal = np.concatenate(([0], np.cumsum(dates[1:] != dates[:-1])))
    bins = ordinal // days
    complete = bins < (ordinal[-1] + 1) // days
    base, dates, bins = base[complete], dates[complete], bins[complete]
    starts = np.flatnonzero(np.concatenate(([True], bins[1:] != bins[:-1])))
    ends = np.concatenate((starts[1:], [len(bins)])) - 1
    label, after = dates[starts], dates[ends] + pd.Timedelta(days=1)
    if base.index.tz is not None:
        label = label.tz_localize(base.index.tz, ambiguous="raise", nonexistent="shift_forward")
        after = after.tz_localize(base.index.tz, ambiguous="raise", nonexistent="shift_forward")
    return base, label.as_unit("ns"), after.as_unit("ns").asi8, starts, ends

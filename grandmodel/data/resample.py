"""Resample base bars to coarser bars on open stamps (``closed='left', label='left'``), with known-at times.

A bar is *known* at its close: open + bar size. Binning runs on absolute (UTC) time aligned to the local
midnight of the first bar's UTC offset, so a daylight-saving change never merges or splits bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from grandmodel.data.loader import OHLCV


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
        out = base[[c for c in (*OHLCV, "regime", "first", "last") if c in base]].copy()
        out["known_ns"] = ns + size.value
        if "first" not in base:
            out["first"] = out["last"] = np.arange(len(base))
        return out
    offset = int(stamps[0].utcoffset().total_seconds() * 1e9) if stamps.tz is not None else 0
    bins = (ns + offset) // size.value
    starts = np.flatnonzero(np.concatenate(([True], bins[1:] != bins[:-1])))
    ends = np.concatenate((starts[1:], [len(ns)])) - 1
    o, h, lo, c, v = (base[name].to_numpy() for name in OHLCV)
    label = bins[starts] * size.value - offset
    index = pd.DatetimeIndex(label, tz="UTC")
    index = index.tz_convert(stamps.tz) if stamps.tz is not None else index.tz_localize(None)
    out = pd.DataFrame(
        {
            "open": o[starts],
            "high": np.maximum.reduceat(h, starts),
            "low": np.minimum.reduceat(lo, starts),
            "close": c[ends],
            "volume": np.add.reduceat(v, starts),
            "known_ns": label + size.value,
            "first": base["first"].to_numpy()[starts] if "first" in base else starts,
            "last": base["last"].to_numpy()[ends] if "last" in base else ends,
        },
        index=index.rename(base.index.name or "timestamp"),
    )
    if "regime" in base:
        out["regime"] = base["regime"].to_numpy()[ends]
    return out

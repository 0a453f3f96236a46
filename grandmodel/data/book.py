"""Order-book snapshots (top of book or N levels) → spread, depth, imbalance and microprice features
aligned to bars by the time they were known (docs/architecture.md, "Time and look-ahead").

A file has ``timestamp`` and per level k = 1..N ``bid_price_k, bid_size_k, ask_price_k, ask_size_k``
(top of book may also be ``bid, bid_size, ask, ask_size``). A bar's features come from the last
snapshot stamped strictly before the bar becomes known (its close); none before: NaN.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from grandmodel.data.loader import _Locator, _normal, _numbers, _timestamps, open_source
from grandmodel.errors import DataError

BOOK_FEATURES = ("spread_pct", "depth", "imbalance", "microprice_pct")
TOP_ALIASES = {
    "bid": "bid_price_1",
    "ask": "ask_price_1",
    "bid_size": "bid_size_1",
    "ask_size": "ask_size_1",
}


def read_book(path: str | Path, *, timezone: str) -> pd.DataFrame:
    """Validated snapshots: ``timestamp`` and ``bid_price_k, bid_size_k, ask_price_k, ask_size_k``."""
    path = Path(path)
    raw, where = open_source(path, "a CSV or Parquet file of book snapshots", "book snapshots")
    names = {_normal(c): c for c in raw.columns}
    names |= {level: names[top] for top, level in TOP_ALIASES.items() if top in names}
    levels = sorted(int(m.group(1)) for n in names if (m := re.fullmatch(r"bid_price_(\d+)", n)))
    if not levels or levels != list(range(1, len(levels) + 1)):
        raise DataError(
            f"{path}: missing column 'bid_price_1' (expected timestamp and bid_price_k, bid_size_k, "
            f"ask_price_k, ask_size_k for levels k = 1..N, or bid, bid_size, ask, ask_size; found: "
            f"{', '.join(map(str, raw.columns))})"
        )
    book = pd.DataFrame({"timestamp": _timestamps(raw, path, where, timezone)})
    for k in levels:
        for side in ("bid", "ask"):
            for part in ("price", "size"):
                name = f"{side}_{part}_{k}"
                if name not in names:
                    raise DataError(
                        f"{path}: missing column '{name}' (level {k} has bid_price_{k})"
                    )
                book[name] = _numbers(raw[names[name]], name, where)
    _check(book, levels, where)
    return book


def _check(book: pd.DataFrame, levels: list[int], where: _Locator) -> None:
    """Finite positive prices, sizes >= 0, an uncrossed book, timestamps in order."""
    for column in book.columns[1:]:
        values = book[column].to_numpy()
        ok = np.isfinite(values) & ((values > 0) if "price" in column else (values >= 0))
        if not ok.all():
            row = int(np.argmin(ok))
            expected = "a price > 0" if "price" in column else "a size >= 0"
            raise DataError(f"{where(row, column)}: {float(values[row])!r}; expected {expected}")
    crossed = (book["bid_price_1"] >= book["ask_price_1"]).to_numpy()
    if crossed.any():
        row = int(np.argmax(crossed))
        raise DataError(
            f"{where(row, 'ask_price_1')}: the book is crossed (bid {book['bid_price_1'].iloc[row]} >= "
            f"ask {book['ask_price_1'].iloc[row]}); expected bid < ask"
        )
    stamps = book["timestamp"].to_numpy()
    back = np.flatnonzero(stamps[1:] < stamps[:-1])
    if back.size:
        row = int(back[0]) + 1
        raise DataError(
            f"{where(row, 'timestamp')}: {book['timestamp'].iloc[row]} is before the snapshot above it"
        )


def book_features(book: pd.DataFrame) -> pd.DataFrame:
    """Per snapshot: ``spread_pct`` (ask - bid) / mid, ``depth`` (all sizes shown), ``imbalance``
    (bid - ask size) / (bid + ask size) over all levels, ``microprice_pct`` the size-weighted
    top-of-book price relative to mid, minus 1."""
    bid, ask = book["bid_price_1"].to_numpy(), book["ask_price_1"].to_numpy()
    bid_size, ask_size = book["bid_size_1"].to_numpy(), book["ask_size_1"].to_numpy()
    levels = [c for c in book.columns if c.startswith("bid_size_")]
    bids = book[levels].to_numpy().sum(axis=1)
    asks = book[[c.replace("bid", "ask") for c in levels]].to_numpy().sum(axis=1)
    mid = (bid + ask) / 2.0
    top = bid_size + ask_size
    micro = np.where(top > 0, (bid * ask_size + ask * bid_size) / np.where(top > 0, top, 1.0), mid)
    total = bids + asks
    return pd.DataFrame(
        {
            "spread_pct": (ask - bid) / mid,
            "depth": total,
            "imbalance": np.where(total > 0, (bids - asks) / np.where(total > 0, total, 1.0), 0.0),
            "microprice_pct": micro / mid - 1.0,
        },
        index=pd.DatetimeIndex(book["timestamp"]).rename("timestamp"),
    )


def align_known(features: pd.DataFrame, known_ns: np.ndarray) -> pd.DataFrame:
    """For each bar (its known time, UTC ns), the row of ``features`` stamped last strictly before it."""
    stamps = pd.DatetimeIndex(features.index).as_unit("ns").asi8
    row = np.searchsorted(stamps, known_ns, side="left") - 1
    values = features.to_numpy(np.float64)[np.clip(row, 0, None)]
    values[row < 0] = np.nan
    return pd.DataFrame(values, columns=features.columns)

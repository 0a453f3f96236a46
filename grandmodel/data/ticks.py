"""Trades (tick data) → base OHLCV bars with a trade count and signed volume, leak-free.

A file of trades has ``timestamp, price, size`` and optionally ``side`` (the aggressor: buy / sell,
b / s, 1 / -1). The bar of minute m (of ``data.timeframes.base``) holds the trades with
m <= time < m + base: stamped at its open, known at its close, like any bar; minutes without trades
have no bar. Signed volume is size x side, or without a side column the tick rule: the sign of the
price change from the previous trade, carried through unchanged prices (earlier trades only).
Every problem is one line naming the file, the row and the column (docs/architecture.md, "Time and
look-ahead").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from grandmodel.data.loader import _Locator, _normal, _numbers, _timestamps, open_source
from grandmodel.errors import DataError

TICK_COLUMNS = ("timestamp", "price", "size")
TICK_ALIASES: dict[str, tuple[str, ...]] = {
    "price": ("price", "trade_price", "px", "last", "close"),
    "size": ("size", "qty", "quantity", "volume", "amount", "shares"),
    "side": ("side", "aggressor", "aggressor_side", "buy_sell", "direction"),
}
SIDES = {"buy": 1, "b": 1, "1": 1, "+1": 1, "1.0": 1, "sell": -1, "s": -1, "-1": -1, "-1.0": -1}
BAR_COLUMNS = ("open", "high", "low", "close", "volume", "trades", "signed_volume")


def read_ticks(path: str | Path, *, timezone: str, on_unsorted: str = "error") -> pd.DataFrame:
    """Validated trades: ``timestamp`` (tz-aware), ``price``, ``size``, ``sign`` (+1 / -1 / 0)."""
    path = Path(path)
    raw, where = open_source(path, "a CSV or Parquet file of trades", "trades")
    normal = {_normal(c): c for c in raw.columns}
    found = {
        name: next((normal[a] for a in aliases if a in normal), None)
        for name, aliases in TICK_ALIASES.items()
    }
    for name in ("price", "size"):
        if found[name] is None:
            raise DataError(
                f"{path}: missing column '{name}' (expected columns {', '.join(TICK_COLUMNS)}[, side]; "
                f"accepted names for {name}: {', '.join(TICK_ALIASES[name])}; found: {', '.join(map(str, raw.columns))})"
            )
    trades = pd.DataFrame({"timestamp": _timestamps(raw, path, where, timezone)})
    trades["price"] = _numbers(raw[found["price"]], "price", where)
    trades["size"] = _numbers(raw[found["size"]], "size", where)
    for name, ok, expected in (
        ("price", np.isfinite(trades["price"]) & (trades["price"] > 0), "a price > 0"),
        ("size", np.isfinite(trades["size"]) & (trades["size"] >= 0), "a size >= 0"),
    ):
        bad = ~ok.to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"{where(row, name)}: {float(trades[name].iloc[row])!r}; expected {expected}"
            )
    trades["sign"] = _sides(raw[found["side"]], where) if found["side"] is not None else 0
    stamps = trades["timestamp"].to_numpy()
    back = np.flatnonzero(stamps[1:] < stamps[:-1])
    if back.size:
        if on_unsorted != "sort":
            row = int(back[0]) + 1
            raise DataError(
                f"{where(row, 'timestamp')}: {trades['timestamp'].iloc[row]} is before the trade above it "
                "(data.on_unsorted=sort orders the trades by time)"
            )
        trades = trades.sort_values("timestamp", kind="stable", ignore_index=True)
    if found["side"] is None:
        trades["sign"] = tick_rule(trades["price"].to_numpy())
    return trades


def _sides(values: pd.Series, where: _Locator) -> np.ndarray:
    text = values.astype(str).str.strip().str.lower()
    signs = text.map(SIDES)
    bad = signs.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(
            f"{where(row, 'side')}: {values.iloc[row]!r} is not a side; expected buy/sell, b/s or 1/-1"
        )
    return signs.to_numpy(np.int64)


def tick_rule(price: np.ndarray) -> np.ndarray:
    """+1 for an uptick, -1 for a downtick, the previous sign for an unchanged price (0 until the
    first change): trade i's sign depends on trades <= i only."""
    change = np.sign(np.diff(price, prepend=price[:1]))
    signs = pd.Series(np.where(change != 0, change, np.nan)).ffill().fillna(0.0)
    return signs.to_numpy(np.int64)


def ticks_to_bars(trades: pd.DataFrame, base: pd.Timedelta) -> pd.DataFrame:
    """Bars of ``base`` from validated trades, indexed by open time, columns :data:`BAR_COLUMNS`.

    Bins are absolute time aligned to the local midnight of the first trade's UTC offset (as in
    ``resample_bars``); a bar depends only on its own trades.
    """
    stamps = pd.DatetimeIndex(trades["timestamp"]).as_unit("ns")
    offset = int(stamps[0].utcoffset().total_seconds() * 1e9) if stamps.tz is not None else 0
    bins = (stamps.asi8 + offset) // base.value
    starts = np.flatnonzero(np.concatenate(([True], bins[1:] != bins[:-1])))
    ends = np.concatenate((starts[1:], [len(bins)])) - 1
    price, size = trades["price"].to_numpy(), trades["size"].to_numpy()
    index = pd.DatetimeIndex(bins[starts] * base.value - offset, tz="UTC")
    index = index.tz_convert(stamps.tz) if stamps.tz is not None else index.tz_localize(None)
    return pd.DataFrame(
        {
            "open": price[starts],
            "high": np.maximum.reduceat(price, starts),
            "low": np.minimum.reduceat(price, starts),
            "close": price[ends],
            "volume": np.add.reduceat(size, starts),
            "trades": ends - starts + 1,
            "signed_volume": np.add.reduceat(size * trades["sign"].to_numpy(), starts),
        },
        index=index.rename("timestamp"),
    )

"""Trades → one-minute bars: equal to a pandas reference, leak-free, one-line errors, and through
the pipeline with ``data.format=ticks``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import grandmodel
from grandmodel.data.ticks import read_ticks, tick_rule, ticks_to_bars
from grandmodel.errors import DataError

MINUTE = pd.Timedelta(minutes=1)


def _trades(n: int = 4000, seed: int = 0, minutes: int = 600, side: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-03-06 08:00", tz="America/Chicago")
    offsets = np.sort(rng.integers(0, minutes * 60_000, n))  # ms, with gaps and shared stamps
    stamps = start + pd.to_timedelta(offsets, unit="ms")
    price = np.round((4000 + np.cumsum(rng.choice([-0.25, 0, 0.25], n))) * 4) / 4
    frame = pd.DataFrame(
        {"timestamp": stamps, "price": price, "size": rng.integers(1, 20, n).astype(float)}
    )
    if side:
        frame["side"] = rng.choice(["buy", "sell"], n)
    return frame


def _write(frame: pd.DataFrame, path: Path) -> Path:
    out = frame.copy()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    out.to_csv(path, index=False)
    return path


def _reference(trades: pd.DataFrame, signs: np.ndarray) -> pd.DataFrame:
    frame = trades.set_index("timestamp").assign(signed=trades["size"].to_numpy() * signs)
    grouped = frame.resample("1min", closed="left", label="left")
    out = pd.DataFrame(
        {
            "open": grouped["price"].first(),
            "high": grouped["price"].max(),
            "low": grouped["price"].min(),
            "close": grouped["price"].last(),
            "volume": grouped["size"].sum(),
            "trades": grouped["price"].count(),
            "signed_volume": grouped["signed"].sum(),
        }
    )
    out = out[out["trades"] > 0]
    out.index = out.index.as_unit("ns")
    return out


def test_bars_equal_a_pandas_reference(tmp_path: Path) -> None:
    trades = _trades()
    read = read_ticks(_write(trades, tmp_path / "t.csv"), timezone="America/Chicago")
    bars = ticks_to_bars(read, MINUTE)
    signs = np.where(trades["side"] == "buy", 1, -1)
    expected = _reference(trades, signs)
    pd.testing.assert_frame_equal(bars, expected, check_dtype=False, check_freq=False)


def test_the_tick_rule_signs_by_the_last_price_change() -> None:
    assert tick_rule(np.array([10.0, 10.0, 10.5, 10.5, 10.25, 10.25, 10.5])).tolist() == [
        0,
        0,
        1,
        1,
        -1,
        -1,
        1,
    ]


def test_bars_up_to_t_ignore_every_later_trade(tmp_path: Path) -> None:
    """Perturb every trade after T: every bar that opened before T is unchanged (tick rule too)."""
    trades = _trades(side=False)
    cut = trades["timestamp"].iloc[len(trades) // 2].floor("min")
    changed = trades.copy()
    later = changed["timestamp"] >= cut
    rng = np.random.default_rng(1)
    changed.loc[later, "price"] *= rng.uniform(0.9, 1.1, later.sum())
    changed.loc[later, "size"] *= 7
    a = ticks_to_bars(
        read_ticks(_write(trades, tmp_path / "a.csv"), timezone="America/Chicago"), MINUTE
    )
    b = ticks_to_bars(
        read_ticks(_write(changed, tmp_path / "b.csv"), timezone="America/Chicago"), MINUTE
    )
    pd.testing.assert_frame_equal(a[a.index < cut], b[b.index < cut])
    assert not a[a.index >= cut].equals(b[b.index >= cut])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(columns="price"), r"missing column 'price'"),
        (
            lambda f: f.assign(size=f["size"].where(f.index != 5, -3.0)),
            r"line 7, column 'size': -3\.0; expected a size >= 0",
        ),
        (
            lambda f: f.assign(price=f["price"].where(f.index != 2, 0.0)),
            r"line 4, column 'price': 0\.0; expected a price > 0",
        ),
        (
            lambda f: f.assign(side=f["side"].where(f.index != 9, "maybe")),
            r"line 11, column 'side': 'maybe' is not a side",
        ),
        (
            lambda f: f.iloc[[0, 2, 1, *range(3, len(f))]],
            r"line 4, column 'timestamp': .* is before the trade above it",
        ),
    ],
)
def test_bad_trades_fail_with_one_line(tmp_path: Path, edit, message: str) -> None:
    path = _write(edit(_trades(n=50)).reset_index(drop=True), tmp_path / "bad.csv")
    with pytest.raises(DataError, match=message) as info:
        read_ticks(path, timezone="America/Chicago")
    assert "\n" not in str(info.value)


def test_the_pipeline_reads_trades(tmp_path: Path) -> None:
    trades = _trades(n=30_000, minutes=3 * 1380, side=False)
    path = _write(trades, tmp_path / "trades.csv")
    overrides = [
        "data=csv",
        f"data.path={path}",
        "data.format=ticks",
        "data.timeframes.tactical=1min",
        "data.timeframes.strategic=5min",
        "data.window.strategic=4",
        "data.window.tactical=8",
        "data.episode_length=16",
        "data.cache=false",
        f"paths.outputs_dir={tmp_path}",
    ]
    data = grandmodel.prepare_data(grandmodel.load_config(overrides))
    bars = ticks_to_bars(read_ticks(path, timezone="America/Chicago"), MINUTE)
    assert len(data.base) == len(bars)
    np.testing.assert_array_equal(data.base.close.numpy(), bars["close"].to_numpy())
    # the trade counts reach the observations when listed (5-minute sums of the minute bars)
    listed = ["data.features.strategic=[log_return,trade_count,signed_volume_ratio]"]
    data = grandmodel.prepare_data(
        grandmodel.load_config([*overrides, *listed, "data.normalize=false"])
    )
    five = bars.resample("5min", closed="left", label="left").sum()
    five = five[five["trades"] > 0]
    rows = slice(data.strategic.warmup, None)
    np.testing.assert_allclose(
        data.strategic.features[rows, 1].numpy(), five["trades"].to_numpy()[rows]
    )
    ratio = five["signed_volume"] / five["volume"]
    np.testing.assert_allclose(
        data.strategic.features[rows, 2].numpy(), ratio.to_numpy()[rows], rtol=1e-6
    )

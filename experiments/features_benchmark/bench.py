"""Whole data pipeline on 1,000,000 one-minute bars vs TA-Lib computing the same indicators.

    .venv/bin/python experiments/features_benchmark/bench.py [--bars 1000000] [--repeat 5]

Prints one table (median seconds of ``--repeat`` runs). The pipeline rows start from validated bars
in memory (file parsing is reported on its own row) and end with ``MarketData`` tensors.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import talib
import torch

import grandmodel
from grandmodel.config import validate
from grandmodel.data.features import compute_features
from grandmodel.data.loader import read_ohlcv
from grandmodel.data.pipeline import Tables, assemble, build_tables
from grandmodel.data.resample import resample_bars
from grandmodel.data.synthetic import generate
from grandmodel.data.synthetic.calendar import BARS_PER_SESSION
from grandmodel.data.timeframes import bar_sizes


def talib_indicators(bars: pd.DataFrame) -> None:
    """The indicators our feature table holds, computed by TA-Lib on ``bars``."""
    h, lo, c, v = (bars[n].to_numpy() for n in ("high", "low", "close", "volume"))
    talib.RSI(c, 14)
    talib.MACD(c, 12, 26, 9)
    talib.ATR(h, lo, c, 14)
    talib.BBANDS(c, 20, 2.0, 2.0, 0)
    talib.SMA(v, 20)
    talib.EMA(c, 20)
    talib.EMA(c, 50)
    talib.STDDEV(np.diff(np.log(c), prepend=np.nan), 10)
    talib.STDDEV(np.diff(np.log(c), prepend=np.nan), 50)


def median_time(func: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    days = -(-args.bars // BARS_PER_SESSION)
    cfg = grandmodel.load_config([f"data.synthetic.days={days}", "data.cache=false"])
    data_cfg = validate(cfg).data
    base = generate(data_cfg.synthetic).iloc[: args.bars]
    base.index = base.index.as_unit("ns")
    size = bar_sizes(data_cfg)

    frames = build_tables(base, size)
    resampled = {
        n: frames[n][["open", "high", "low", "close", "volume"]] for n in ("tactical", "strategic")
    }
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "bars.csv"
        base.reset_index().to_csv(csv, index=False)
        parse = median_time(
            lambda: read_ohlcv(csv, timezone="America/Chicago"), max(1, args.repeat // 2)
        )

    rows = [
        (
            "ours: resample 1min -> 5min -> 30min",
            median_time(
                lambda: resample_bars(
                    resample_bars(base, size["tactical"], size["base"]),
                    size["strategic"],
                    size["tactical"],
                ),
                args.repeat,
            ),
        ),
        (
            "ours: features on 5min + 30min bars",
            median_time(lambda: [compute_features(b) for b in resampled.values()], args.repeat),
        ),
        (
            "ours: align, split, normalise, tensors",
            median_time(
                lambda: assemble(Tables(frames, {"source": "bench"}), data_cfg), args.repeat
            ),
        ),
        (
            "ours: whole pipeline (bars -> MarketData)",
            median_time(
                lambda: assemble(Tables(build_tables(base, size), {"source": "bench"}), data_cfg),
                args.repeat,
            ),
        ),
        (
            "TA-Lib: same indicators on the 1M 1-min bars",
            median_time(lambda: talib_indicators(base), args.repeat),
        ),
        (
            "TA-Lib: same indicators on the 5min + 30min bars",
            median_time(lambda: [talib_indicators(b) for b in resampled.values()], args.repeat),
        ),
        ("reference: CSV parse + validation (read_ohlcv)", parse),
    ]
    pipeline, talib_base = rows[3][1], rows[4][1]
    print(
        f"\n{len(base):,} one-minute bars ({days} trading days); median of {args.repeat} runs; torch threads 2\n"
    )
    print(f"| {'step':<50} | {'seconds':>8} |")
    print(f"|{'-' * 52}|{'-' * 10}|")
    for name, seconds in rows:
        print(f"| {name:<50} | {seconds:>8.3f} |")
    print(f"\nwhole pipeline / TA-Lib on the 1-min bars: {pipeline / talib_base:.2f}x (goal <= 3x)")


if __name__ == "__main__":
    main()

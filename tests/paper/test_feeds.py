"""Feeds: a replay paced at a multiple of real time; a tail feed refuses bars out of order."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from grandmodel.deploy.paper.feeds import ReplayFeed, TailFeed
from grandmodel.errors import GrandModelError

HEADER = "timestamp,open,high,low,close,volume\n"


def _row(minute: int) -> str:
    return f"2023-01-03 09:{minute:02d}:00,4000,4001,3999,4000.5,10\n"


def test_replay_at_600x_takes_a_tenth_of_a_second_per_minute(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(HEADER + "".join(_row(m) for m in range(11)))
    began = time.monotonic()
    bars = list(ReplayFeed(str(path), "America/Chicago", "1min", "600x").bars())
    elapsed = time.monotonic() - began
    assert len(bars) == 11 and 0.95 <= elapsed < 5.0  # 10 minutes of bars / 600
    began = time.monotonic()
    assert len(list(ReplayFeed(str(path), "America/Chicago", "1min", "max").bars())) == 11
    assert time.monotonic() - began < 0.5


def test_tail_refuses_a_bar_out_of_order(tmp_path: Path) -> None:
    path = tmp_path / "live.csv"
    path.write_text(HEADER + _row(5))
    feed = TailFeed(str(path), "America/Chicago", "1min", 0.01, tmp_path / "scratch.csv")
    bars = feed.bars()
    assert next(bars).open_ns > 0
    assert next(bars) is None  # nothing new yet
    with path.open("a") as out:
        out.write(_row(4))
    with pytest.raises(GrandModelError, match="not after the previous one"):
        next(bars)

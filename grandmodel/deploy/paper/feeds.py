"""Bar feeds: :class:`ReplayFeed` (a finished file at a chosen speed) and :class:`TailFeed` (a CSV
another process appends bars to). Both read through the data loader, so a bar the training data
would refuse is refused here with the same message."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from grandmodel.data.loader import read_ohlcv
from grandmodel.deploy.paper.features import Bar
from grandmodel.errors import GrandModelError


class Feed(Protocol):
    """Base bars in time order; ``None`` when no bar came within the poll (live feeds only)."""

    def bars(self, skip: int = 0) -> Iterator[Bar | None]: ...


def _bars(frame: pd.DataFrame) -> Iterator[Bar]:
    """The frame's rows as bars, made one at a time (no list of objects for the collector to scan)."""
    ns = frame.index.as_unit("ns").asi8
    cols = [frame[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume")]
    for i in range(len(frame)):
        yield Bar(int(ns[i]), *(float(c[i]) for c in cols))


class ReplayFeed:
    """Every bar of a CSV or Parquet file; ``speed`` ``max`` (no waiting) or ``<n>x`` real time."""

    def __init__(self, path: str, timezone: str, base: str, speed: str = "max") -> None:
        self.frame, _ = read_ohlcv(path, timezone=timezone, base=base)
        self.factor = None if speed == "max" else float(speed[:-1])
        self.utc_offset_ns = int(self.frame.index[0].utcoffset().total_seconds() * 1e9)

    def bars(self, skip: int = 0) -> Iterator[Bar | None]:
        stamps = self.frame.index.as_unit("ns").asi8
        start, first = time.monotonic(), int(stamps[min(skip, len(stamps) - 1)])
        for i, bar in enumerate(_bars(self.frame)):
            if self.factor and i >= skip:
                wait = start + (bar.open_ns - first) / 1e9 / self.factor - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            yield bar


class TailFeed:
    """Follows a growing CSV: complete lines (ending in a newline) become bars as they arrive."""

    def __init__(self, path: str, timezone: str, base: str, poll_seconds: float, scratch: Path):
        self.path, self.tz, self.base, self.poll = Path(path), timezone, base, poll_seconds
        self.scratch = scratch
        if not self.path.is_file():
            raise GrandModelError(f"feed.path={path}: file not found; expected a CSV with a header")
        self.header = self.path.open().readline()
        if not self.header.endswith("\n"):
            raise GrandModelError(f"feed.path={path}: no complete header line; expected one")
        first = (
            list(self._parse(self._lines_from(len(self.header))[0][:1])) if self._has_rows() else []
        )
        self.utc_offset_ns = (
            int(
                pd.Timestamp(first[0].open_ns, tz="UTC")
                .tz_convert(timezone)
                .utcoffset()
                .total_seconds()
                * 1e9
            )
            if first
            else None
        )

    def _has_rows(self) -> bool:
        return bool(self._lines_from(len(self.header))[0])

    def _lines_from(self, offset: int) -> tuple[list[str], int]:
        with self.path.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
        end = chunk.rfind(b"\n") + 1
        lines = [x for x in chunk[:end].decode().splitlines() if x.strip()]
        return lines, offset + end

    def _parse(self, lines: list[str]) -> Iterator[Bar]:
        self.scratch.parent.mkdir(parents=True, exist_ok=True)
        self.scratch.write_text(self.header + "\n".join(lines) + "\n")
        frame, _ = read_ohlcv(self.scratch, timezone=self.tz, base=self.base)
        return _bars(frame)

    def bars(self, skip: int = 0) -> Iterator[Bar | None]:
        offset, last = len(self.header.encode()), None
        while True:
            lines, offset = self._lines_from(offset)
            if not lines:
                yield None
                time.sleep(self.poll)
                continue
            for bar in list(self._parse(lines)):
                if last is not None and bar.open_ns <= last:
                    raise GrandModelError(
                        f"feed.path={self.path}: bar at {pd.Timestamp(bar.open_ns, tz='UTC')} is not "
                        "after the previous one; expected bars appended in time order"
                    )
                last = bar.open_ns
                yield bar

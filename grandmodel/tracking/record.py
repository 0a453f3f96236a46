"""The local record of a run: every tracking call, appended to ``<run>/tracking/record.jsonl``.

It is written before the store is tried, so a run keeps its full record whatever happens to the
tracking server, and it is what is replayed into the store when the server answers again (or by
``python -m grandmodel.tracking sync run=<run folder>``). ``synced`` holds how many lines the store
has taken; the run's MLflow id is kept in ``<run>/mlflow_run_id`` once the store has created it.

Operations (one JSON object a line): ``start`` (experiment, run name, tags, parent, store URI),
``params``, ``metrics`` (with step and timestamp, so a replay writes the same points), ``tags``,
``artifact`` (a file of the run folder), ``status`` (RUNNING, FINISHED, FAILED, KILLED).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RUN_ID_FILE = "mlflow_run_id"


class LocalRecord:
    """Append-only JSON-lines record of one run folder, with a replay offset (in bytes)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.folder = self.run_dir / "tracking"
        self.path = self.folder / "record.jsonl"
        self._offset_path = self.folder / "synced"

    def append(self, op: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(op, default=_plain) + "\n")

    def ops(self, start: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(byte offset after the line, op)`` from byte ``start`` on; a torn last line (a killed
        writer) is skipped."""
        if not self.path.is_file():
            return
        with self.path.open("rb") as handle:
            handle.seek(start)
            for line in handle:
                start += len(line)
                if not line.endswith(b"\n"):
                    return
                try:
                    yield start, json.loads(line)
                except json.JSONDecodeError:
                    continue

    def metrics(self) -> list[dict[str, Any]]:
        """Every metric point recorded: ``{"key", "value", "step", "timestamp"}``."""
        points = []
        for _, op in self.ops():
            if op["op"] == "metrics":
                points += [
                    {"key": k, "value": v, "step": op["step"], "timestamp": op["timestamp"]}
                    for k, v in op["metrics"].items()
                ]
        return points

    @property
    def synced(self) -> int:
        try:
            return int(self._offset_path.read_text())
        except (OSError, ValueError):
            return 0

    @synced.setter
    def synced(self, lines: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self._offset_path.with_suffix(".tmp")
        tmp.write_text(str(lines))
        os.replace(tmp, self._offset_path)

    @property
    def run_id(self) -> str | None:
        marker = self.run_dir / RUN_ID_FILE
        return marker.read_text().strip() or None if marker.is_file() else None

    @run_id.setter
    def run_id(self, run_id: str) -> None:
        (self.run_dir / RUN_ID_FILE).write_text(run_id)

    def start_op(self) -> dict[str, Any] | None:
        """The first ``start`` op (how to create the run in the store), if any."""
        return next((op for _, op in self.ops() if op["op"] == "start"), None)


def _plain(value: Any) -> Any:
    """JSON for numpy/torch scalars and paths."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)

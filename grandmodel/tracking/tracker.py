"""``Tracker``: the tracking of one run, resilient to its store.

Every call is first appended to the run folder's local record, then replayed into the MLflow store
(when ``logger.kind=mlflow``). A store failure after start-up (server gone, connection refused,
SQLite locked) becomes one warning naming the store; the run goes on, the record keeps every metric,
and the next call after ``logger.retry_seconds`` tries the store again and replays what it missed.
A run resumed in the same folder reopens the same MLflow run (RUNNING again, then FINISHED).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from grandmodel.tracking.record import LocalRecord
from grandmodel.tracking.store import StoreUnavailable, connect, describe, now_ms, replay


class Tracker:
    """One run's tracking: ``log_metrics``/``log_params``/``set_tags``/``log_artifact``/``finish``."""

    def __init__(
        self,
        run_dir: str | Path,
        uri: str | None,
        *,
        timeout: float = 5.0,
        retry_seconds: float = 10.0,
        quiet: bool = False,
    ) -> None:
        self.record = LocalRecord(run_dir)
        self.uri, self.timeout, self.retry_seconds = uri, timeout, retry_seconds
        self.quiet = quiet
        self._client: Any = None
        self._next_try = 0.0
        self.problem: str | None = None  # the last store failure, once warned

    # ---- opening
    @classmethod
    def open(
        cls,
        logger: Any,
        run_dir: str | Path,
        *,
        name: str,
        tags: dict[str, Any],
        params: dict[str, Any] | None = None,
        parent_run_id: str | None = None,
    ) -> Tracker:
        """Start (or, when ``run_dir`` already has a record, resume) the run of ``run_dir``.

        ``logger`` is the ``logger`` config node (``kind``, ``tracking_uri``, ``experiment_name``,
        ``artifact_location``, ``connect_timeout``, ``retry_seconds``).
        """
        uri = str(logger.tracking_uri) if logger.kind == "mlflow" else None
        tracker = cls(
            run_dir,
            uri,
            timeout=float(logger.connect_timeout),
            retry_seconds=float(logger.retry_seconds),
        )
        if tracker.record.start_op() is None:
            tracker.record.append(
                {
                    "op": "start",
                    "experiment": str(logger.experiment_name),
                    "artifact_location": tracker._artifact_location(logger),
                    "name": name,
                    "tags": {k: str(v) for k, v in tags.items()},
                    "parent": parent_run_id,
                    "uri": uri,
                }
            )
        else:  # resumed in the same folder: the same run, running again
            tracker.set_tags({k: str(v) for k, v in tags.items() if k == "git_commit"})
            tracker.record.append({"op": "status", "status": "RUNNING", "timestamp": now_ms()})
        if params:
            tracker.record.append({"op": "params", "params": params})
        tracker.flush(force=True)
        return tracker

    @staticmethod
    def _artifact_location(logger: Any) -> str | None:
        if logger.kind != "mlflow" or logger.artifact_location:
            return logger.artifact_location if logger.kind == "mlflow" else None
        uri = str(logger.tracking_uri)
        if uri.startswith("sqlite:///"):  # artifacts beside the database, not in the working dir
            folder = (
                Path(uri[len("sqlite:///") :]).parent / "mlartifacts" / str(logger.experiment_name)
            )
            return folder.resolve().as_uri()
        return None

    # ---- what runs call
    @property
    def run_id(self) -> str | None:
        return self.record.run_id

    @property
    def online(self) -> bool:
        return self.uri is not None and self.problem is None

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        values = {k: float(v) for k, v in metrics.items()}
        self.record.append(
            {"op": "metrics", "metrics": values, "step": int(step), "timestamp": now_ms()}
        )
        self.flush()

    def log_params(self, params: dict[str, Any]) -> None:
        self.record.append({"op": "params", "params": params})
        self.flush()

    def set_tags(self, tags: dict[str, Any]) -> None:
        self.record.append({"op": "tags", "tags": {k: str(v) for k, v in tags.items()}})
        self.flush()

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        if Path(path).exists():
            self.record.append(
                {"op": "artifact", "path": str(Path(path).resolve()), "folder": folder}
            )
            self.flush()

    def log_dataset(self, dataset: dict[str, Any]) -> None:
        """The data set as an MLflow dataset input (``name``, ``digest``, ``source``, ``profile``)."""
        self.record.append({"op": "input", "dataset": dataset})
        self.flush()

    def finish(self, status: str = "FINISHED") -> None:
        """End the run (``FINISHED``, ``FAILED`` or ``KILLED``) and push what is pending."""
        self.record.append({"op": "status", "status": status, "timestamp": now_ms()})
        self.flush(force=True)

    # ---- the store
    def flush(self, force: bool = False) -> bool:
        """Replay the record's pending lines into the store; True when nothing is left pending."""
        if self.uri is None:
            return False
        if self.problem is not None and not force and time.monotonic() < self._next_try:
            return False
        try:
            if self._client is None:
                self._client = connect(self.uri, self.timeout)
            replay(self.record, self._client)
        except StoreUnavailable as exc:
            self._failed(str(exc))
            return False
        except Exception as exc:  # any store failure mid-run: keep the record, retry later
            self._client = None
            self._failed(describe(self.uri, exc))
            return False
        if self.problem is not None and not self.quiet:
            print(
                f"warning: {self.uri} answers again; the local record was replayed into it",
                file=sys.stderr,
            )
        self.problem = None
        return True

    def _failed(self, message: str) -> None:
        self._next_try = time.monotonic() + self.retry_seconds
        if self.problem is None and not self.quiet:
            print(
                f"warning: {message}; training goes on and every metric is kept in {self.record.path} "
                f"(replayed when the store answers, or by: python -m grandmodel.tracking sync run={self.record.run_dir})",
                file=sys.stderr,
            )
        self.problem = message

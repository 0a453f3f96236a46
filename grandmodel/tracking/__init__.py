"""The tracking seam: the only package that imports mlflow (see docs/architecture.md, "Tracking").

- :class:`Tracker` — one run (training, sweep parent, evaluation, backtest, export): params,
  metrics, tags, artifacts, status; every call kept in the run folder's local record and replayed
  into the store, so a store outage never stops a run (``python -m grandmodel.tracking sync``).
- :func:`lightning_loggers` — the Lightning loggers of a training run (tracker, TensorBoard, CSV);
  imported on first use: the tools that only track (evaluate, backtest, export) do not need
  Lightning's logger classes (about 1 s of imports on 2 cores).
- queries: :func:`locate_run`, :func:`count_training_runs`, :func:`sibling_values`,
  :func:`training_runs_table`, and :func:`record_child_run` for one-shot child runs.
"""

from typing import Any

from grandmodel.tracking.identity import flatten, git_commit, run_name
from grandmodel.tracking.queries import (
    RunFiles,
    count_training_runs,
    finished_trial,
    is_run_id,
    locate_run,
    record_child_run,
    sibling_values,
    training_runs_table,
)
from grandmodel.tracking.record import RUN_ID_FILE, LocalRecord
from grandmodel.tracking.tracker import Tracker

__all__ = [
    "RUN_ID_FILE",
    "LocalRecord",
    "RunFiles",
    "Tracker",
    "count_training_runs",
    "finished_trial",
    "flatten",
    "git_commit",
    "is_run_id",
    "lightning_loggers",
    "locate_run",
    "record_child_run",
    "run_name",
    "sibling_values",
    "training_runs_table",
]


def __getattr__(name: str) -> Any:
    if name == "lightning_loggers":
        from grandmodel.tracking.loggers import lightning_loggers

        return lightning_loggers
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

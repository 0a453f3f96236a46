"""Reading the tracking store: find a run's files, count configurations tried, sibling trials'
histories (pruning), finished training runs as a table (Pareto fronts); and child runs
(evaluation, backtest, failed trials) recorded in one call."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grandmodel.errors import GrandModelError
from grandmodel.tracking.store import StoreUnavailable, connect
from grandmodel.tracking.tracker import Tracker

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def is_run_id(text: str) -> bool:
    return bool(RUN_ID.match(text))


@dataclass
class RunFiles:
    """Where a tracked run's files are: its output folder if it still exists, else a checkpoint
    downloaded from its artifacts."""

    run_id: str
    output_dir: Path | None
    checkpoint: Path | None


def locate_run(uri: str, run_id: str, timeout: float = 5.0) -> RunFiles:
    """The files of MLflow run ``run_id`` in the store at ``uri``."""
    from mlflow.exceptions import MlflowException

    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        raise GrandModelError(  # a lookup never creates an empty store
            f"run={run_id}: {uri} does not exist; expected the tracking store the run was logged to"
        )
    try:
        client = connect(uri, timeout)
        run = client.get_run(run_id)
    except StoreUnavailable as exc:
        raise GrandModelError(f"run={run_id}: {exc}; expected a reachable tracking store") from None
    except MlflowException:
        raise GrandModelError(
            f"run={run_id}: no such MLflow run in {uri}; expected a run id of that store"
        ) from None
    folder = Path(run.data.tags.get("output_dir", ""))
    if folder.is_dir() and (folder / "checkpoints").is_dir():
        return RunFiles(run_id, folder, None)
    names = sorted(a.path for a in client.list_artifacts(run_id, "checkpoints"))
    if not names:
        raise GrandModelError(
            f"run={run_id}: the run has no checkpoint artifact and its output folder {folder} is gone; "
            "expected a run that logged its checkpoints"
        )
    local = client.download_artifacts(run_id, names[-1], tempfile.mkdtemp(prefix="grandmodel-"))
    return RunFiles(run_id, None, Path(local))


def count_training_runs(logger: Any, run_id: str | None) -> int:
    """Training runs in ``run_id``'s experiment (the configurations tried); 1 when unknown."""
    if not run_id or logger.kind != "mlflow":
        return 1
    try:
        client = connect(str(logger.tracking_uri), float(logger.connect_timeout))
        experiment = client.get_run(run_id).info.experiment_id
        runs = client.search_runs(
            [experiment], filter_string="tags.kind = 'training'", max_results=10_000
        )
        return max(len(runs), 1)
    except Exception:  # the count is a convenience: an unreachable store means "unknown"
        return 1


def record_child_run(
    logger: Any,
    parent_run_id: str | None,
    kind: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    files: Sequence[Path],
    tags: dict[str, str] | None = None,
    run_dir: str | Path | None = None,
) -> str | None:
    """A finished ``kind`` run (evaluation, backtest, export, …) with params, metrics and files,
    nested under ``parent_run_id`` when given, and kept in the local record of ``run_dir``
    (default: the folder of the first file). Returns the MLflow run id, or None when there is no
    store (or it did not answer: the warning says so and ``tracking sync`` replays it later)."""
    folder = Path(run_dir or (Path(files[0]).parent if files else tempfile.mkdtemp()))
    tracker = Tracker.open(
        logger,
        folder,
        name=f"{kind}-{folder.name}",
        tags={"kind": kind, **(tags or {})},
        params={k: str(v)[:500] for k, v in params.items()},
        parent_run_id=parent_run_id,
    )
    tracker.log_metrics(metrics)
    for path in files:
        tracker.log_artifact(path)
    tracker.finish("FINISHED")
    return tracker.run_id if tracker.online else None


def sibling_values(
    uri: str, run_id: str, parent_run_id: str, metric: str, frames: int
) -> list[float]:
    """Each FINISHED sibling trial's ``metric`` at its last evaluation at or before ``frames``.

    An unreachable store gives no siblings (the trial runs on unpruned)."""
    try:
        client = connect(uri)
        experiment = client.get_run(run_id).info.experiment_id
        runs = client.search_runs(
            [experiment],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'FINISHED'",
        )
        values = []
        for run in runs:
            history = [
                m for m in client.get_metric_history(run.info.run_id, metric) if m.step <= frames
            ]
            if history:
                values.append(max(history, key=lambda m: m.step).value)
        return values
    except Exception:
        return []


def training_runs_table(
    uri: str, experiment_name: str, metrics: Sequence[str], parent_run_id: str | None = None
) -> pd.DataFrame:
    """One row per finished training run of the experiment (optionally one sweep's children):
    run id, name, its parameters that differ between runs, and the latest value of each metric."""
    try:
        client = connect(uri)
    except StoreUnavailable as exc:
        raise GrandModelError(f"logger.tracking_uri: {exc}; expected a reachable store") from None
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return pd.DataFrame()
    query = "tags.kind = 'training' and attributes.status = 'FINISHED'"
    if parent_run_id:
        query += f" and tags.mlflow.parentRunId = '{parent_run_id}'"
    runs = client.search_runs([experiment.experiment_id], filter_string=query, max_results=10_000)
    rows = []
    for run in runs:
        row = {"run_id": run.info.run_id, "run_name": run.info.run_name}
        row.update({m: run.data.metrics.get(m, np.nan) for m in metrics})
        row.update({f"param:{k}": v for k, v in run.data.params.items()})
        rows.append(row)
    table = pd.DataFrame(rows)
    varying = [
        c for c in table.columns
        if c.startswith("param:") and not c.startswith(("param:paths.", "param:hydra.")) and table[c].nunique(dropna=False) > 1
    ]  # fmt: skip
    return table[["run_id", "run_name", *metrics, *varying]] if len(table) else table


def finished_trial(
    logger: Any, run_dir: str | Path, overrides: str, n_values: int
) -> list[float] | None:
    """The objective values of the sweep trial whose folder is ``run_dir``, when its tracked run is
    FINISHED with the same ``overrides`` (tag ``sweep.overrides``); None when it must run (again)."""
    from grandmodel.tracking.record import LocalRecord

    run_id = LocalRecord(run_dir).run_id
    if not run_id or logger.kind != "mlflow":
        return None
    try:
        run = connect(str(logger.tracking_uri), float(logger.connect_timeout)).get_run(run_id)
    except Exception:  # no store, no proof: the trial runs again
        return None
    if run.info.status != "FINISHED" or run.data.tags.get("sweep.overrides") != overrides:
        return None
    keys = (
        [f"sweep/objective/{i}" for i in range(n_values)] if n_values > 1 else ["sweep/objective"]
    )
    values = [run.data.metrics.get(k) for k in keys]
    return None if any(v is None for v in values) else [float(v) for v in values]

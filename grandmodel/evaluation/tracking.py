"""Evaluation and backtest runs in MLflow, nested under the training run they evaluate."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from grandmodel.evaluation.runs import TrainedRun
from grandmodel.training.tracking import git_commit


def count_trials(run: TrainedRun, logger: DictConfig) -> int:
    """Training runs in the run's MLflow experiment (configurations tried); 1 when unknown."""
    if not run.run_id or logger.kind != "mlflow":
        return 1
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(str(logger.tracking_uri))
        experiment = client.get_run(run.run_id).info.experiment_id
        runs = client.search_runs(
            [experiment], filter_string="tags.kind = 'training'", max_results=10_000
        )
        return max(len(runs), 1)
    except Exception:  # the count is a convenience: an unreachable store means "unknown"
        return 1


def log_run(
    logger: DictConfig,
    trained: TrainedRun,
    kind: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    files: list[Path],
) -> str | None:
    """A ``kind`` run (evaluation / backtest) with params, metrics and files; nested under the
    training run when it has one. Returns the run id, or None (with a warning) without a store."""
    if logger.kind != "mlflow":
        return None
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(str(logger.tracking_uri))
        if trained.run_id:
            experiment_id = client.get_run(trained.run_id).info.experiment_id
        else:
            found = client.get_experiment_by_name(str(logger.experiment_name))
            experiment_id = (
                found.experiment_id
                if found
                else client.create_experiment(str(logger.experiment_name))
            )
        tags = {
            "kind": kind,
            "git_commit": git_commit(),
            "checkpoint": str(trained.checkpoint_path),
            "mlflow.runName": f"{kind}-{Path(files[0]).parent.name}" if files else kind,
        }
        if trained.run_id:
            tags["mlflow.parentRunId"] = trained.run_id
        run = client.create_run(experiment_id, tags=tags)
        for key, value in params.items():
            client.log_param(run.info.run_id, key, str(value)[:500])
        for key, value in metrics.items():
            if value == value:  # MLflow stores NaN poorly in some backends; skip undefined metrics
                client.log_metric(run.info.run_id, key, float(value))
        for path in files:
            client.log_artifact(run.info.run_id, str(path))
        client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id
    except Exception as exc:  # results are on disk either way
        warnings.warn(
            f"could not record the {kind} in MLflow ({str(exc).splitlines()[0][:200]})",
            stacklevel=2,
        )
        return None

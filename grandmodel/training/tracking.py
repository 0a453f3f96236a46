"""MLflow tracking (DESIGN.md §8), with a local CSV record when the store cannot be reached."""

from __future__ import annotations

import os
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger, Logger, MLFlowLogger

from grandmodel.config.root import PROJECT_ROOT


@dataclass
class Tracking:
    """The Lightning logger of a run, and the MLflow client/run behind it when there is one."""

    logger: Logger
    run_id: str | None = None
    client: Any = None
    uri: str | None = None
    problems: list[str] = field(default_factory=list)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        if self.client is not None and Path(path).exists():
            self.client.log_artifact(self.run_id, str(path), folder)

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        if self.client is not None:
            for key, value in metrics.items():
                self.client.log_metric(self.run_id, key, float(value), step=step)
        else:
            self.logger.log_metrics(metrics, step)

    def set_tags(self, tags: dict[str, Any]) -> None:
        if self.client is not None:
            for key, value in tags.items():
                self.client.set_tag(self.run_id, key, str(value))

    def finish(self, status: str) -> None:
        """``FINISHED`` or ``FAILED`` (the logger may already have closed the run)."""
        if self.client is not None:
            self.client.set_terminated(self.run_id, status)


def flatten(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as ``{"a.b.c": value}`` (lists as their text) for run parameters."""
    tree = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            out[prefix[:-1]] = node if not isinstance(node, list) else str(node)

    walk(tree, "")
    return out


def git_commit() -> str:
    """HEAD of the project checkout (``-dirty`` when it has uncommitted changes), or ``unknown``."""
    try:
        head = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def start_tracking(
    cfg: DictConfig, output_dir: Path, tags: dict[str, Any], parent_run_id: str | None = None
) -> Tracking:
    """An MLflow run with the flattened config as params, or a CSV record if MLflow is unreachable."""
    log = cfg.logger
    if log.kind == "csv":
        return Tracking(CSVLogger(str(output_dir), name="metrics", version=""))
    uri = str(log.tracking_uri)
    try:
        client = _client(uri, float(log.connect_timeout))
        experiment = client.get_experiment_by_name(str(log.experiment_name))
        if experiment is None:
            location = (
                log.artifact_location
                or (Path(cfg.paths.outputs_dir) / "mlartifacts" / str(log.experiment_name))
                .resolve()
                .as_uri()
            )
            experiment_id = client.create_experiment(
                str(log.experiment_name), artifact_location=str(location)
            )
        else:
            experiment_id = experiment.experiment_id
        run_tags = {k: str(v) for k, v in tags.items()}
        if parent_run_id:
            run_tags["mlflow.parentRunId"] = parent_run_id
        run_tags["mlflow.runName"] = str(log.run_name or _run_name(output_dir, parent_run_id))
        run = client.create_run(experiment_id, tags=run_tags)
        logger = MLFlowLogger(tracking_uri=uri, run_id=run.info.run_id, log_model=False)
        logger.log_hyperparams(flatten(cfg))
        return Tracking(logger, run.info.run_id, client, uri)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        message = f"MLflow tracking store {uri} cannot be used ({first}); keeping a local record in {output_dir}/metrics"
        warnings.warn(message, stacklevel=2)
        return Tracking(CSVLogger(str(output_dir), name="metrics", version=""), problems=[message])


def _run_name(output_dir: Path, parent_run_id: str | None) -> str:
    """The run folder's name (``trial-<n>`` under a sweep): MLflow's random names repeat when
    Python's RNG is seeded the same."""
    name = Path(output_dir).name
    return f"trial-{name}" if parent_run_id and name.isdigit() else name


def _client(uri: str, timeout: float):
    """An MlflowClient that has answered once (fails fast instead of retrying for minutes)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(max(timeout, 1))))
    from mlflow.tracking import MlflowClient

    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(uri)
    client.search_experiments(max_results=1)
    return client


PARENT_RUN_FILE = "mlflow_parent_run_id"


def sweep_parent_run_id() -> str | None:
    """The MLflow run of the ``--multirun`` sweep this job belongs to (written by the sweep callback)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    marker = Path(HydraConfig.get().sweep.dir) / PARENT_RUN_FILE
    return marker.read_text().strip() if marker.is_file() else None

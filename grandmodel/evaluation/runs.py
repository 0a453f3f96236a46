"""Find a trained run from what a user types: a run folder, a checkpoint file or an MLflow run id."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from grandmodel.data.normalise import NormStats
from grandmodel.errors import GrandModelError
from grandmodel.training.policies import load_checkpoint

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class TrainedRun:
    """A training run's checkpoint, its config and normalisation statistics, and where it came from."""

    checkpoint_path: Path
    checkpoint: dict[str, Any]
    config: DictConfig
    norm: dict[str, NormStats]
    run_id: str | None = None
    output_dir: Path | None = None

    @property
    def history(self) -> list[dict[str, float]]:
        return list(self.checkpoint.get("grandmodel", {}).get("history", []))


def resolve_run(spec: str, tracking_uri: str | None = None) -> TrainedRun:
    """``spec`` is a run folder (uses its best checkpoint, else last), a ``.ckpt`` file, or an MLflow run id."""
    path = Path(spec)
    if path.is_dir():
        return _from_checkpoint(_pick(path), output_dir=path)
    if path.is_file():
        return _from_checkpoint(path)
    if RUN_ID.match(spec):
        return _from_mlflow(spec, tracking_uri)
    raise GrandModelError(f"run={spec}: not a run folder, a checkpoint file or an MLflow run id")


def _pick(folder: Path) -> Path:
    best = sorted((folder / "checkpoints").glob("best-*.ckpt"))
    if best:
        return best[-1]
    last = folder / "checkpoints" / "last.ckpt"
    if last.is_file():
        return last
    raise GrandModelError(
        f"run={folder}: no checkpoint in {folder / 'checkpoints'} (expected best-*.ckpt or last.ckpt)"
    )


def _from_checkpoint(
    path: Path, run_id: str | None = None, output_dir: Path | None = None
) -> TrainedRun:
    checkpoint = load_checkpoint(path)
    extra = checkpoint.get("grandmodel", {})
    if "config" not in extra or "norm" not in extra:
        raise GrandModelError(
            f"{path}: not a GrandModel training checkpoint (no config or normalisation statistics)"
        )
    config = OmegaConf.create(extra["config"])
    norm = {name: NormStats.from_dict(stats) for name, stats in extra["norm"].items()}
    run_id = run_id or _tag_run_id(path)
    return TrainedRun(path, checkpoint, config, norm, run_id, output_dir or path.parent.parent)


def _tag_run_id(path: Path) -> str | None:
    """The MLflow run id written next to a run's outputs, when training tracked one."""
    marker = path.parent.parent / "mlflow_run_id"
    return marker.read_text().strip() if marker.is_file() else None


def _from_mlflow(run_id: str, tracking_uri: str | None) -> TrainedRun:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise GrandModelError(f"run={run_id}: no such MLflow run in {tracking_uri}") from None
    folder = Path(run.data.tags.get("output_dir", ""))
    if folder.is_dir() and (folder / "checkpoints").is_dir():
        return _from_checkpoint(_pick(folder), run_id=run_id, output_dir=folder)
    names = [a.path for a in client.list_artifacts(run_id, "checkpoints")]
    if not names:
        raise GrandModelError(
            f"run={run_id}: the run has no checkpoint artifact and its output folder {folder} is gone"
        )
    local = client.download_artifacts(
        run_id, sorted(names)[-1], tempfile.mkdtemp(prefix="grandmodel-")
    )
    return _from_checkpoint(Path(local), run_id=run_id)

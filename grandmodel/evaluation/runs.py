"""Find a trained run from what a user types: a run folder, a checkpoint file or an MLflow run id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from grandmodel.checkpoints import load_checkpoint, run_checkpoint
from grandmodel.data.normalise import NormStats
from grandmodel.errors import GrandModelError
from grandmodel.tracking import RUN_ID_FILE, is_run_id, locate_run


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
        return _from_checkpoint(run_checkpoint(path), output_dir=path)
    if path.is_file():
        return _from_checkpoint(path)
    if is_run_id(spec):
        return _from_mlflow(spec, tracking_uri)
    raise GrandModelError(f"run={spec}: not a run folder, a checkpoint file or an MLflow run id")


def _from_checkpoint(
    path: Path, run_id: str | None = None, output_dir: Path | None = None
) -> TrainedRun:
    checkpoint = load_checkpoint(path)
    extra = checkpoint.get("grandmodel", {})
    if "adapt" in extra:  # grandmodel/meta/adaptation.py: an interrupted adaptation's last.ckpt
        raise GrandModelError(
            f"{path}: an adaptation that has not finished (no best-adapted.ckpt yet); expected "
            f"python -m grandmodel.adapt resume={path.parent.parent} first"
        )
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
    marker = path.parent.parent / RUN_ID_FILE
    return marker.read_text().strip() if marker.is_file() else None


def _from_mlflow(run_id: str, tracking_uri: str | None) -> TrainedRun:
    if not tracking_uri:
        raise GrandModelError(
            f"run={run_id}: an MLflow run id needs a tracking store; expected logger=mlflow"
        )
    found = locate_run(tracking_uri, run_id)
    if found.output_dir is not None:
        return _from_checkpoint(
            run_checkpoint(found.output_dir), run_id=run_id, output_dir=found.output_dir
        )
    assert found.checkpoint is not None
    return _from_checkpoint(found.checkpoint, run_id=run_id)

"""``python -m grandmodel.train [overrides]``: train the agents, evaluate, track in MLflow.

``resume=<run folder | MLflow run id>`` (or ``ckpt_path=<run>/checkpoints/last.ckpt``) continues a
run in its own folder and MLflow run. Returns (to Hydra sweepers) the configured
``optimized_metric`` of the best checkpoint, or the list of ``objectives`` for multi-objective sweeps.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from grandmodel import cli
from grandmodel.config import register_configs
from grandmodel.errors import reported
from grandmodel.training.resume import resume_command_line

register_configs()
__all__ = ["main"]  # and `train`, imported on first use (below)


def __getattr__(name: str) -> Any:
    """``train`` (torch, Lightning, MLflow) is imported on first use, so ``--help`` answers fast."""
    if name == "train":
        from grandmodel.evaluation.training_job import train

        return train
    raise AttributeError(f"module 'grandmodel.train' has no attribute {name!r}")


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | list[float] | None:
    from grandmodel.evaluation.training_job import train

    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return trial(cfg, Path(hydra_cfg.runtime.output_dir))
    with reported(run_dir=hydra_cfg.runtime.output_dir):
        return train(cfg)["metric"]


def trial(cfg: DictConfig, output_dir: Path) -> float | list[float]:
    """One sweep trial (see ``grandmodel.evaluation.sweeps.run_trial``)."""
    from grandmodel.evaluation.sweeps import run_trial
    from grandmodel.evaluation.training_job import train

    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    return run_trial(cfg, output_dir, Path(hydra_cfg.sweep.dir), overrides, train)


if __name__ == "__main__":
    with reported():
        sys.argv[1:] = resume_command_line(sys.argv[1:])
    cli.run(main, "train", "grandmodel.train")

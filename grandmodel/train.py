"""``python -m grandmodel.train [overrides]``: train the agents, evaluate, track in MLflow.

Returns (to Hydra sweepers) the configured ``optimized_metric`` of the best checkpoint, or the
list of ``objectives`` (final validation metrics) for multi-objective sweeps.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from grandmodel.agents.base import NonFiniteError
from grandmodel.config import register_configs, validate
from grandmodel.console import make_console
from grandmodel.data.market_data import MarketData
from grandmodel.errors import GrandModelError, TrainingStopped, reported
from grandmodel.evaluation.evaluator import MarketEvaluator
from grandmodel.evaluation.plots import learning_curves
from grandmodel.training.policies import load_checkpoint
from grandmodel.training.run import TrainingRun, run_training
from grandmodel.training.tracking import sweep_parent_run_id

register_configs()

FINAL_SPLITS = ("val", "test")


def make_evaluator(cfg: DictConfig, data: MarketData, split: str) -> MarketEvaluator:
    return MarketEvaluator(cfg, data, split, int(cfg.trainer.eval_episodes))


def train(
    cfg: DictConfig, parent_run_id: str | None = None, console: Console | None = None
) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the optimised metric (or objectives), the MLflow run id and
    the final metrics. In a ``--multirun`` sweep the run is nested under the sweep's MLflow run."""
    validate(cfg)
    ckpt = cfg.get("ckpt_path")
    if ckpt and "source" not in load_checkpoint(ckpt).get(
        "grandmodel", {}
    ):  # before any work starts
        raise GrandModelError(
            f"{ckpt}: holds weights only (a best-policy checkpoint); resume from checkpoints/last.ckpt"
        )
    console = console or make_console()
    try:
        run = run_training(cfg, make_evaluator, parent_run_id or sweep_parent_run_id())
    except NonFiniteError as exc:
        raise TrainingStopped(f"training stopped: {exc}; {_last_good(cfg)}") from None
    final = final_evaluation(run, cfg)
    console.print(_table(final, "best" if run.best_checkpoint else "last"))
    _log_artifacts(run, cfg, final)
    best = (
        run.best_score
        if run.best_score is not None
        else final["val"].get(_key(str(cfg.optimized_metric)))
    )
    metric: float | list[float] = (
        [final["val"][_key(m)] for m in cfg.objectives] if cfg.get("objectives") else best
    )
    where = (
        f"MLflow run {run.tracking.run_id} ({run.tracking.uri})"
        if run.tracking.run_id
        else f"local record in {run.output_dir}/metrics"
    )
    console.print(f"{cfg.optimized_metric} = {best}; {where}; outputs in {run.output_dir}")
    return {
        "metric": metric,
        "run_id": run.tracking.run_id,
        "final": final,
        "output_dir": str(run.output_dir),
        "run": run,
    }


def _key(metric: str) -> str:
    return metric.split("/", 1)[-1]


def final_evaluation(run: TrainingRun, cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Metrics of the best checkpoint (else the last weights) on the validation and test splits;
    the validation walk's per-step returns are kept (``val_returns.npy``) for sweep statistics."""
    if run.best_checkpoint:
        run.system.load_state_dict(load_checkpoint(run.best_checkpoint)["state_dict"])
    final = {}
    for split in FINAL_SPLITS:
        evaluator = make_evaluator(cfg, run.data, split)
        final[split] = evaluator(run.system.policy)
        if split == "val":
            np.save(run.output_dir / "val_returns.npy", evaluator.last_returns)
    return final


def _table(final: dict[str, dict[str, float]], which: str) -> Table:
    table = Table(title=f"Evaluation of the {which} policy")
    table.add_column("metric")
    for split in FINAL_SPLITS:
        table.add_column(split, justify="right")
    for key in final[FINAL_SPLITS[0]]:
        table.add_row(key, *(f"{final[s][key]:.4f}" for s in FINAL_SPLITS))
    return table


def _log_artifacts(run: TrainingRun, cfg: DictConfig, final: dict[str, dict[str, float]]) -> None:
    tracking = run.tracking
    tracking.log_metrics(
        {f"final/{split}/{k}": v for split, values in final.items() for k, v in values.items()}
    )
    curves = learning_curves(run.system.history, run.output_dir / "learning_curves.png")
    lines = ["| metric | " + " | ".join(FINAL_SPLITS) + " |", "|---|" + "---:|" * len(FINAL_SPLITS)]
    lines += [
        f"| {k} | " + " | ".join(f"{final[s][k]:.4f}" for s in FINAL_SPLITS) + " |"
        for k in final[FINAL_SPLITS[0]]
    ]
    (run.output_dir / "evaluation.md").write_text("\n".join(lines) + "\n")
    for path in (
        run.output_dir / "config.yaml",
        run.output_dir / "norm_stats.json",
        run.output_dir / "evaluation.md",
        curves,
    ):
        if path is not None:
            tracking.log_artifact(path)
    if cfg.logger.log_checkpoints and run.best_checkpoint:
        tracking.log_artifact(run.best_checkpoint, "checkpoints")


def _last_good(cfg: DictConfig) -> str:
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    return (
        f"last good checkpoint: {last}" if last.is_file() else "no checkpoint had been written yet"
    )


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | list[float] | None:
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(
        logging.WARNING
    )  # hardware tips
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return trial(cfg, Path(hydra_cfg.runtime.output_dir))
    with reported(run_dir=hydra_cfg.runtime.output_dir):
        return train(cfg)["metric"]


def trial(cfg: DictConfig, output_dir: Path) -> float | list[float]:
    """One sweep trial: a failure is reported on one line, recorded (``failed`` marker, MLflow run
    FAILED) and returned as NaN, which Optuna records as a failed trial; the sweep goes on."""
    try:
        return train(cfg)["metric"]
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: trial failed: {message}", file=sys.stderr)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "failed").write_text(message + "\n")
        marker = output_dir / "mlflow_run_id"
        if marker.is_file() and cfg.logger.kind == "mlflow":
            from mlflow.tracking import MlflowClient

            MlflowClient(str(cfg.logger.tracking_uri)).set_terminated(
                marker.read_text().strip(), "FAILED"
            )
        return [float("nan")] * len(cfg.objectives) if cfg.get("objectives") else float("nan")


if __name__ == "__main__":
    main()

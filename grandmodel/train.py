"""``python -m grandmodel.train [overrides]``: train the agents, evaluate, track in MLflow.

Returns (to Hydra sweepers) the configured ``optimized_metric`` of the best checkpoint.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
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

register_configs()

FINAL_SPLITS = ("val", "test")


def make_evaluator(cfg: DictConfig, data: MarketData, split: str) -> MarketEvaluator:
    return MarketEvaluator(cfg, data, split, int(cfg.trainer.eval_episodes))


def train(
    cfg: DictConfig, parent_run_id: str | None = None, console: Console | None = None
) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the optimised metric, the MLflow run id and final metrics."""
    validate(cfg)
    # refuse a missing, unsafe or weights-only checkpoint before any work starts
    if cfg.get("ckpt_path") and "source" not in load_checkpoint(cfg.ckpt_path).get(
        "grandmodel", {}
    ):
        raise GrandModelError(
            f"{cfg.ckpt_path}: holds weights only (a best-policy checkpoint); resume from checkpoints/last.ckpt"
        )
    console = console or make_console()
    try:
        run = run_training(cfg, make_evaluator, parent_run_id)
    except NonFiniteError as exc:
        raise TrainingStopped(f"training stopped: {exc}; {_last_good(cfg)}") from None
    final = final_evaluation(run, cfg)
    table = Table(title=f"Evaluation of the {'best' if run.best_checkpoint else 'last'} policy")
    table.add_column("metric")
    for split in FINAL_SPLITS:
        table.add_column(split, justify="right")
    for key in final[FINAL_SPLITS[0]]:
        table.add_row(key, *(f"{final[s][key]:.4f}" for s in FINAL_SPLITS))
    console.print(table)
    _log_artifacts(run, cfg, final)
    metric = (
        run.best_score
        if run.best_score is not None
        else final["val"].get(str(cfg.optimized_metric).split("/", 1)[-1])
    )
    where = (
        f"MLflow run {run.tracking.run_id} ({run.tracking.uri})"
        if run.tracking.run_id
        else f"local record in {run.output_dir}/metrics"
    )
    console.print(f"{cfg.optimized_metric} = {metric}; {where}; outputs in {run.output_dir}")
    return {
        "metric": metric,
        "run_id": run.tracking.run_id,
        "final": final,
        "output_dir": str(run.output_dir),
        "run": run,
    }


def final_evaluation(run: TrainingRun, cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Metrics of the best checkpoint (else the last weights) on the validation and test splits."""
    if run.best_checkpoint:
        state = load_checkpoint(run.best_checkpoint)["state_dict"]
        run.system.load_state_dict(state)
    return {
        split: make_evaluator(cfg, run.data, split)(run.system.policy) for split in FINAL_SPLITS
    }


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
    from pathlib import Path

    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    return (
        f"last good checkpoint: {last}" if last.is_file() else "no checkpoint had been written yet"
    )


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(
        logging.WARNING
    )  # hardware tips
    hydra_cfg = HydraConfig.get()
    single = hydra_cfg.mode is None or str(hydra_cfg.mode) == "RunMode.RUN"
    with reported(run_dir=hydra_cfg.runtime.output_dir if single else None):
        return train(cfg)["metric"]


if __name__ == "__main__":
    main()

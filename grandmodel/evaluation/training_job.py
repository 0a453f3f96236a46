"""One training job end to end: fit (``training.run``), then the final report of the best policy
(built by the evaluation layer), recorded in the run's tracker; what ``python -m grandmodel.train``
and the walk-forward folds call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.console import Console

from grandmodel.agents.base import NonFiniteError
from grandmodel.checkpoints import is_full, load_checkpoint
from grandmodel.console import make_console
from grandmodel.errors import GrandModelError, TrainingStopped
from grandmodel.evaluation.evaluator import make_evaluator
from grandmodel.evaluation.final import final_report
from grandmodel.training.callbacks import Interrupted
from grandmodel.training.run import TrainingRun, run_training


def train(
    cfg: DictConfig, parent_run_id: str | None = None, console: Console | None = None
) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the optimised metric (or objectives), the MLflow run id and
    the final metrics. ``ckpt_path=<run>/checkpoints/last.ckpt`` continues that run in its folder."""
    ckpt = cfg.get("ckpt_path")
    if ckpt:  # before any work: resume only from a full checkpoint, into its own run folder
        if not is_full(load_checkpoint(ckpt)):
            raise GrandModelError(
                f"ckpt_path={ckpt}: holds weights only (a best-policy checkpoint); expected "
                "checkpoints/last.ckpt of the run to resume"
            )
        if Path(ckpt).parent.name == "checkpoints":
            cfg.paths.output_dir = str(Path(ckpt).resolve().parent.parent)
    console = console or make_console()
    try:
        run = run_training(cfg, make_evaluator, parent_run_id)
    except NonFiniteError as exc:
        _finish_quietly(cfg, "FAILED")
        raise TrainingStopped(f"training stopped: {exc}; {_last_good(cfg)}") from None
    except Interrupted as exc:
        _finish_quietly(cfg, "KILLED")
        raise Interrupted(exc.signum, f"{exc}; {_resume_hint(cfg)}") from None
    except Exception:
        _finish_quietly(cfg, "FAILED")
        raise
    return _report(run, cfg, console)


def _report(run: TrainingRun, cfg: DictConfig, console: Console) -> dict[str, Any]:
    """Final report of the best checkpoint (else the last weights), into the tracker."""
    if run.best_checkpoint:
        run.system.act_as(load_checkpoint(run.best_checkpoint))
    which = "best" if run.best_checkpoint else "last"
    report = final_report(
        cfg, run.data, run.system.policy, run.output_dir, run.system.history, which
    )
    console.print(report.table)
    tracker = run.tracker
    tracker.log_metrics(
        {
            f"final/{split}/{k}": v
            for split, values in report.metrics.items()
            for k, v in values.items()
        },
        step=int(run.system.source.frames),
    )
    tracker.set_tags({"mlflow.note.content": _headline(cfg, report.metrics, which)})
    for path in [run.output_dir / "config.yaml", run.output_dir / "norm_stats.json", *report.files]:
        tracker.log_artifact(path)
    if cfg.logger.log_checkpoints and run.best_checkpoint:
        tracker.log_artifact(run.best_checkpoint, "checkpoints")
    tracker.finish("FINISHED")
    best = run.best_score
    if best is None:
        best = report.metrics["val"].get(str(cfg.optimized_metric).split("/", 1)[-1])
    objectives = cfg.get("objectives")
    metric = (
        [report.metrics["val"][m.split("/", 1)[-1]] for m in objectives] if objectives else best
    )
    where = (
        f"MLflow run {tracker.run_id} ({tracker.uri})"
        if tracker.run_id and tracker.online
        else f"local record in {tracker.record.path}"
    )
    console.print(f"{cfg.optimized_metric} = {best}; {where}; outputs in {run.output_dir}")
    return {
        "metric": metric,
        "run_id": tracker.run_id,
        "final": report.metrics,
        "output_dir": str(run.output_dir),
        "best_checkpoint": run.best_checkpoint,
        "run": run,
    }


def _headline(cfg: DictConfig, metrics: dict[str, dict[str, float]], which: str) -> str:
    """The run's description in the MLflow UI (Markdown): who trained on what, and the final
    numbers a reader compares runs by."""
    head = (
        f"**{cfg.task_name}**: agent `{cfg.agent.name}`, data `{cfg.data.name}`, "
        f"seed {cfg.seed}; {which} policy"
    )
    table = [
        "| split | Sharpe | total return | max drawdown | trades |",
        "|---|---:|---:|---:|---:|",
    ]
    table += [
        f"| {split} | {m['sharpe']:.3f} | {m['total_return']:.4g} | {m['max_drawdown']:.4g} "
        f"| {m['trades']:.0f} |"
        for split, m in metrics.items()
    ]
    return "\n".join([head, "", *table])


def _finish_quietly(cfg: DictConfig, status: str) -> None:
    """Mark the run folder's tracked run ``status`` (if tracking had started)."""
    from grandmodel.tracking import LocalRecord, Tracker

    folder = Path(cfg.paths.output_dir)
    if LocalRecord(folder).start_op() is None:
        return
    uri = str(cfg.logger.tracking_uri) if cfg.logger.kind == "mlflow" else None
    Tracker(folder, uri, timeout=float(cfg.logger.connect_timeout), quiet=True).finish(status)


def _resume_hint(cfg: DictConfig) -> str:
    folder = Path(cfg.paths.output_dir)
    last = folder / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return "no evaluation had been reached, so there is nothing to resume; start it again"
    frames = load_checkpoint(last)["grandmodel"]["source"]["frames"]
    return f"resume with: python -m grandmodel.train resume={folder} (from its last evaluation, {frames:,} frames)"


def _last_good(cfg: DictConfig) -> str:
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    return (
        f"last good checkpoint: {last}" if last.is_file() else "no checkpoint had been written yet"
    )

"""``python -m grandmodel.evaluate run=<run dir | MLflow run id | checkpoint> split=test episodes=N``.

Walks the split deterministically with the trained agents and with the baselines, computes the
seed's metrics (and the counterfactual contribution of each learning agent), writes report.md,
report.html, PNG plots and the tables, and records an evaluation run nested under the training run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from grandmodel.config import register_configs, validate
from grandmodel.console import make_console
from grandmodel.errors import reported
from grandmodel.evaluation.backtest import Arena, compare, contributions, market, model_config
from grandmodel.evaluation.outputs import comparison_table, report_equity, write_tables
from grandmodel.evaluation.report import ReportInputs, write_report
from grandmodel.evaluation.runs import resolve_run
from grandmodel.evaluation.tracking import count_trials, log_run

register_configs()


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate as ``cfg`` says; returns the metrics per policy, the report files and the MLflow run id."""
    validate(cfg)
    run = resolve_run(
        str(cfg.run), str(cfg.logger.tracking_uri) if cfg.logger.kind == "mlflow" else None
    )
    torch.manual_seed(int(cfg.seed))  # the random baseline and any sampling: same seed, same report
    model_cfg = model_config(run, cfg.get("data"), cfg.paths)
    data = market(run, model_cfg)
    arena = Arena(model_cfg, data, str(cfg.split), int(cfg.episodes))
    learners, policy = arena.trained(run)
    outcomes = compare(arena, run, policy)
    trained = outcomes["trained"]
    contrib = contributions(arena, run, learners if cfg.counterfactual else {}, trained)
    folder = Path(cfg.paths.output_dir)
    inputs = ReportInputs(
        equity=report_equity(trained, float(model_cfg.env.initial_capital)),
        decisions=trained.ledger.decisions,
        comparison={name: o.metrics for name, o in outcomes.items()},
        episode_rewards=trained.episode_rewards,
        periods_per_year=arena.periods_per_year,
        n_trials=int(cfg.trials) or count_trials(run, cfg.logger),
        title=f"Evaluation on the {cfg.split} split",
        meta={
            "run": str(cfg.run),
            "checkpoint": str(run.checkpoint_path),
            "data": str(model_cfg.data.name),
            "episodes": str(len(trained.episode_rewards["strategic"])),
        },
        trades=trained.ledger.trades,
        history=run.history,
        contributions=contrib,
    )
    files = write_report(inputs, folder)
    files |= write_tables(trained, folder)
    metrics = {
        f"{cfg.split}/{name}/{k}": v
        for name, o in outcomes.items()
        for k, v in o.metrics.items()
        if isinstance(v, float | int)
    }
    run_id = log_run(
        cfg.logger,
        run,
        "evaluation",
        {"split": cfg.split, "episodes": cfg.episodes, "run": cfg.run},
        metrics,
        list(files.values()),
    )
    console = make_console()
    title = f"{cfg.split} split, {len(trained.episode_rewards['strategic'])} episodes"
    console.print(comparison_table({name: o.metrics for name, o in outcomes.items()}, title))
    where = f"MLflow run {run_id}" if run_id else "no MLflow run"
    console.print(f"report: {files['report.html']}; {where}")
    return {
        "metrics": {name: o.metrics for name, o in outcomes.items()},
        "files": files,
        "run_id": run_id,
        "contributions": contrib,
    }


@hydra.main(config_path="../conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with reported(run_dir=HydraConfig.get().runtime.output_dir):
        evaluate(cfg)


if __name__ == "__main__":
    main()

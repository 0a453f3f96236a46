"""``python -m grandmodel.backtest run=... [data=...] start=... end=... initial_capital=100000``.

One chronological pass of the trained agents over the range with the env's own execution and
accounting; writes the trade log, equity curve, positions and every decision (Parquet and CSV) and
prints the system beside buy-and-hold, flat, random and MA crossover on the same range.
``walk_forward.folds=K`` instead rolls K expanding-window folds and aggregates their out-of-sample tests.
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
from grandmodel.evaluation.backtest import RANGE, Arena, compare, market, model_config, with_range
from grandmodel.evaluation.outputs import comparison_table, write_tables
from grandmodel.evaluation.runs import resolve_run
from grandmodel.evaluation.tracking import log_run
from grandmodel.evaluation.walk_forward import walk_forward

register_configs()


def backtest(cfg: DictConfig) -> dict[str, Any]:
    """Backtest (or walk forward) as ``cfg`` says; returns metrics per policy and the files written."""
    validate(cfg)
    run = resolve_run(
        str(cfg.run), str(cfg.logger.tracking_uri) if cfg.logger.kind == "mlflow" else None
    )
    torch.manual_seed(int(cfg.seed))  # the random baseline and any sampling: same seed, same report
    folder = Path(cfg.paths.output_dir)
    console = make_console()
    if int(cfg.walk_forward.folds):
        result = walk_forward(cfg, run, folder, console)
        log_run(
            cfg.logger,
            run,
            "walk_forward",
            {"folds": cfg.walk_forward.folds},
            result["metrics"],
            list(result["files"].values()),
        )
        return result
    model_cfg = model_config(run, cfg.get("data"), cfg.paths, cfg.initial_capital)
    data = with_range(market(run, model_cfg), cfg.start, cfg.end)
    arena = Arena(model_cfg, data, RANGE, whole=True)
    _, policy = arena.trained(run)
    outcomes = compare(arena, run, policy)
    files = write_tables(outcomes["trained"], folder)
    d = outcomes["trained"].ledger.decisions
    span = f"{d['time'].iloc[0]:%Y-%m-%d %H:%M} to {d['time'].iloc[-1]:%Y-%m-%d %H:%M}"
    title = f"backtest {span}, capital {float(model_cfg.env.initial_capital):,.0f}"
    console.print(comparison_table({name: o.metrics for name, o in outcomes.items()}, title))
    metrics = {
        f"backtest/{name}/{k}": v
        for name, o in outcomes.items()
        for k, v in o.metrics.items()
        if isinstance(v, float | int)
    }
    params = {
        "start": cfg.start,
        "end": cfg.end,
        "initial_capital": model_cfg.env.initial_capital,
        "run": cfg.run,
    }
    run_id = log_run(cfg.logger, run, "backtest", params, metrics, list(files.values()))
    console.print(f"tables in {folder}; {'MLflow run ' + run_id if run_id else 'no MLflow run'}")
    return {
        "metrics": {name: o.metrics for name, o in outcomes.items()},
        "files": files,
        "run_id": run_id,
        "outcomes": outcomes,
    }


@hydra.main(config_path="../conf", config_name="backtest", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with reported(run_dir=HydraConfig.get().runtime.output_dir):
        backtest(cfg)


if __name__ == "__main__":
    main()

"""``python -m grandmodel.pareto mlflow_experiment=<MLflow experiment> metrics=[a,b(,c)] directions=[max,min(,..)]``.

Prints the Pareto-optimal training runs over the chosen metrics and writes ``pareto_front.csv`` and
``pareto_front.png`` into the run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.table import Table

from grandmodel import cli
from grandmodel.config import register_configs, validate
from grandmodel.console import make_console
from grandmodel.errors import GrandModelError, reported

register_configs()


def pareto(cfg: DictConfig) -> dict[str, Any]:
    from grandmodel.evaluation.front import non_dominated, plot_front
    from grandmodel.tracking import training_runs_table

    validate(cfg)
    metrics, directions = list(cfg.metrics), list(cfg.directions)
    table = training_runs_table(
        str(cfg.logger.tracking_uri), str(cfg.mlflow_experiment), metrics, cfg.sweep
    )
    if table.empty:
        raise GrandModelError(
            f"mlflow_experiment={cfg.mlflow_experiment}: no finished training runs in {cfg.logger.tracking_uri}"
        )
    missing = [m for m in metrics if table[m].isna().all()]
    if missing:
        raise GrandModelError(
            f"metrics: no run of experiment {cfg.mlflow_experiment} has {missing[0]!r}"
        )
    front = non_dominated(table[metrics].to_numpy(), directions)
    folder = Path(cfg.paths.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    table[front].to_csv(folder / "pareto_front.csv", index=False)
    plot = plot_front(
        table,
        metrics,
        front,
        folder / "pareto_front.png",
        f"{cfg.mlflow_experiment}: {int(front.sum())} of {len(table)} runs Pareto-optimal",
    )
    console = make_console()
    shown = Table(
        title=f"Pareto-optimal runs of {cfg.mlflow_experiment} ({' / '.join(f'{d} {m}' for m, d in zip(metrics, directions, strict=True))})"
    )
    columns = ["run_id", *metrics, *[c for c in table.columns if c.startswith("param:")]]
    for column in columns:
        shown.add_column(column.removeprefix("param:"))
    for _, row in table[front].iterrows():
        shown.add_row(
            *(f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in columns)
        )
    console.print(shown)
    console.print(f"{int(front.sum())} of {len(table)} runs on the front; plot: {plot}")
    return {"table": table, "front": front, "plot": plot}


@hydra.main(config_path="../conf", config_name="pareto", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with reported(run_dir=HydraConfig.get().runtime.output_dir):
        pareto(cfg)


if __name__ == "__main__":
    cli.run(main, "pareto", "grandmodel.pareto")

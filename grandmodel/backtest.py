"""``python -m grandmodel.backtest run=... [data=...] start=... end=... initial_capital=100000``.

One chronological pass of the trained agents over the range with the env's own execution and
accounting; writes the trade log, equity curve, positions and every decision (Parquet and CSV) and
prints the system beside buy-and-hold, flat, random and MA crossover on the same range.
``walk_forward.folds=K`` instead rolls K expanding-window folds and aggregates their out-of-sample
tests. The work is :func:`grandmodel.evaluation.commands.run_backtest`.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from grandmodel import cli
from grandmodel.config import register_configs
from grandmodel.errors import reported

register_configs()


@hydra.main(config_path="../conf", config_name="backtest", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from grandmodel.evaluation.commands import run_backtest

    with reported(run_dir=HydraConfig.get().runtime.output_dir):
        run_backtest(cfg)


if __name__ == "__main__":
    cli.run(main, "backtest", "grandmodel.backtest")

"""``python -m grandmodel.evaluate run=<run dir | MLflow run id | checkpoint> split=test episodes=N``.

Walks the split deterministically with the trained agents and with the baselines, computes the
metrics (and the counterfactual contribution of each learning agent), writes report.md,
report.html, PNG plots and the tables, and records an evaluation run nested under the training run.
The work is :func:`grandmodel.evaluation.commands.run_evaluation`.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from grandmodel import cli
from grandmodel.config import register_configs
from grandmodel.errors import reported

register_configs()


@hydra.main(config_path="../conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from grandmodel.evaluation.commands import run_evaluation

    with reported(run_dir=HydraConfig.get().runtime.output_dir):
        run_evaluation(cfg)


if __name__ == "__main__":
    cli.run(main, "evaluate", "grandmodel.evaluate")

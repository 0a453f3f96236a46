"""``python -m grandmodel.adapt run=<meta run> data=<new market> adapt.steps=K``.

Fine-tunes a meta-trained initialisation (``python -m grandmodel.meta``) on the first part of a
new market and evaluates it on the rest, before and after adapting; the adapted policy lands in
``checkpoints/best-adapted.ckpt`` (evaluate, backtest and export take the run folder) and the run
is tracked nested under the meta run. ``resume=<adapt run folder>`` continues an interrupted one
in its folder (as ``python -m grandmodel.train resume=…``). The work is
:func:`grandmodel.meta.adaptation.adapt_to_market`.
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from grandmodel import cli
from grandmodel.config import register_configs
from grandmodel.errors import reported
from grandmodel.training.resume import resume_command_line

register_configs()


@hydra.main(config_path="../conf", config_name="adapt", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from grandmodel.evaluation.evaluator import MarketEvaluator
    from grandmodel.meta.adaptation import adapt_to_market

    with reported(run_dir=HydraConfig.get().runtime.output_dir):
        out = adapt_to_market(cfg, MarketEvaluator)
    split = cfg.adapt.split
    for key in ("sharpe", "total_return", "max_drawdown"):
        before, after = out["metrics"][f"initial/{split}/{key}"], out["metrics"][f"{split}/{key}"]
        print(f"{split}/{key}: {before:.4g} before, {after:.4g} after {cfg.adapt.steps} updates")
    print(f"adapted policy: {out['checkpoint']}")


if __name__ == "__main__":
    with reported():
        sys.argv[1:] = resume_command_line(sys.argv[1:], "adapt")
    cli.run(main, "adapt", "grandmodel.adapt")

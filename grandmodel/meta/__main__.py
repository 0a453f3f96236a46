"""``python -m grandmodel.meta [meta=reptile|fomaml] [overrides]``: meta-train (see ``run_meta``)."""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from grandmodel import cli
from grandmodel.config import register_configs
from grandmodel.errors import reported

register_configs()


@hydra.main(config_path="../../conf", config_name="meta_train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from grandmodel.meta.system import run_meta

    with reported(run_dir=HydraConfig.get().runtime.output_dir):
        out = run_meta(cfg)
    print(f"meta run: {out['output_dir']} ({out['iterations']} meta-updates)")
    print(
        f"adapt it: python -m grandmodel.adapt run={out['output_dir']} data=<new market> adapt.steps=K"
    )


if __name__ == "__main__":
    cli.run(main, "meta_train", "grandmodel.meta")

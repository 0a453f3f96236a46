"""``python -m grandmodel.paper bundle=<export dir | models:/name@alias> feed=replay|tail feed.path=<file>``.

Paper-trades an exported bundle bar by bar with a simulated broker, a risk gate and a crash-safe
journal (``outputs/paper/<paper.session>/journal.sqlite``; the same session name continues it). The
work is :class:`grandmodel.deploy.paper.session.PaperSession`. ``--quiet`` = ``paper.quiet=true``.
"""

from __future__ import annotations

import sys

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from grandmodel import cli
from grandmodel.config import register_configs, validate
from grandmodel.errors import reported

register_configs()


@hydra.main(config_path="../conf", config_name="paper", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from grandmodel.deploy.paper.session import PaperSession, session_folder

    with reported(run_dir=HydraConfig.get().runtime.output_dir):
        validate(cfg)
        folder = session_folder(str(cfg.paths.outputs_dir), str(cfg.paper.session))
        session = PaperSession(cfg, folder)
        echo = None if cfg.paper.quiet else (lambda line: print(line, flush=True))
        result = session.run(echo)
        account, lat = result["account"], np.asarray(result["latencies"]) * 1e3
        timing = (
            f"; bar-to-order p50 {np.percentile(lat, 50):.2f} ms, p99 {np.percentile(lat, 99):.2f} ms"
            if lat.size
            else ""
        )
        equity = (
            f"equity {account['equity']:,.2f}, position {account['position']:+g}, "
            if account
            else ""
        )
        print(f"paper session {cfg.paper.session}: {result['bars']} bars, {equity}risk "
              f"{result['state']}; journal {result['journal']}{timing}")  # fmt: skip


if __name__ == "__main__":
    if "--quiet" in sys.argv:
        sys.argv = [a for a in sys.argv if a != "--quiet"] + ["paper.quiet=true"]
    cli.run(main, "paper", "grandmodel.paper")

"""``python -m grandmodel.data.fit_generator data=csv data.path=… [gan.steps=N gan.max_minutes=M]``.

Fits the QuantGAN scenario generator (``grandmodel.data.synthetic.gan``) to the first
``fit_share`` of a series' one-minute log returns (returns across session breaks and gaps left
out), writes ``<run folder>/generator.pt`` with its config and the data hash, prints the stylised
facts of real and generated returns, and tracks the run (``kind=generator``).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from grandmodel import cli
from grandmodel.config import register_configs, validate
from grandmodel.errors import reported

register_configs()


def fit_generator(cfg: DictConfig) -> Path:
    """Load the series, fit, save, track; returns the generator file."""
    import numpy as np
    import pandas as pd

    from grandmodel.data.pipeline import load_tables
    from grandmodel.data.synthetic import stylised_facts
    from grandmodel.data.synthetic.gan import fit_gan, regime_labels, sample_returns, save_generator
    from grandmodel.data.synthetic.volatility import calendar_positions
    from grandmodel.tracking import Tracker, flatten, git_commit, run_name

    fc = validate(cfg)
    output_dir = Path(cfg.paths.output_dir)
    tables = load_tables(fc.data, Path(cfg.paths.cache_dir))
    base = tables.frames["base"]
    step = pd.Timedelta(fc.data.timeframes.base).value
    stamps = base.index.asi8
    contiguous = np.diff(stamps) == step  # one bar apart: no session break, halt or gap between
    returns_all = np.diff(np.log(base["close"].to_numpy()))
    returns = returns_all[contiguous]
    keep = int(fc.fit_share * returns.size)
    returns = returns[:keep]
    minute, session = calendar_positions(base.index[1:][contiguous][:keep])  # each return's bar
    calendar = (minute, session)
    labels = None
    if fc.gan.conditional:
        codes = base["regime"].to_numpy()[1:][contiguous] if "regime" in base else None
        labels = (codes if codes is not None else regime_labels(returns_all)[contiguous])[:keep]
    data_hash = str(tables.info["key"])
    tracker = Tracker.open(
        fc.logger,
        output_dir,
        name=run_name(output_dir, False),
        tags={"kind": "generator", "data_hash": data_hash, "data": fc.data.name,
              "git_commit": git_commit(), "output_dir": str(output_dir.resolve())},
        params=flatten(cfg),
    )  # fmt: skip
    try:
        model, scale, volatility = fit_gan(
            returns, labels, fc.gan, seed=fc.seed, calendar=calendar,
            on_step=lambda i, m: tracker.log_metrics(m, step=i) if i % 50 == 0 else None,
        )  # fmt: skip
        path = save_generator(model, scale, fc.output or output_dir / "generator.pt", data_hash,
                              fc.gan.steps, volatility)  # fmt: skip
        wanted = labels if labels is not None else np.full(returns.size, 2, np.int8)
        fake, _, _ = sample_returns(path, returns.size, wanted, np.random.default_rng(fc.seed),
                                    calendar)  # fmt: skip
        for name, series in (("real", returns), ("gan", fake)):
            facts = stylised_facts(series).summary()
            tracker.log_metrics({f"{name}/{k}": v for k, v in facts.items()})
            print(f"{name}: " + ", ".join(f"{k} {v:.3g}" for k, v in facts.items()))
        tracker.log_artifact(path)
        tracker.finish("FINISHED")
    except BaseException:
        tracker.finish("FAILED")
        raise
    print(f"generator: {path} (data {data_hash}, {returns.size:,} returns)")
    print(f"use it: data.synthetic.generator=gan data.synthetic.gan_path={path}")
    return path


@hydra.main(config_path="../../conf", config_name="fit_generator", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with reported(run_dir=HydraConfig.get().runtime.output_dir):
        fit_generator(cfg)


if __name__ == "__main__":
    cli.run(main, "fit_generator", "grandmodel.data.fit_generator")

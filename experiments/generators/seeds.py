"""The discriminative score and the ACF of |r| over several sampling seeds of the generators that
``run.py`` fitted, and of GARCH(1,1) given the GAN's volatility components (see README.md).

    .venv/bin/python experiments/generators/seeds.py [--seeds 1 2 3 4 5] [--gan other.pt ...]

Reads ``outputs/reference.csv`` and ``outputs/results.json`` of the last ``run.py``. Each seed draws
a fresh path of every row (one fitted generator each: the seeds vary the sampling and the
classifier's split, not the fit). "garch + components" fits GARCH(1,1) to the fitting part divided
by its intraday profile and daily levels (``grandmodel.data.synthetic.volatility``), samples it with
the project's ``garch`` generator and multiplies the components back before the bars are built.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
from run import COLUMNS, HERE, fit_garch, within_session_returns

from grandmodel.config import typed
from grandmodel.config.data import SyntheticConfig
from grandmodel.data.synthetic import discriminative_score, generate, session_index, stylised_facts
from grandmodel.data.synthetic.calendar import BARS_PER_SESSION, session_minute_of_day
from grandmodel.data.synthetic.generators import PATH_GENERATORS, PERIODS_PER_YEAR
from grandmodel.data.synthetic.ohlcv import build_bars
from grandmodel.data.synthetic.volatility import VolatilityModel, calendar_positions


def garch_with_components(cfg: SyntheticConfig, model: VolatilityModel) -> pd.DataFrame:
    """The ``garch`` generator's path times the components, built into bars as ``generate`` does."""
    days = cfg.days
    noise_rng, bar_rng, volume_rng = np.random.default_rng(cfg.seed).spawn(5)[2:]
    path_rng, event_rng = np.random.default_rng(cfg.seed).spawn(5)[:2]
    path = PATH_GENERATORS["garch"](cfg, days, path_rng, event_rng)
    calendar = (session_minute_of_day(days), np.repeat(np.arange(days), BARS_PER_SESSION))
    factor = model.scale(calendar, path_rng)
    bars = build_bars(path.log_returns * factor, path.gaps, path.sigma * factor,
                      initial_price=cfg.initial_price, tick_size=cfg.tick_size,
                      noise_level=cfg.noise_level, base_volume=cfg.base_volume,
                      rngs=(noise_rng, bar_rng, volume_rng))  # fmt: skip
    return pd.DataFrame(bars, index=session_index(cfg.start, days))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--gan", nargs="*", default=[], help="more generator files to compare")
    args = parser.parse_args()
    out = HERE / "outputs"
    meta = json.loads((out / "results.json").read_text())["meta"]
    reference = pd.read_csv(out / "reference.csv")
    stamps = pd.DatetimeIndex(pd.to_datetime(reference.pop("timestamp"), utc=True))
    contiguous = np.diff(stamps.as_unit("ns").asi8) == 60 * 10**9
    real = np.diff(np.log(reference["close"].to_numpy()))[contiguous]
    minute, session = calendar_positions(stamps[1:][contiguous])
    split = int(0.7 * real.size)
    train, test = real[:split], real[split:]
    components = VolatilityModel.fit(
        train, (minute[:split], session[:split]), profile=True, daily=True
    )
    adjusted = components.adjust(train, (minute[:split], session[:split]))
    days = int(np.ceil(test.size / 1379)) + 1
    alpha, beta = meta["garch"]
    rows = {"garch (fitted)": {"generator": "garch", "garch": {"alpha": alpha, "beta": beta}},
            "gan": {"generator": "gan", "gan_path": meta["gan"]},
            **{f"gan {p}": {"generator": "gan", "gan_path": p} for p in args.gan}}  # fmt: skip
    a_alpha, a_beta = fit_garch(adjusted)
    adjusted_vol = float(adjusted.std() * np.sqrt(PERIODS_PER_YEAR))
    table = {}
    for name in [*rows, "garch + components"]:
        scores, facts = [], []
        for seed in args.seeds:
            if name == "garch + components":
                cfg = typed({"seed": seed, "days": days, "annual_vol": adjusted_vol,
                             "generator": "garch", "garch": {"alpha": a_alpha, "beta": a_beta}},
                            SyntheticConfig)  # fmt: skip
                frame = garch_with_components(cfg, components)
            else:
                base = {"seed": seed, "days": days, "annual_vol": meta["annual_vol"]}
                frame = generate(typed({**base, **rows[name]}, SyntheticConfig))
            series = within_session_returns(frame)[: test.size]
            scores.append(discriminative_score(test, series, seed=seed))
            summary = stylised_facts(series).summary()
            facts.append([summary[c] for c in COLUMNS])
        means = dict(zip(COLUMNS, np.mean(facts, axis=0), strict=True))
        table[name] = {"discriminative": scores, **means}
        print(f"{name}: discriminative {np.round(scores, 3).tolist()} mean {np.mean(scores):.3f}; "
              + ", ".join(f"{c} {v:.3g}" for c, v in means.items()))  # fmt: skip
    meta["garch_on_adjusted"] = [a_alpha, a_beta]
    (out / "seeds.json").write_text(json.dumps({"meta": meta, "table": table}, indent=1))


if __name__ == "__main__":
    main()

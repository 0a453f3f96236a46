"""Every synthetic generator against one reference series: stylised facts, discriminative score and
train-on-synthetic/test-on-real, side by side (see README.md).

    .venv/bin/python experiments/generators/run.py [--reference es.csv] [--gan-minutes 8] [--seed 1]

Without ``--reference`` the reference is a stand-in built here (GJR-GARCH with Student-t shocks,
two volatility components and an intraday U-shape, tick-rounded on the ES calendar): no real
one-minute series ships with the repository. GARCH(1,1) is fitted to the reference with ``arch``;
the GAN with ``python -m grandmodel.data.fit_generator`` (in-process); GBM gets the reference's
volatility; regime, jump and stress run with their defaults at the reference's volatility.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from grandmodel.config import load_config, typed
from grandmodel.config.data import SyntheticConfig
from grandmodel.data.fit_generator import fit_generator
from grandmodel.data.synthetic import (
    discriminative_score,
    generate,
    session_index,
    stylised_facts,
    train_synthetic_test_real,
)
from grandmodel.data.synthetic.generators import PERIODS_PER_YEAR
from grandmodel.data.synthetic.ohlcv import build_bars, intraday_volume_profile

HERE = Path(__file__).resolve().parent
DAYS = 40
FIT_SHARE = 0.7
COLUMNS = ("excess_kurtosis", "hill_tail_index", "acf_r_1", "acf_abs_1", "acf_abs_30",
           "acf_sq_1", "leverage_1", "gain_loss_ratio", "kurtosis_30min")  # fmt: skip


def stand_in_reference(days: int, seed: int) -> pd.DataFrame:
    """One-minute ES-like bars from a GJR-GARCH(1,1) with t(4) shocks, a slow daily volatility
    factor and an intraday U-shaped volatility profile (what real index futures show)."""
    rng = np.random.default_rng(seed)
    n = days * 1380
    shocks = rng.standard_t(4, n) / np.sqrt(2.0)
    alpha, gamma, beta = 0.04, 0.05, 0.90
    omega = 1 - alpha - gamma / 2 - beta
    h, unit = 1.0, np.empty(n)
    for t in range(n):
        unit[t] = np.sqrt(h) * shocks[t]
        h = omega + (alpha + gamma * (unit[t] < 0)) * unit[t] ** 2 + beta * h
    daily = np.repeat(np.exp(np.cumsum(0.15 * rng.standard_normal(days)) * 0.5), 1380)
    intraday = np.sqrt(intraday_volume_profile(days))
    sigma = 0.16 / np.sqrt(PERIODS_PER_YEAR) * daily * intraday / intraday.mean()
    returns = sigma * unit
    bars = build_bars(returns, np.zeros(n), sigma, initial_price=4000.0, tick_size=0.25,
                      noise_level=0.0, base_volume=400.0, rngs=tuple(rng.spawn(3)))  # fmt: skip
    return pd.DataFrame(bars, index=session_index("2023-01-02", days))


def within_session_returns(frame: pd.DataFrame) -> np.ndarray:
    """Close-to-close log returns of consecutive minutes (none across a halt or weekend)."""
    contiguous = np.diff(pd.DatetimeIndex(frame.index).as_unit("ns").asi8) == 60 * 10**9
    return np.diff(np.log(frame["close"].to_numpy()))[contiguous]


def fit_garch(returns: np.ndarray) -> tuple[float, float]:
    from arch import arch_model

    fit = arch_model(1e4 * returns, mean="Zero", vol="GARCH", p=1, q=1, dist="t").fit(disp="off")
    return float(fit.params["alpha[1]"]), float(fit.params["beta[1]"])


def _facts(series: np.ndarray) -> dict[str, float]:
    facts = stylised_facts(series).summary()
    return {c: facts[c] for c in COLUMNS}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference", type=Path, help="one-minute OHLCV CSV; default: stand-in")
    parser.add_argument("--gan-minutes", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out = HERE / "outputs"
    out.mkdir(exist_ok=True)
    csv = args.reference
    if csv is None:
        csv = out / "reference.csv"
        frame = stand_in_reference(DAYS, 0)
        frame.rename_axis("timestamp").reset_index().to_csv(csv, index=False)
    reference = pd.read_csv(csv)
    reference.index = pd.to_datetime(reference.pop("timestamp"), utc=True)
    real = within_session_returns(reference)
    split = int(FIT_SHARE * real.size)
    train, test = real[:split], real[split:]

    started = time.perf_counter()
    cfg = load_config(["data=csv", f"data.path={csv}", "data.cache=false", "logger=csv",
                       f"paths.outputs_dir={out}", f"seed={args.seed}", f"fit_share={FIT_SHARE}",
                       f"gan.max_minutes={args.gan_minutes}", "gan.steps=100000"],
                      config_name="fit_generator")  # fmt: skip
    gan_path = fit_generator(cfg)
    gan_seconds = time.perf_counter() - started

    alpha, beta = fit_garch(train)
    vol = float(train.std() * np.sqrt(PERIODS_PER_YEAR))
    days = int(np.ceil(test.size / 1379)) + 1
    base = typed({"seed": args.seed, "days": days, "annual_vol": vol}, SyntheticConfig)
    configs = {
        "gbm": {"generator": "monte_carlo"},
        "garch (fitted)": {"generator": "garch", "garch": {"alpha": alpha, "beta": beta}},
        "regime": {"generator": "regime"},
        "jump": {"generator": "jump"},
        "stress": {"generator": "stress"},
        "gan": {"generator": "gan", "gan_path": str(gan_path)},
    }
    rows = {"reference (train part)": train[-test.size :]}  # same process: the floor of each score
    for name, change in configs.items():
        cfg_g = typed({**dataclasses.asdict(base), **change}, SyntheticConfig)
        rows[name] = within_session_returns(generate(cfg_g))[: test.size]
    table = [{"series": "reference (test part)", **_facts(test)}]
    for name, series in rows.items():
        row = {"series": name, **_facts(series)}
        row["discriminative"] = discriminative_score(test, series, seed=args.seed)
        row["tstr_r2"] = train_synthetic_test_real(test, series)["tstr_r2"]
        table.append(row)
    result = pd.DataFrame(table).set_index("series")
    meta = {"reference": str(csv), "returns": int(real.size), "garch": [alpha, beta],
            "annual_vol": vol, "gan_seconds": gan_seconds, "gan": str(gan_path)}  # fmt: skip
    (out / "results.json").write_text(json.dumps({"meta": meta, "table": table}, indent=1))
    print(json.dumps(meta))
    print(result.to_string(float_format=lambda x: f"{x:.3g}"))


if __name__ == "__main__":
    main()

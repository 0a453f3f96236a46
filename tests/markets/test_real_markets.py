"""Train (smoke), evaluate and backtest on real series that ship inside pip packages: hourly EUR/USD
and daily GOOGL (gym-anytrading's datasets) and the daily S&P 500 index (arch's datasets), each on its
instrument preset, with figures a user can trust (docs/architecture.md, "Instruments and trading
time")."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import grandmodel
from grandmodel.evaluation.commands import run_backtest, run_evaluation
from grandmodel.train import train

SMOKE = [
    "experiment=smoke",
    "logger=csv",
    "trainer.total_frames=256",
    "trainer.eval_every_frames=256",
    "data.cache=false",
]


def _anytrading(name: str) -> pd.DataFrame:
    spec = importlib.util.find_spec("gym_anytrading")
    if spec is None or spec.origin is None:
        pytest.skip("gym-anytrading is not installed (pip install -e '.[dev]')")
    return pd.read_csv(Path(spec.origin).parent / "datasets" / "data" / name)


def _eurusd_hourly() -> pd.DataFrame:
    raw = _anytrading("FOREX_EURUSD_1H_ASK.csv")  # Dukascopy ask bars, 2017, stamped in UTC
    stamps = pd.to_datetime(raw["Time"], format="%d.%m.%Y %H:%M:%S.%f", utc=True)
    return raw.drop(columns="Time").assign(timestamp=stamps.dt.strftime("%Y-%m-%d %H:%M:%S%z"))


def _googl_daily() -> pd.DataFrame:
    return (
        _anytrading("STOCKS_GOOGL.csv")
        .drop(columns="Adj Close")
        .rename(columns={"Date": "timestamp"})
    )


def _sp500_daily() -> pd.DataFrame:
    sp500 = pytest.importorskip("arch.data.sp500", reason="arch is not installed (dev extra)")
    frame = sp500.load().drop(columns="Adj Close")  # the S&P 500 index, 1999-2018
    return frame.rename_axis("timestamp").reset_index()


MARKETS = {
    "eurusd_1h": (_eurusd_hourly, ["instrument=eurusd", "data=hourly"]),
    "googl_1d": (_googl_daily, ["instrument=spy", "instrument.symbol=GOOGL", "data=daily"]),
    "sp500_1d": (_sp500_daily, ["instrument=spy", "instrument.symbol=SPX", "data=daily"]),
}


@pytest.fixture(scope="module", params=sorted(MARKETS))
def market_run(request, tmp_path_factory) -> dict:
    """One market: trained at smoke size, evaluated on its test split and backtested (the default
    range: the test split)."""
    load, overrides = MARKETS[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    path = folder / f"{request.param}.csv"
    load().to_csv(path, index=False)
    common = [f"paths.outputs_dir={folder}", "logger=csv"]
    run_dir = folder / "runs" / "train"
    train(
        grandmodel.load_config(
            [*SMOKE, *overrides, f"data.path={path}", *common, f"paths.output_dir={run_dir}"]
        )
    )
    evaluation = run_evaluation(
        grandmodel.load_config(
            [f"run={run_dir}", "counterfactual=false", "trials=1", *common],
            config_name="evaluate",
        )
    )
    backtest = run_backtest(
        grandmodel.load_config([f"run={run_dir}", *common], config_name="backtest")
    )
    return {"name": request.param, "evaluation": evaluation, "backtest": backtest}


def test_figures_are_sane(market_run: dict) -> None:
    metrics = market_run["backtest"]["metrics"]
    hold = market_run["backtest"]["outcomes"]["buy_and_hold"].ledger.decisions
    held = hold[hold["position"] != 0]
    price_change = held["mark"].iloc[-1] / held["fill_price"].iloc[0] - 1.0
    if price_change > 0:
        assert metrics["buy_and_hold"]["total_return"] > 0, (market_run["name"], price_change)
    assert metrics["buy_and_hold"]["trades"] == 0  # held to the end: no stop, no round trip
    random = metrics["random"]
    assert random["trades"] >= 10, market_run["name"]
    assert 0.3 <= random["win_rate"] <= 0.7, (market_run["name"], random["win_rate"])
    for outcome in market_run["evaluation"]["metrics"].values():
        assert np.isfinite(outcome["total_return"]) and outcome["total_return"] > -0.5


def test_buy_and_hold_earns_the_price_change_minus_its_costs(market_run: dict) -> None:
    """Fully invested from its first fill (notional sizing, whole units, no stop): its total return
    is the price change from that fill to the last mark, less its costs, within 0.1 point."""
    outcome = market_run["backtest"]["outcomes"]["buy_and_hold"]
    hold = outcome.ledger.decisions
    start = int(np.flatnonzero(hold["position"].to_numpy() != 0)[0])
    capital = hold["equity"].iloc[0] / (1 + outcome.returns[0])
    price_change = hold["mark"].iloc[-1] / hold["fill_price"].iloc[start] - 1.0
    costs = hold["costs"].iloc[-1] / capital
    assert outcome.metrics["total_return"] == pytest.approx(price_change - costs, abs=1e-3), (
        market_run["name"]
    )

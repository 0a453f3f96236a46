"""Instrument presets: contract, costs and annualisation against hand-computed values; trading-week
bars; the default episode length adapted to short data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import grandmodel
from grandmodel.config import ConfigError, validate
from grandmodel.data.calendars import session_dates, sessions_per_year
from grandmodel.data.resample import resample_bars
from grandmodel.data.timeframes import periods_per_year
from grandmodel.env.execution import CostModel
from grandmodel.errors import GrandModelError

# preset: (multiplier, tick, price, cost per unit per side at that price, bar, periods per year)
PRESETS = {
    "es": (50.0, 0.25, 4000.0, 2.0 + 0.5 * 0.25 * 50, "5min", 23 * 12 * 252),
    "mes": (5.0, 0.25, 4000.0, 0.62 + 0.5 * 0.25 * 5, "5min", 23 * 12 * 252),
    "nq": (20.0, 0.25, 15000.0, 2.0 + 0.5 * 0.25 * 20, "5min", 23 * 12 * 252),
    "cl": (1000.0, 0.01, 75.0, 2.0 + 0.5 * 0.01 * 1000, "30min", 23 * 2 * 252),
    "gc": (100.0, 0.1, 2000.0, 2.0 + 0.5 * 0.1 * 100, "1h", 23 * 252),
    "zn": (1000.0, 1 / 64, 110.0, 1.5 + 0.5 / 64 * 1000, "5min", 23 * 12 * 252),
    "6e": (125000.0, 0.00005, 1.1, 2.0 + 0.5 * 0.00005 * 125000, "1h", 23 * 252),
    # spot FX: 24 h x 5 days x 52 weeks; half a pip of spread as 0.5 bp of notional (micro lots)
    "eurusd": (1000.0, 0.00001, 1.1, 0.00005 * 1.1 * 1000, "1h", 24 * 260),
    # US equities: 09:30-16:00 is 7 hourly bars (the first a half hour), one per day, 50.4 weeks
    "spy": (1.0, 0.01, 450.0, 0.005 + 1.0 * 0.01, "1h", 7 * 252),
}


def _config(instrument: str, *overrides: str):
    return grandmodel.load_config([f"instrument={instrument}", *overrides])


def _bars(bar: str) -> list[str]:
    return [f"data.timeframes.{name}={bar}" for name in ("base", "tactical", "strategic")]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_contract_costs_and_annualisation(name: str) -> None:
    multiplier, tick, price, cost, bar, ppy = PRESETS[name]
    cfg = validate(_config(name, *_bars(bar)))
    assert (cfg.env.contract.multiplier, cfg.env.contract.tick_size) == (multiplier, tick)
    assert cfg.env.contract.symbol == cfg.instrument.symbol
    assert cfg.data.timezone == cfg.instrument.timezone
    unit = CostModel.from_config(cfg.env.costs, cfg.env.contract).per_contract(
        torch.tensor(price, dtype=torch.float64)
    )
    assert float(unit) == pytest.approx(cost, rel=1e-12)
    assert periods_per_year(cfg.data) == pytest.approx(ppy)


@pytest.mark.parametrize(("bar", "ppy"), [("1D", 252.0), ("5D", 252 / 5), ("30min", 13 * 252)])
def test_us_equity_annualisation_by_bar_size(bar: str, ppy: float) -> None:
    cfg = validate(_config("spy", *_bars(bar)))
    assert periods_per_year(cfg.data) == pytest.approx(ppy)


def test_trading_days_agree_with_the_exchange_calendars() -> None:
    """The presets' trading days against exchange_calendars' sessions (holidays included)."""
    instrument = validate(_config("spy")).instrument
    per_year = sessions_per_year(instrument.exchange, 2015, 2024)
    assert abs(instrument.trading_days - per_year) < 1, per_year
    assert len(session_dates("XNYS", "2023-07-03", "2023-07-05")) == 2  # July 4th is a holiday
    with pytest.raises(GrandModelError, match=r"instrument\.exchange: 'NOPE'"):
        session_dates("NOPE", "2023-01-01", "2023-02-01")


def test_a_key_overridden_on_the_command_line_wins_over_the_instrument() -> None:
    cfg = validate(
        _config("eurusd", "env.costs.proportional=0.0001", "instrument.multiplier=100000")
    )
    assert cfg.env.costs.proportional == 0.0001
    assert cfg.env.contract.multiplier == 100000.0
    with pytest.raises(ConfigError, match=r"instrument\.session_hours: expected trading hours"):
        _config("spy", "instrument.session_hours=30")


def _daily(dates: pd.DatetimeIndex) -> pd.DataFrame:
    close = 100.0 + np.arange(len(dates), dtype=float)
    frame = pd.DataFrame(
        {"open": close - 0.5, "high": close + 1, "low": close - 1, "close": close, "volume": 1.0},
        index=dates.rename("timestamp"),
    )
    return frame


def test_five_day_bars_are_trading_weeks_known_after_their_last_day() -> None:
    sessions = session_dates("XNYS", "2023-06-01", "2023-08-31")  # July 4th is a holiday
    dates = sessions.tz_localize("America/New_York")
    daily = _daily(dates)
    weeks = resample_bars(daily, pd.Timedelta(days=5), pd.Timedelta(days=1))
    assert len(weeks) == len(daily) // 5  # the incomplete last week is left out
    for i, row in enumerate(weeks.itertuples()):
        days = daily.iloc[5 * i : 5 * i + 5]
        assert row.Index == days.index[0]
        assert (row.open, row.close) == (days["open"].iloc[0], days["close"].iloc[-1])
        assert (row.high, row.low) == (days["high"].max(), days["low"].min())
        after = (days.index[-1].tz_localize(None) + pd.Timedelta(days=1)).tz_localize(
            "America/New_York"
        )
        assert row.known_ns == after.value
    # prefix-invariant: more days later never change a completed trading week
    assert weeks.iloc[:-1].equals(
        resample_bars(daily.iloc[:-7], pd.Timedelta(days=5), pd.Timedelta(days=1)).iloc[
            : len(weeks) - 1
        ]
    )


def test_the_default_episode_length_is_adapted_to_short_daily_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dates = session_dates("XNYS", "2015-01-01", "2020-12-31").tz_localize("America/New_York")
    rng = np.random.default_rng(0)
    frame = _daily(dates)
    frame[["open", "high", "low", "close"]] = frame[["open", "high", "low", "close"]].add(
        np.cumsum(rng.normal(0, 1, len(frame)))[:, None], axis=0
    )
    frame["high"] = frame[["open", "high", "low", "close"]].max(axis=1)
    frame["low"] = frame[["open", "high", "low", "close"]].min(axis=1)
    path = tmp_path / "daily.csv"
    out = frame.reset_index()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%d")
    out.to_csv(path, index=False)
    cfg = grandmodel.load_config(
        [
            "instrument=spy",
            "data=daily",
            f"data.path={path}",
            "data.episode_length=2000",
            f"paths.outputs_dir={tmp_path}",
            "data.cache=false",
        ]
    )
    data = grandmodel.prepare_data(cfg)
    train_steps = data.split_steps("train")
    assert data.meta["episode_length"] == train_steps // 4
    assert "data.episode_length adapted from the default 2000" in capsys.readouterr().err
    assert data.meta["periods_per_year"]["tactical"] == 252.0

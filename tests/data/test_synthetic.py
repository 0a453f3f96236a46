"""Synthetic ES bars: session calendar, determinism, bar consistency, stylised facts, curriculum."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from grandmodel.config.data import Generator, SyntheticConfig
from grandmodel.data.synthetic import REGIMES, generate, session_index

CHICAGO = "America/Chicago"
MINUTES_PER_YEAR = 252 * 1380
TREND_UP, TREND_DOWN, SIDEWAYS, VOLATILE = (
    REGIMES.index(name) for name in ("trend_up", "trend_down", "sideways", "volatile")
)
# gan needs a fitted generator file: tests/data/test_gan.py
GENERATORS = [g.value for g in Generator if g != Generator.gan]


def _log_returns(frame: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(frame["close"].to_numpy()))


def _annual_vol(frame: pd.DataFrame) -> float:
    return float(_log_returns(frame).std() * np.sqrt(MINUTES_PER_YEAR))


def _acf1(x: np.ndarray) -> float:
    x = x - x.mean()
    return float((x[1:] * x[:-1]).mean() / x.var())


def _runs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label and length of each run of equal labels, the last (truncated) run dropped."""
    starts = np.flatnonzero(np.diff(labels, prepend=-1))
    lengths = np.diff(np.append(starts, labels.size))
    return labels[starts][:-1], lengths[:-1]


def _chicago_minute(index: pd.DatetimeIndex) -> np.ndarray:
    local = index.tz_convert(CHICAGO)
    return np.asarray(local.hour * 60 + local.minute)


def _trading_day(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The trading day a bar belongs to: its Chicago date after shifting 17:00 to midnight."""
    return (index.tz_convert(CHICAGO) + pd.Timedelta(hours=7)).normalize()


# --- calendar ---------------------------------------------------------------------------------


def test_each_trading_day_has_1380_bars_on_weekdays_only() -> None:
    index = session_index("2023-01-02", 15)
    counts = pd.Series(1, index=_trading_day(index)).groupby(level=0).size()
    assert len(index) == 15 * 1380
    assert (counts == 1380).all() and len(counts) == 15
    assert (counts.index.day_of_week < 5).all()
    assert index.name == "timestamp" and str(index.tz) == CHICAGO
    assert index.is_monotonic_increasing and index.is_unique


def test_no_bars_in_the_daily_halt_or_on_saturday() -> None:
    index = session_index("2023-01-02", 15)
    minute = _chicago_minute(index)
    assert not ((minute >= 16 * 60) & (minute < 17 * 60)).any()
    assert not (index.day_of_week == 5).any()
    local = index.tz_convert(CHICAGO)
    assert not ((local.day_of_week == 4) & (minute >= 16 * 60)).any()  # Friday evening
    assert not ((local.day_of_week == 6) & (minute < 17 * 60)).any()  # Sunday before the open


def test_monday_session_opens_sunday_1700_and_weekend_start_rolls_forward() -> None:
    index = session_index("2023-01-02", 1)
    assert index[0] == pd.Timestamp("2023-01-01 17:00", tz=CHICAGO)
    assert index[-1] == pd.Timestamp("2023-01-02 15:59", tz=CHICAGO)
    assert session_index("2022-12-31", 1).equals(index)  # Saturday start -> Monday


@pytest.mark.parametrize("start", ["2023-03-06", "2023-10-30"])  # weeks around DST start / end
def test_dst_weeks_keep_sessions_in_chicago_wall_clock(start: str) -> None:
    index = session_index(start, 10)
    counts = pd.Series(1, index=_trading_day(index)).groupby(level=0).size()
    assert (counts == 1380).all() and len(counts) == 10
    opens = index[::1380].tz_convert(CHICAGO)
    assert (opens.hour == 17).all() and (opens.minute == 0).all()
    assert len({ts.utcoffset() for ts in opens}) == 2  # the offset changes within the span
    steps = np.diff(index.asi8)  # within a session bars are one real minute apart
    within = np.ones(steps.size, bool)
    within[1379::1380] = False
    assert (steps[within] == 60 * 10**9).all()


def test_other_timezone_gives_the_same_instants() -> None:
    chicago = session_index("2023-03-06", 10)
    utc = session_index("2023-03-06", 10, timezone="UTC")
    tokyo = session_index("2023-03-06", 10, timezone="Asia/Tokyo")
    assert str(utc.tz) == "UTC" and str(tokyo.tz) == "Asia/Tokyo"
    np.testing.assert_array_equal(utc.asi8, chicago.asi8)
    np.testing.assert_array_equal(tokyo.asi8, chicago.asi8)
    frame = generate(SyntheticConfig(days=3), timezone="UTC")
    assert frame.index.equals(session_index("2023-01-02", 3, timezone="UTC"))


# --- determinism and bar consistency ------------------------------------------------------------


@pytest.mark.parametrize("generator", GENERATORS)
def test_same_config_same_frame_and_other_seed_other_closes(generator: str) -> None:
    cfg = SyntheticConfig(generator=Generator(generator), days=20, noise_level=0.5)
    first = generate(cfg)
    pd.testing.assert_frame_equal(first, generate(cfg))
    other = generate(dataclasses.replace(cfg, seed=cfg.seed + 1))
    assert not np.array_equal(first["close"].to_numpy(), other["close"].to_numpy())


@pytest.mark.parametrize("generator", GENERATORS)
@pytest.mark.parametrize("days", [1, 30])
def test_bars_are_consistent_and_on_ticks(generator: str, days: int) -> None:
    cfg = SyntheticConfig(generator=Generator(generator), days=days, noise_level=0.3)
    frame = generate(cfg)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "regime"]
    assert (frame.dtypes[:5] == np.float64).all() and frame["regime"].dtype == np.int8
    assert frame.index.equals(session_index(cfg.start, days))
    o, h, lo, c = (frame[k].to_numpy() for k in ("open", "high", "low", "close"))
    assert (lo <= np.minimum(o, c)).all() and (h >= np.maximum(o, c)).all() and (lo > 0).all()
    for prices in (o, h, lo, c):
        ticks = prices / cfg.tick_size
        np.testing.assert_allclose(ticks, np.round(ticks), rtol=0, atol=1e-9)
    volume = frame["volume"].to_numpy()
    assert (volume >= 1).all() and (volume == np.round(volume)).all()
    assert set(np.unique(frame["regime"])) <= set(range(len(REGIMES)))
    if generator != "stress":  # only stress opens sessions away from the previous close
        np.testing.assert_array_equal(o[1:], c[:-1])
    assert o[0] == cfg.initial_price


def test_tick_size_other_than_es() -> None:
    frame = generate(SyntheticConfig(days=3, tick_size=0.1, initial_price=50.0))
    ticks = frame[["open", "high", "low", "close"]].to_numpy() / 0.1
    np.testing.assert_allclose(ticks, np.round(ticks), rtol=0, atol=1e-9)


def test_unknown_generator_or_unmatched_conditions_raise() -> None:
    with pytest.raises(ValueError, match="generator"):
        generate(dataclasses.replace(SyntheticConfig(), generator="x"))
    cfg = SyntheticConfig(days=2, conditions=["volatile"])
    cfg.regimes = [r for r in cfg.regimes if r.name != "volatile"]
    with pytest.raises(ValueError, match="conditions"):
        generate(cfg)


# --- stylised facts -----------------------------------------------------------------------------


def test_monte_carlo_is_uncorrelated_with_the_configured_vol() -> None:
    cfg = SyntheticConfig(generator=Generator.monte_carlo, days=40, annual_drift=0.5)
    frame = generate(cfg)
    returns = _log_returns(frame)
    assert returns.size > 50_000
    assert abs(_acf1(returns)) < 0.03
    assert abs(_annual_vol(frame) / cfg.annual_vol - 1) < 0.1
    assert (frame["regime"] == TREND_UP).all()


def test_garch_has_fat_tails_and_volatility_clustering() -> None:
    cfg = SyntheticConfig(generator=Generator.garch, days=40, initial_price=100_000.0)
    frame = generate(cfg)
    returns = _log_returns(frame)
    assert stats.kurtosis(returns) > 1
    assert _acf1(returns**2) > 0.05 and _acf1(np.abs(returns)) > 0.05
    assert abs(_acf1(returns)) < 0.03
    assert abs(_annual_vol(frame) / cfg.annual_vol - 1) < 0.25  # omega targets annual_vol
    volatile = frame["regime"].to_numpy()[1:] == VOLATILE
    assert 0 < volatile.mean() < 0.5
    assert returns[volatile].std() > 1.5 * returns[~volatile].std()


def test_jumps_fatten_tails_and_are_labelled_volatile() -> None:
    base = SyntheticConfig(generator=Generator.monte_carlo, days=40, initial_price=100_000.0)
    gbm = generate(base)
    jump = generate(dataclasses.replace(base, generator=Generator.jump))
    gbm_kurtosis = stats.kurtosis(_log_returns(gbm))
    assert stats.kurtosis(_log_returns(jump)) > gbm_kurtosis + 5
    minute_sigma = base.annual_vol / np.sqrt(MINUTES_PER_YEAR)
    big = np.flatnonzero(np.abs(_log_returns(jump)) > 10 * minute_sigma) + 1
    assert big.size > 20  # about 2 jumps a day, mostly far beyond 10 sigma
    assert (jump["regime"].to_numpy()[big] == VOLATILE).all()
    assert (jump["regime"] == VOLATILE).mean() < 0.1  # 30 minutes after each jump only


@pytest.fixture(scope="module")
def regime_frame() -> pd.DataFrame:
    return generate(SyntheticConfig(days=300, seed=11))


def test_regimes_have_their_drift_and_vol(regime_frame: pd.DataFrame) -> None:
    returns = _log_returns(regime_frame)
    labels = regime_frame["regime"].to_numpy()[1:]
    mean = {code: returns[labels == code].mean() for code in range(len(REGIMES))}
    vol = {code: returns[labels == code].std() for code in range(len(REGIMES))}
    assert mean[TREND_UP] > 0 > mean[TREND_DOWN]
    assert vol[VOLATILE] > 2 * vol[SIDEWAYS]
    spec = {r.name: r for r in SyntheticConfig().regimes}
    up_drift = mean[TREND_UP] * MINUTES_PER_YEAR
    assert 0.7 * spec["trend_up"].drift < up_drift < 1.3 * spec["trend_up"].drift


def test_regime_durations_and_switches_follow_the_spec(regime_frame: pd.DataFrame) -> None:
    states, lengths = _runs(regime_frame["regime"].to_numpy())
    for spec in SyntheticConfig().regimes:
        code = REGIMES.index(spec.name)
        assert (states == code).sum() > 80
        assert 0.75 < lengths[states == code].mean() / spec.mean_minutes < 1.25
    # a run never continues into the same regime, and the next one is uniform among the others
    for code in range(len(REGIMES)):
        following = states[1:][states[:-1] == code]
        shares = np.bincount(following, minlength=len(REGIMES)) / following.size
        assert shares[code] == 0
        assert (np.delete(shares, code) > 0.2).all()


def test_simple_momentum_has_an_edge_on_30_minute_closes(regime_frame: pd.DataFrame) -> None:
    closes = np.log(regime_frame["close"].to_numpy()[29::30])
    momentum = np.sign(closes[4:-1] - closes[:-5])  # previous two hours
    pnl = momentum * np.diff(closes[4:])
    sharpe = pnl.mean() / pnl.std() * np.sqrt(252 * 46)
    assert 1.0 < sharpe < 12.0  # a clear but far from perfect edge


def test_stress_has_a_crash_gaps_and_keeps_the_regime_path() -> None:
    cfg = SyntheticConfig(generator=Generator.stress, days=40)
    frame = generate(cfg)
    log_close = np.log(frame["close"].to_numpy())
    assert (log_close[15:] - log_close[:-15]).min() <= np.log1p(-cfg.stress.crash_size / 2)
    open_ = frame["open"].to_numpy()
    close = frame["close"].to_numpy()
    jump = np.abs(open_[1:] / close[:-1] - 1)
    gapped = np.flatnonzero(jump > 0.5 * cfg.stress.gap_size) + 1
    assert gapped.size == cfg.stress.gaps and (gapped % 1380 == 0).all()
    np.testing.assert_allclose(jump[gapped - 1], cfg.stress.gap_size, atol=1e-3)
    labels = frame["regime"].to_numpy()
    assert (labels[gapped] == VOLATILE).all()
    calm = generate(dataclasses.replace(cfg, generator=Generator.regime))["regime"].to_numpy()
    outside_events = labels != VOLATILE
    np.testing.assert_array_equal(labels[outside_events], calm[outside_events])


def test_volume_is_u_shaped_over_the_us_session() -> None:
    frame = generate(SyntheticConfig(days=20))
    minute = _chicago_minute(frame.index)
    volume = frame["volume"].to_numpy()
    open_close = ((minute >= 510) & (minute < 540)) | ((minute >= 870) & (minute < 915))
    midday = (minute >= 660) & (minute < 780)
    overnight = (minute >= 17 * 60) | (minute < 510)
    assert volume[open_close].mean() > volume[midday].mean() > volume[overnight].mean()
    opening = volume[(minute >= 510) & (minute < 525)].mean()
    assert opening > volume[(minute >= 870) & (minute < 915)].mean()  # highest at the open


# --- curriculum hooks ---------------------------------------------------------------------------


def test_sideways_condition_visits_only_sideways() -> None:
    frame = generate(SyntheticConfig(days=20, conditions=["sideways"]))
    assert (frame["regime"] == SIDEWAYS).all()


def test_strong_trend_visits_only_longer_stronger_trends() -> None:
    frame = generate(SyntheticConfig(days=200, conditions=["strong_trend"]))
    labels = frame["regime"].to_numpy()
    assert set(np.unique(labels)) == {TREND_UP, TREND_DOWN}
    spec = {r.name: r for r in SyntheticConfig().regimes}
    _, lengths = _runs(labels)
    assert 0.8 * 1.5 < lengths.mean() / spec["trend_up"].mean_minutes < 1.25 * 1.5
    up_drift = _log_returns(frame)[labels[1:] == TREND_UP].mean() * MINUTES_PER_YEAR
    assert 1.25 < up_drift / spec["trend_up"].drift < 1.75


def test_trend_and_volatile_union() -> None:
    frame = generate(SyntheticConfig(days=60, conditions=["trend", "volatile"]))
    assert set(np.unique(frame["regime"])) == {TREND_UP, TREND_DOWN, VOLATILE}


@pytest.mark.parametrize("generator", ["regime", "monte_carlo", "garch"])
def test_volatility_range_sets_the_realised_vol(generator: str) -> None:
    cfg = SyntheticConfig(generator=Generator(generator), days=30, volatility_range=[0.5, 0.6])
    assert 0.45 < _annual_vol(generate(cfg)) < 0.66


def test_noise_makes_minute_returns_mean_revert() -> None:
    cfg = SyntheticConfig(days=30)
    clean = _acf1(_log_returns(generate(cfg)))
    noisy = _acf1(_log_returns(generate(dataclasses.replace(cfg, noise_level=1.0))))
    assert abs(clean) < 0.03
    assert noisy < clean - 0.2

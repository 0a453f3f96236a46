"""Metrics: parity with empyrical-reloaded on intraday annualisation, hand fixtures, edge cases."""

from __future__ import annotations

import math
from statistics import NormalDist

import empyrical as ep
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from grandmodel.evaluation import metrics as m

PPY = 23 * 3600 * 252 / 300  # 5-minute ES bars: 69,552 a year


def _series() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    drawdown = np.concatenate(
        [
            rng.normal(1e-4, 5e-4, 1000),
            rng.normal(-5e-4, 5e-4, 800),
            rng.normal(2e-4, 5e-4, 1200),
        ]
    )
    return {
        "normal": rng.normal(2e-5, 1e-3, 5000),
        "student_t": rng.standard_t(3, 5000) * 5e-4 + 1e-5,
        "drawdown": drawdown,
        "losing": rng.normal(-3e-5, 1e-3, 3000),
        "three": np.array([0.01, -0.02, 0.005]),
        "two": np.array([0.01, -0.01]),
    }


SERIES = _series()

# (ours, empyrical after the documented conversion)
PARITY = {
    "sharpe": (lambda r: m.sharpe_ratio(r, PPY), lambda r: ep.sharpe_ratio(r, annualization=PPY)),
    "sharpe_rf": (
        lambda r: m.sharpe_ratio(r, PPY, risk_free=0.04),
        lambda r: ep.sharpe_ratio(r, risk_free=0.04 / PPY, annualization=PPY),
    ),
    "sortino": (
        lambda r: m.sortino_ratio(r, PPY),
        lambda r: ep.sortino_ratio(r, annualization=PPY),
    ),
    "sortino_mar": (
        lambda r: m.sortino_ratio(r, PPY, required_return=0.05),
        lambda r: ep.sortino_ratio(r, required_return=0.05 / PPY, annualization=PPY),
    ),
    "annual_volatility": (
        lambda r: m.annual_volatility(r, PPY),
        lambda r: ep.annual_volatility(r, annualization=PPY),
    ),
    "annual_return": (
        lambda r: m.annual_return(r, PPY),
        lambda r: ep.annual_return(r, annualization=PPY),
    ),
    "max_drawdown": (lambda r: m.max_drawdown(r, from_returns=True), lambda r: -ep.max_drawdown(r)),
    "calmar": (lambda r: m.calmar_ratio(r, PPY), lambda r: ep.calmar_ratio(r, annualization=PPY)),
    "var": (lambda r: m.value_at_risk(r, 0.95), lambda r: ep.value_at_risk(r, cutoff=0.05)),
    "var_99": (lambda r: m.value_at_risk(r, 0.99), lambda r: ep.value_at_risk(r, cutoff=0.01)),
    "cvar": (
        lambda r: m.conditional_value_at_risk(r, 0.95),
        lambda r: ep.conditional_value_at_risk(r, cutoff=0.05),
    ),
}


@pytest.mark.parametrize("series", list(SERIES))
@pytest.mark.parametrize("metric", list(PARITY))
def test_parity_with_empyrical(metric: str, series: str) -> None:
    ours, theirs = PARITY[metric]
    r = SERIES[series]
    expected = theirs(r)
    assert not math.isnan(expected) or series in ("two", "three")
    assert ours(r) == pytest.approx(expected, rel=1e-9, abs=1e-15, nan_ok=True)


def test_drawdown_series_hits_the_right_magnitude() -> None:
    # the loss segment of "drawdown" is ~800 bars at -5e-4: a drawdown of roughly 1 - e^-0.4
    assert 0.25 < m.max_drawdown(SERIES["drawdown"], from_returns=True) < 0.40


def test_documented_divergences_from_empyrical() -> None:
    constant = np.full(10, 1e-3)
    assert math.isinf(ep.sharpe_ratio(constant, annualization=PPY))
    assert math.isnan(m.sharpe_ratio(constant, PPY))
    flat = np.zeros(10)  # a policy that never moves equity
    assert math.isnan(ep.sharpe_ratio(flat, annualization=PPY))
    assert m.sharpe_ratio(flat, PPY) == 0.0 and m.sortino_ratio(flat, PPY) == 0.0
    assert math.isnan(m.sharpe_ratio(flat, PPY, risk_free=0.04))  # constant non-zero excess
    all_up = np.array([0.01, 0.02, 0.005])
    assert math.isinf(ep.sortino_ratio(all_up, annualization=PPY))
    assert math.isnan(m.sortino_ratio(all_up, PPY))
    ruin = np.array([0.5, -1.0, 0.1])
    assert m.annual_return(ruin, PPY) == -1.0


def _returns(equity: np.ndarray) -> np.ndarray:
    return np.diff(equity) / equity[:-1]


def test_equity_curve_and_max_drawdown_by_hand() -> None:
    np.testing.assert_allclose(m.equity_curve([0.1, -0.1], 100.0), [100.0, 110.0, 99.0])
    np.testing.assert_array_equal(m.equity_curve([]), [1.0])
    equity = np.array([100.0, 120.0, 90.0, 130.0, 65.0])
    assert m.max_drawdown(equity) == pytest.approx(0.5)
    assert m.max_drawdown(_returns(equity), from_returns=True) == pytest.approx(0.5)
    assert m.max_drawdown([100.0, 101.0, 102.0]) == 0.0


def test_drawdown_duration_by_hand() -> None:
    # below the peak at bars 2-3 (back at 105 on bar 4), then bars 6-8 until the end
    assert m.drawdown_duration([100, 105, 103, 104, 105, 106, 101, 100, 99]) == 3
    assert m.drawdown_duration([1, 2, 1.5, 1.5, 1.5, 1.5, 2.5, 2]) == 4
    assert m.drawdown_duration([1, 2, 3]) == 0
    assert m.drawdown_duration([]) == 0


def test_value_at_risk_by_hand() -> None:
    r = np.arange(-10, 10) / 100.0  # -0.10 ... 0.09
    # 5th percentile at position 19 * 0.05 = 0.95 between -0.10 and -0.09
    assert m.value_at_risk(r) == pytest.approx(-0.10 + 0.95 * 0.01)
    assert m.conditional_value_at_risk(r) == pytest.approx(-0.10)
    r = SERIES["student_t"]
    assert m.conditional_value_at_risk(r) == pytest.approx(r[r <= m.value_at_risk(r)].mean())
    with pytest.raises(ValueError):
        m.value_at_risk(r, level=1.0)


def test_trade_stats_by_hand() -> None:
    out = m.trade_stats(np.array([100.0, -50, 200, 0, -150, 50]), np.array([3, 5, 2, 1, 4, 9]))
    assert out == pytest.approx(
        {
            "n_trades": 6,
            "win_rate": 0.5,
            "profit_factor": 350 / 200,
            "average_win": 350 / 3,
            "average_loss": -100.0,
            "largest_win": 200.0,
            "largest_loss": -150.0,
            "average_duration": 4.0,
        }
    )
    assert m.trade_stats([10.0, 20.0])["profit_factor"] == math.inf
    assert math.isnan(m.trade_stats([10.0, 20.0])["average_loss"])
    assert math.isnan(m.trade_stats([0.0, 0.0])["profit_factor"])
    none = m.trade_stats(np.array([]))
    assert none["n_trades"] == 0
    assert all(math.isnan(v) for k, v in none.items() if k != "n_trades")
    with pytest.raises(ValueError):
        m.trade_stats([1.0, 2.0], [1])


def test_distribution_stats_by_the_moment_formulas() -> None:
    v = SERIES["student_t"]
    out = m.distribution_stats(v)
    dev = v - v.mean()
    m2 = np.mean(dev**2)
    expected = {
        "mean": v.mean(),
        "std": v.std(ddof=1),
        "median": np.median(v),
        "min": v.min(),
        "max": v.max(),
        "skewness": np.mean(dev**3) / m2**1.5,  # biased moments
        "kurtosis": np.mean(dev**4) / m2**2 - 3.0,  # excess
    }
    assert out == pytest.approx(expected, rel=1e-10)
    assert out["kurtosis"] > 1  # fat tails, excess scale
    assert math.isnan(m.distribution_stats([1.0])["std"])
    constant = m.distribution_stats([0.1, 0.1, 0.1])
    assert constant["std"] == 0.0 and math.isnan(constant["skewness"])
    assert all(math.isnan(x) for x in m.distribution_stats([]).values())


def test_exposure_stats_by_hand() -> None:
    out = m.exposure_stats(
        positions=[0, 2, 2, -1, 0],
        prices=[100.0, 101.0, 102.0, 103.0, 104.0],
        multiplier=50.0,
        equity=[10_000.0, 10_100.0, 10_200.0, 10_000.0, 9_700.0],
        periods_per_year=1000.0,
    )
    traded = 2 * 101 * 50 + 3 * 103 * 50 + 1 * 104 * 50  # 30,750 over mean equity 10,000
    assert out == pytest.approx(
        {
            "turnover": traded / 10_000,
            "annual_turnover": traded / 10_000 * 1000 / 5,
            "average_exposure": (1.0 + 1.0 + 103 * 50 / 10_000) / 5,
            "max_exposure": 1.0,
            "time_in_market": 0.6,
        }
    )
    assert math.isnan(m.exposure_stats([1], [100.0], 50.0, [1e4])["annual_turnover"])
    with pytest.raises(ValueError):
        m.exposure_stats([0, 1], [1.0], 50.0, [1.0, 1.0])


def test_contribution_stats_by_hand() -> None:
    out = m.contribution_stats(
        {"a": np.array([1.0, 2, 3, 4]), "flat": np.ones(4)}, np.array([1.0, 3, 2, 5])
    )
    assert out["a"] == pytest.approx(
        {
            "mean_contribution": 2.5,
            "std_contribution": math.sqrt(5 / 3),
            "correlation_with_total": 5.5 / math.sqrt(5 * 8.75),
        }
    )
    assert math.isnan(out["flat"]["correlation_with_total"])
    with pytest.raises(ValueError):
        m.contribution_stats({"a": [1.0]}, [1.0, 2.0])


def test_performance_summary() -> None:
    r = SERIES["drawdown"]
    equity = m.equity_curve(r, 1e5)
    np.testing.assert_allclose(equity, 1e5 * np.concatenate(([1.0], np.cumprod(1 + r))))
    out = m.performance_summary(r, PPY, trades_pnl=[5.0, -2.0], risk_free=0.02)
    assert out["sharpe"] == pytest.approx(
        ep.sharpe_ratio(r, risk_free=0.02 / PPY, annualization=PPY)
    )
    assert out["max_drawdown"] == pytest.approx(-ep.max_drawdown(r))
    assert out["cvar_95"] == pytest.approx(ep.conditional_value_at_risk(r))
    assert out["total_return"] == pytest.approx(equity[-1] / equity[0] - 1)
    assert out["max_drawdown_duration"] == m.drawdown_duration(equity) > 100
    assert out["n_periods"] == r.size
    assert out["profit_factor"] == 2.5
    assert "n_trades" not in m.performance_summary(r, PPY)


EDGE_EQUITY = {
    "empty": [],
    "single": [100.0],
    "two": [100.0, 101.0],
    "constant": [100.0] * 5,
    "rising": [100.0, 101.0, 103.0, 104.0],
    "ruined": [100.0, 50.0, 0.0],
}


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("case", list(EDGE_EQUITY))
def test_edge_cases_give_nan_without_warnings(case: str) -> None:
    equity = np.array(EDGE_EQUITY[case])
    returns = _returns(equity)
    out = m.performance_summary(returns, PPY, trades_pnl=[], trade_durations=[])
    assert set(out) >= {"sharpe", "sortino", "calmar", "var_95", "cvar_95", "win_rate"}
    if case in ("empty", "single", "two"):
        assert math.isnan(out["sharpe"]) and math.isnan(out["sortino"])
    if case == "constant":  # a flat policy: no return for no risk (the documented convention)
        assert out["sharpe"] == 0.0 and out["sortino"] == 0.0
    if case in ("constant", "rising"):
        assert out["max_drawdown"] == 0.0 and math.isnan(out["calmar"])
    if case == "ruined":
        assert out["annual_return"] == -1.0 and out["max_drawdown"] == 1.0
    m.exposure_stats(np.zeros(equity.size), equity, 50.0, equity)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(1e-3, 1e6, allow_subnormal=False), min_size=1, max_size=60))
def test_max_drawdown_in_unit_interval(equity: list[float]) -> None:
    assert 0.0 <= m.max_drawdown(np.array(equity)) < 1.0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(-0.1, 0.1, allow_subnormal=False), min_size=2, max_size=60),
    st.floats(0.01, 100.0),
)
def test_sharpe_scale_invariant(returns: list[float], scale: float) -> None:
    r = np.array(returns)
    assume(r.std() > 1e-8)
    assert m.sharpe_ratio(r * scale, PPY) == pytest.approx(m.sharpe_ratio(r, PPY), rel=1e-6)


def test_sharpe_lower_bound_by_hand() -> None:
    r = [0.012, -0.004, 0.007, 0.0, -0.009, 0.015, 0.003, -0.002]
    n = len(r)
    mean = sum(r) / n
    centred = [x - mean for x in r]
    m2, m3, m4 = (sum(c**k for c in centred) / n for k in (2, 3, 4))
    sr = mean / math.sqrt(m2 * n / (n - 1))
    g3, g4 = m3 / m2**1.5, m4 / m2**2  # biased skewness, non-excess kurtosis
    variance = 1 - g3 * sr + (g4 - 1) / 4 * sr**2
    z = NormalDist().inv_cdf(0.95)
    bound = (sr - z * math.sqrt(variance / (n - 1))) * math.sqrt(PPY)
    assert m.sharpe_lower_bound(r, PPY) == pytest.approx(bound, rel=1e-12)
    assert m.sharpe_variance_term(r, sr) == pytest.approx(variance, rel=1e-12)
    z99 = NormalDist().inv_cdf(0.99)
    assert m.sharpe_lower_bound(r, PPY, 0.99) == pytest.approx(
        (sr - z99 * math.sqrt(variance / (n - 1))) * math.sqrt(PPY), rel=1e-12
    )


def test_sharpe_lower_bound_covers_the_true_sharpe_ratio() -> None:
    """Independent check: on i.i.d. normal returns with a known Sharpe ratio the 95% bound lies
    below it in about 95% of samples (Lo 2002: V = 1 + SR²/2 for normal returns)."""
    rng = np.random.default_rng(5)
    true_sr, n = 0.1, 400  # per period
    samples = rng.normal(true_sr * 1e-3, 1e-3, (2000, n))
    bounds = np.array([m.sharpe_lower_bound(s, 1.0) for s in samples])
    coverage = np.mean(bounds < true_sr)
    assert 0.93 < coverage < 0.97, coverage
    sr = samples.mean(axis=1) / samples.std(axis=1, ddof=1)
    lo = sr - NormalDist().inv_cdf(0.95) * np.sqrt((1 + sr**2 / 2) / (n - 1))
    np.testing.assert_allclose(bounds, lo, atol=5e-3)


def test_sharpe_lower_bound_edge_cases() -> None:
    assert m.sharpe_lower_bound(np.zeros(50), PPY) == 0.0  # flat: a Sharpe ratio of 0 for certain
    assert math.isnan(m.sharpe_lower_bound(np.full(50, 1e-3), PPY))
    assert math.isnan(m.sharpe_lower_bound([0.01], PPY))
    with pytest.raises(ValueError):
        m.sharpe_lower_bound([0.01, 0.02], PPY, level=1.5)
    r = SERIES["normal"]  # the bound of the same Sharpe ratio tightens with the sample length
    assert m.sharpe_lower_bound(r[:500], PPY) < m.sharpe_lower_bound(np.tile(r[:500], 8), PPY)
    assert m.performance_summary(r, PPY)["sharpe_lcb"] == m.sharpe_lower_bound(r, PPY)

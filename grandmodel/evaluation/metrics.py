"""Performance metrics of one equity curve: numpy in, floats and dicts out.

Returns are per-period simple returns of account equity at the bar frequency; every annualised
figure takes ``periods_per_year`` explicitly (ES: bars per 23 h x 252 days, never 252 for intraday
bars; the data layer's ``grandmodel.data.timeframes.periods_per_year`` computes it). Inputs are expected NaN-free. Where a value is undefined (too few observations, a zero
denominator) the result is ``nan``; no function raises for data or emits numpy RuntimeWarnings.
Where empyrical-reloaded defines the same quantity the values match it; each docstring says how.

One convention for a policy that never moves equity (every excess return exactly zero, e.g. always
flat): its Sharpe and Sortino ratios are ``0`` (no return for no risk), not ``nan``, so that it
ranks between winners and losers wherever ratios are compared: checkpoint selection, sweeps,
reports. Other zero-dispersion samples (constant non-zero returns) stay ``nan``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import kurtosis, norm, skew

NAN = float("nan")


def _arr(values: ArrayLike) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel()


def _tail(level: float) -> float:
    """``1 - level``, rounded so that 0.95 gives exactly 0.05 (as empyrical's ``cutoff``)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return round(1.0 - level, 10)


def equity_curve(returns: ArrayLike, start: float = 1.0) -> np.ndarray:
    """``start`` then ``start * cumprod(1 + r)``: the one way per-step returns become equity.

    Several windows (evaluation episodes, walk-forward folds) are chained by concatenating their
    returns in time order, each window having started from the same capital.
    """
    return start * np.concatenate(([1.0], np.cumprod(1.0 + _arr(returns))))


def sharpe_ratio(returns: ArrayLike, periods_per_year: float, risk_free: float = 0.0) -> float:
    """``mean(r - rf) / std(r - rf, ddof=1) * sqrt(periods_per_year)``, rf = ``risk_free / periods``.

    ``risk_free`` is an annual rate. Equals ``empyrical.sharpe_ratio(r, risk_free=risk_free /
    periods_per_year, annualization=periods_per_year)`` (also ddof=1), except that ``nan`` is
    for a flat policy (every excess return zero: ``0``, as the module docstring says) and ``nan``
    for other zero dispersion (empyrical: ``inf`` for constant non-zero returns). ``nan`` for
    fewer than 2 observations.
    """
    r = _arr(returns) - risk_free / periods_per_year
    if r.size < 2:
        return NAN
    if np.ptp(r) == 0:
        return 0.0 if r[0] == 0 else NAN
    return float(r.mean() / r.std(ddof=1) * math.sqrt(periods_per_year))


def sharpe_variance_term(returns: ArrayLike, sharpe: float) -> float:
    """``1 - g3 SR + (g4 - 1) / 4 SR²``: ``(n - 1)`` times the sampling variance of the per-period
    Sharpe ratio ``SR`` of ``returns`` (Mertens 2002, Opdyke 2007; Lo 2002's ``1 + SR² / 2`` for
    normal returns), with the biased skewness ``g3`` and the non-excess kurtosis ``g4``. ``nan``
    for constant returns."""
    moments = distribution_stats(returns)
    g3, g4 = moments["skewness"], moments["kurtosis"] + 3.0
    return 1.0 - g3 * sharpe + (g4 - 1.0) / 4.0 * sharpe**2


def sharpe_lower_bound(returns: ArrayLike, periods_per_year: float, level: float = 0.95) -> float:
    """One-sided ``level`` lower confidence bound of the annualised Sharpe ratio:
    ``(SR - z_level sqrt(V / (n - 1))) sqrt(periods_per_year)``, ``SR`` the per-period Sharpe
    ratio and ``V`` :func:`sharpe_variance_term` (Lo 2002's asymptotic standard error, for
    non-normal returns as in Mertens 2002; the one the Probabilistic Sharpe Ratio of Bailey &
    López de Prado uses, so that ``PSR(SR* = bound) = level``).

    ``0`` for a flat policy (every return zero: a Sharpe ratio of 0 for certain); ``nan`` for fewer
    than 2 returns, other constant returns, or ``V <= 0``. Steps count as independent draws, so n
    steps bound the Sharpe ratio about as tightly however few trades made the returns (training's
    checkpoint selection also asks for ``trainer.selection.min_trades``).
    """
    z = float(norm.ppf(1.0 - _tail(level)))
    r = _arr(returns)
    sr = sharpe_ratio(r, 1.0)
    if math.isnan(sr) or not r.any():
        return sr
    variance = sharpe_variance_term(r, sr)
    if not variance > 0:
        return NAN
    return float((sr - z * math.sqrt(variance / (r.size - 1))) * math.sqrt(periods_per_year))


def sortino_ratio(
    returns: ArrayLike, periods_per_year: float, required_return: float = 0.0
) -> float:
    """``mean(r - m) / sqrt(mean(min(r - m, 0)^2)) * sqrt(periods_per_year)``, m = MAR per period.

    ``required_return`` is an annual minimum acceptable return, ``m = required_return /
    periods_per_year`` (the convention of :func:`sharpe_ratio`). Equals ``empyrical.sortino_ratio(r,
    required_return=m, annualization=periods_per_year)``, except ``0`` for a flat policy (every
    excess return zero) and ``nan`` (empyrical: ``inf``) when no return falls below ``m``. ``nan``
    for fewer than 2 observations.
    """
    excess = _arr(returns) - required_return / periods_per_year
    if excess.size < 2:
        return NAN
    if not excess.any():
        return 0.0
    downside = float(np.sqrt(np.mean(np.minimum(excess, 0.0) ** 2)))  # empyrical's downside_risk
    if downside == 0:
        return NAN
    return float(excess.mean() / downside * math.sqrt(periods_per_year))


def annual_volatility(returns: ArrayLike, periods_per_year: float) -> float:
    """``std(r, ddof=1) * sqrt(periods_per_year)`` = ``empyrical.annual_volatility``; nan if n < 2."""
    r = _arr(returns)
    if r.size < 2:
        return NAN
    return float(r.std(ddof=1) * math.sqrt(periods_per_year))


def annual_return(returns: ArrayLike, periods_per_year: float) -> float:
    """CAGR ``prod(1 + r) ** (periods_per_year / n) - 1`` = ``empyrical.annual_return``.

    ``nan`` when empty; ``-1`` when equity ends at or below zero (empyrical: ``nan`` below zero);
    ``inf`` when a short, strongly growing sample overflows on annualising.
    """
    r = _arr(returns)
    if r.size == 0:
        return NAN
    with np.errstate(over="ignore"):
        growth = np.prod(1.0 + r)
        return -1.0 if growth <= 0 else float(growth ** (periods_per_year / r.size) - 1.0)


def max_drawdown(equity_or_returns: ArrayLike, *, from_returns: bool = False) -> float:
    """``max_t (1 - equity_t / max_{s<=t} equity_s)``, a positive fraction (0 = never below a peak).

    With ``from_returns`` the equity is ``cumprod(1 + r)`` started at 1 (the start counts as a
    peak), so the value equals ``-empyrical.max_drawdown(r)`` (empyrical's is <= 0). ``nan`` when
    empty. Equity is expected positive.
    """
    eq = _arr(equity_or_returns)
    if eq.size == 0:
        return NAN
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if from_returns:
            eq = equity_curve(eq)
        return float(np.max(1.0 - eq / np.maximum.accumulate(eq)))


def drawdown_duration(equity: ArrayLike) -> int:
    """Longest run of consecutive periods with equity strictly below its running peak.

    A run ends when equity gets back to the peak (or at the end of the data). 0 when never below a
    peak or empty. Not defined by empyrical.
    """
    eq = _arr(equity)
    if eq.size == 0:
        return 0
    below = eq < np.maximum.accumulate(eq)
    if not below.any():
        return 0
    edges = np.diff(np.concatenate(([0], below.astype(np.int8), [0])))
    return int(np.max(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)))


def calmar_ratio(returns: ArrayLike, periods_per_year: float) -> float:
    """``annual_return / max_drawdown`` = ``empyrical.calmar_ratio``; nan without drawdown or if inf."""
    mdd = max_drawdown(returns, from_returns=True)
    if not mdd > 0:
        return NAN
    ratio = annual_return(returns, periods_per_year) / mdd
    return ratio if math.isfinite(ratio) else NAN


def value_at_risk(returns: ArrayLike, level: float = 0.95) -> float:
    """Historical VaR: the ``(1 - level)`` percentile of period returns (linear interpolation).

    A return, typically negative (a loss of 2% is ``-0.02``), not a positive loss figure. Equals
    ``empyrical.value_at_risk(r, cutoff=1 - level)``. ``nan`` when empty.
    """
    r = _arr(returns)
    if r.size == 0:
        return NAN
    return float(np.percentile(r, 100.0 * _tail(level)))


def conditional_value_at_risk(returns: ArrayLike, level: float = 0.95) -> float:
    """Historical CVaR (expected shortfall): mean of the ``k + 1`` lowest returns,
    ``k = floor((n - 1) * (1 - level))`` — the returns at or below the VaR percentile (without ties).

    Same sign convention as :func:`value_at_risk`; equals
    ``empyrical.conditional_value_at_risk(r, cutoff=1 - level)``. ``nan`` when empty.
    """
    r = _arr(returns)
    if r.size == 0:
        return NAN
    k = int((r.size - 1) * _tail(level))
    return float(np.mean(np.partition(r, k)[: k + 1]))


def distribution_stats(values: ArrayLike) -> dict[str, float]:
    """mean, std (ddof=1), median, min, max, skewness, kurtosis of ``values``.

    ``skewness = m3 / m2^1.5`` and ``kurtosis = m4 / m2^2 - 3`` (excess) from the biased central
    moments: ``scipy.stats.skew`` / ``scipy.stats.kurtosis`` with their defaults (``bias=True``,
    as in empyrical's perf stats). ``nan`` where undefined: everything when empty, std for n < 2,
    skewness and kurtosis for constant values.
    """
    v = _arr(values)
    if v.size == 0:
        return dict.fromkeys(("mean", "std", "median", "min", "max", "skewness", "kurtosis"), NAN)
    constant = np.ptp(v) == 0 or float(np.mean((v - v.mean()) ** 2)) == 0
    return {
        "mean": float(v.mean()),
        "std": NAN if v.size < 2 else 0.0 if constant else float(v.std(ddof=1)),
        "median": float(np.median(v)),
        "min": float(v.min()),
        "max": float(v.max()),
        "skewness": NAN if constant else float(skew(v)),
        "kurtosis": NAN if constant else float(kurtosis(v)),
    }


def trade_stats(pnl: ArrayLike, durations: ArrayLike | None = None) -> dict[str, float]:
    """Per closed round trip: wins are ``pnl > 0``, losses ``pnl < 0`` (flat trades are neither).

    ``win_rate = wins / n_trades``; ``profit_factor = sum(wins) / |sum(losses)|`` (``inf`` with wins
    and no losses, ``nan`` with neither); ``average_loss`` and ``largest_loss`` are negative
    (largest = most negative); ``average_duration`` = mean of ``durations`` (periods per trade).
    Means and extremes of an empty group are ``nan``; every rate is ``nan`` with no trades.
    """
    p = _arr(pnl)
    wins, losses = p[p > 0], p[p < 0]
    gross_win, gross_loss = float(wins.sum()), float(-losses.sum())
    no_loss = math.inf if gross_win > 0 else NAN
    profit_factor = gross_win / gross_loss if gross_loss > 0 else no_loss
    d = _arr(durations) if durations is not None else np.empty(0)
    if durations is not None and d.size != p.size:
        raise ValueError(f"durations has {d.size} values, pnl has {p.size}")
    return {
        "n_trades": int(p.size),
        "win_rate": wins.size / p.size if p.size else NAN,
        "profit_factor": profit_factor,
        "average_win": float(wins.mean()) if wins.size else NAN,
        "average_loss": float(losses.mean()) if losses.size else NAN,
        "largest_win": float(wins.max()) if wins.size else NAN,
        "largest_loss": float(losses.min()) if losses.size else NAN,
        "average_duration": float(d.mean()) if d.size else NAN,
    }


def exposure_stats(
    positions: ArrayLike,
    prices: ArrayLike,
    multiplier: float,
    equity: ArrayLike,
    *,
    periods_per_year: float | None = None,
) -> dict[str, float]:
    """Exposure and turnover from per-bar positions (contracts held over the bar), prices, equity.

    Traded notional = ``sum_t |pos_t - pos_{t-1}| * price_t * multiplier`` with a flat start
    (``pos_{-1} = 0``). ``turnover`` = traded notional / mean equity, ``annual_turnover`` = turnover
    ``* periods_per_year / n`` (``nan`` unless ``periods_per_year`` is given); ``average_exposure``
    and ``max_exposure`` = mean and max of ``|pos| * price * multiplier / equity``;
    ``time_in_market`` = fraction of bars with a non-zero position. All ``nan`` when empty.
    """
    pos, px, eq = _arr(positions), _arr(prices), _arr(equity)
    if not pos.size == px.size == eq.size:
        raise ValueError(
            f"positions, prices, equity differ in length: {pos.size}, {px.size}, {eq.size}"
        )
    if pos.size == 0:
        keys = ("turnover", "annual_turnover", "average_exposure", "max_exposure", "time_in_market")
        return dict.fromkeys(keys, NAN)
    traded = float(np.sum(np.abs(np.diff(pos, prepend=0.0)) * px) * multiplier)
    with np.errstate(divide="ignore", invalid="ignore"):
        exposure = np.abs(pos) * px * multiplier / eq
        turnover = float(traded / eq.mean())
    return {
        "turnover": turnover,
        "annual_turnover": turnover * periods_per_year / pos.size if periods_per_year else NAN,
        "average_exposure": float(exposure.mean()),
        "max_exposure": float(exposure.max()),
        "time_in_market": float(np.mean(pos != 0)),
    }


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; ``nan`` for fewer than 2 points or a constant series."""
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return NAN
    return float(np.corrcoef(a, b)[0, 1])


def contribution_stats(
    contributions: dict[str, ArrayLike], total: ArrayLike
) -> dict[str, dict[str, float]]:
    """Per agent: ``mean_contribution``, ``std_contribution`` (ddof=1, ``nan`` if n < 2) and
    ``correlation_with_total`` (Pearson, ``nan`` if either series is constant or n < 2)."""
    t = _arr(total)
    out: dict[str, dict[str, float]] = {}
    for name, values in contributions.items():
        c = _arr(values)
        if c.size != t.size:
            raise ValueError(f"contribution {name!r} has {c.size} values, total has {t.size}")
        out[name] = {
            "mean_contribution": float(c.mean()) if c.size else NAN,
            "std_contribution": float(c.std(ddof=1)) if c.size > 1 else NAN,
            "correlation_with_total": _correlation(c, t),
        }
    return out


def performance_summary(
    returns: ArrayLike,
    periods_per_year: float,
    *,
    trades_pnl: ArrayLike | None = None,
    trade_durations: ArrayLike | None = None,
    risk_free: float = 0.0,
) -> dict[str, float]:
    """All single-curve metrics of per-step ``returns`` with stable keys; the equity is their
    :func:`equity_curve` from 1 (drawdowns and total return do not depend on the capital).

    Keys: sharpe, sharpe_lcb (its one-sided 95% lower bound), sortino (MAR =
    ``risk_free``), calmar, annual_return, annual_volatility, max_drawdown, max_drawdown_duration,
    var_95, cvar_95, total_return (``prod(1 + r) - 1``), n_periods (number of returns), plus the
    :func:`trade_stats` keys when ``trades_pnl`` is given.
    """
    r = _arr(returns)
    eq = equity_curve(r)
    out: dict[str, float] = {
        "sharpe": sharpe_ratio(r, periods_per_year, risk_free),
        "sharpe_lcb": sharpe_lower_bound(r - risk_free / periods_per_year, periods_per_year),
        "sortino": sortino_ratio(r, periods_per_year, risk_free),
        "calmar": calmar_ratio(r, periods_per_year),
        "annual_return": annual_return(r, periods_per_year),
        "annual_volatility": annual_volatility(r, periods_per_year),
        "max_drawdown": max_drawdown(eq),
        "max_drawdown_duration": drawdown_duration(eq),
        "var_95": value_at_risk(r, 0.95),
        "cvar_95": conditional_value_at_risk(r, 0.95),
        "total_return": float(eq[-1] - 1.0),
        "n_periods": int(r.size),
    }
    if trades_pnl is not None:
        out.update(trade_stats(trades_pnl, trade_durations))
    return out

"""Honest statistics of a Sharpe ratio: bootstrap CI, Probabilistic and Deflated Sharpe Ratio.

PSR and DSR follow Bailey & López de Prado ("The Sharpe Ratio Efficient Frontier", 2012; "The
Deflated Sharpe Ratio", 2014). They work on the PER-PERIOD Sharpe ratio ``SR = mean / std(ddof=1)``
of the bar returns (not annualised), with the biased sample skewness ``g3`` and the NON-excess
kurtosis ``g4`` (normal = 3). Undefined values are ``nan``; invalid arguments raise ``ValueError``.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm

from grandmodel.evaluation.metrics import sharpe_ratio, sharpe_variance_term

NAN = float("nan")
_CHUNK_ELEMENTS = 4_000_000  # bootstrap draws per vectorised batch (bounds memory)


def bootstrap_sharpe_ci(
    returns: ArrayLike,
    periods_per_year: float,
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    block: int | None = None,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI ``(lo, hi)`` of the annualised Sharpe ratio.

    ``block=None``: i.i.d. resampling of the returns. ``block=b``: stationary bootstrap (Politis &
    Romano 1994) for autocorrelated returns — blocks of geometric length with mean ``b`` starting
    at uniform positions, wrapping around the end. Resamples with zero dispersion are dropped.
    Seeded by ``numpy.random.default_rng(seed)``. ``(nan, nan)`` with fewer than 2 returns.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1 or (block is not None and block < 1):
        raise ValueError(f"need n_boot >= 1 and block >= 1, got {n_boot}, {block}")
    r = np.asarray(returns, dtype=np.float64).ravel()
    n = r.size
    if n < 2:
        return NAN, NAN
    rng = np.random.default_rng(seed)
    steps = np.arange(n)
    sharpes = []
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, rows_per_chunk):
        rows = min(rows_per_chunk, n_boot - start)
        if block is None:
            idx = rng.integers(0, n, size=(rows, n))
        else:
            origins = rng.integers(0, n, size=(rows, n))
            new_block = rng.random((rows, n)) < 1.0 / block
            new_block[:, 0] = True
            block_start = np.maximum.accumulate(np.where(new_block, steps, 0), axis=1)
            first = np.take_along_axis(origins, block_start, axis=1)
            idx = (first + steps - block_start) % n
        sample = r[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            sr = sample.mean(axis=1) / sample.std(axis=1, ddof=1) * math.sqrt(periods_per_year)
        sharpes.append(sr[np.ptp(sample, axis=1) > 0])
    values = np.concatenate(sharpes)
    if values.size == 0:
        return NAN, NAN
    lo, hi = np.percentile(values, [50.0 * (1.0 - level), 50.0 * (1.0 + level)])
    return float(lo), float(hi)


def probabilistic_sharpe_ratio(
    returns: ArrayLike, benchmark_sharpe: float = 0.0, *, periods_per_year: float | None = None
) -> float:
    """PSR = ``Phi((SR - SR*) sqrt(n - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))``.

    ``SR`` is the per-period Sharpe ratio of ``returns`` (n observations). ``benchmark_sharpe`` is
    ``SR*``: per period when ``periods_per_year`` is None, else annualised and converted as
    ``SR* / sqrt(periods_per_year)``. ``nan`` for fewer than 2 returns, zero dispersion, or a
    non-positive variance term.
    """
    r = np.asarray(returns, dtype=np.float64).ravel()
    sr = sharpe_ratio(r, 1.0)
    if math.isnan(sr):
        return NAN
    target = (
        benchmark_sharpe / math.sqrt(periods_per_year) if periods_per_year else benchmark_sharpe
    )
    variance_term = sharpe_variance_term(r, sr)
    if not variance_term > 0:
        return NAN
    return float(norm.cdf((sr - target) * math.sqrt(r.size - 1) / math.sqrt(variance_term)))


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """``E[max SR] ~ sqrt(V) ((1 - γ) Phi^-1(1 - 1/N) + γ Phi^-1(1 - 1/(N e)))``, γ = Euler–Mascheroni.

    The expected maximum of ``N`` independent Sharpe estimates with true SR 0 and variance ``V``
    (same scale as ``V``: per period when ``V`` is). 0 for ``N = 1``.
    """
    if n_trials < 1 or sharpe_variance < 0:
        raise ValueError(
            f"need n_trials >= 1 and sharpe_variance >= 0, got {n_trials}, {sharpe_variance}"
        )
    if n_trials == 1:
        return 0.0
    gamma = np.euler_gamma
    z = (1.0 - gamma) * norm.ppf(1.0 - 1.0 / n_trials) + gamma * norm.ppf(
        1.0 - 1.0 / (n_trials * math.e)
    )
    return float(math.sqrt(sharpe_variance) * z)


def deflated_sharpe_ratio(
    returns: ArrayLike,
    n_trials: int,
    sharpe_variance: float | None = None,
    *,
    trial_sharpes: ArrayLike | None = None,
) -> float:
    """DSR = PSR against ``SR* = expected_max_sharpe(n_trials, V)`` (all per period).

    ``V`` = ``var(trial_sharpes, ddof=1)`` of the per-period Sharpe ratios of the trials when given,
    else ``sharpe_variance`` (per period squared). With ``n_trials = 1``, ``SR* = 0`` and DSR is the
    PSR against 0 (no ``V`` needed).
    """
    if trial_sharpes is not None:
        trials = np.asarray(trial_sharpes, dtype=np.float64).ravel()
        if trials.size < 2:
            raise ValueError(f"trial_sharpes needs >= 2 values, got {trials.size}")
        variance = float(trials.var(ddof=1))
    elif sharpe_variance is not None:
        variance = sharpe_variance
    elif n_trials == 1:
        variance = 0.0
    else:
        raise ValueError("deflated_sharpe_ratio needs sharpe_variance or trial_sharpes")
    return probabilistic_sharpe_ratio(returns, expected_max_sharpe(n_trials, variance))


def sharpe_interval(
    returns: ArrayLike, periods_per_year: float, *, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of the annualised Sharpe ratio every report shows: the stationary block
    bootstrap (:func:`bootstrap_sharpe_ci`) with mean block length ``round(sqrt(n))``, which keeps
    the autocorrelation of bar returns."""
    n = np.asarray(returns).size
    block = max(1, round(math.sqrt(n)))
    return bootstrap_sharpe_ci(returns, periods_per_year, block=block, n_boot=n_boot, seed=seed)


def sharpe_intervals(
    series: list[np.ndarray], periods_per_year: float
) -> list[tuple[float, float]]:
    """:func:`sharpe_interval` of each of ``series``, on a thread per core: NumPy releases the GIL
    in the resampling's array work (two threads on 2 cores took 0.65x the time of one for the 8
    walks of a final report); each result is the one :func:`sharpe_interval` gives alone."""
    workers = max(1, min(len(series), os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda r: sharpe_interval(r, periods_per_year), series))


def honest_statistics(
    returns: np.ndarray,
    periods_per_year: float,
    n_trials: int,
    trial_sharpes: np.ndarray | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Annualised Sharpe ratio with its 95% bootstrap interval, PSR (vs 0) and DSR.

    The interval is :func:`sharpe_interval`. DSR is the PSR against ``expected_max_sharpe``: the
    best Sharpe ratio that ``n_trials`` zero-skill configurations reach by luck, with the variance
    of the trials' Sharpe ratios taken from ``trial_sharpes`` (annualised, >= 2 values) when given,
    else ``1 / (n - 1)`` per period² — the sampling variance of a Sharpe estimate under zero true
    Sharpe (the trials are assumed to differ by estimation noise only). ``expected_max_sharpe`` is
    reported annualised. ``sharpe`` is :func:`~grandmodel.evaluation.metrics.sharpe_ratio` (0 for a
    flat policy); the rest is ``nan`` where undefined (fewer than 2 returns, zero dispersion).
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    r = np.asarray(returns, dtype=np.float64).ravel()
    n, scale = r.size, math.sqrt(periods_per_year)
    lo, hi = sharpe_interval(r, periods_per_year, n_boot=n_boot, seed=seed)
    if trial_sharpes is not None:
        trials = np.asarray(trial_sharpes, dtype=np.float64).ravel() / scale
        if trials.size < 2:
            raise ValueError(f"trial_sharpes needs >= 2 values, got {trials.size}")
        variance = float(trials.var(ddof=1))
    else:
        variance = 1.0 / (n - 1) if n > 1 else NAN
    return {
        "sharpe": sharpe_ratio(r, periods_per_year),
        "sharpe_ci_low": lo,
        "sharpe_ci_high": hi,
        "psr": probabilistic_sharpe_ratio(r),
        "dsr": deflated_sharpe_ratio(r, n_trials, variance),
        "expected_max_sharpe": expected_max_sharpe(n_trials, variance) * scale,
        "n_trials": float(n_trials),
        "n_periods": float(n),
    }

"""Honest statistics: bootstrap Sharpe CI, PSR and DSR against their closed forms."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats

from grandmodel.evaluation import statistics as hs
from grandmodel.evaluation.metrics import sharpe_lower_bound, sharpe_ratio

PPY = 23 * 3600 * 252 / 300  # 5-minute ES bars
PHI = NormalDist()


def _returns(n: int, seed: int = 0, mean: float = 5e-4, std: float = 1e-2) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, std, n)


def test_psr_matches_the_formula_by_hand() -> None:
    r = np.random.default_rng(7).standard_t(5, 300) * 1e-2 + 2e-3
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = stats.skew(r), stats.kurtosis(r, fisher=False)
    for target in (0.0, 0.05):
        z = (sr - target) * math.sqrt(r.size - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
        assert hs.probabilistic_sharpe_ratio(r, target) == pytest.approx(PHI.cdf(z), rel=1e-9)
    # an annualised benchmark is converted to the per-period scale
    annual = 0.05 * math.sqrt(PPY)
    assert hs.probabilistic_sharpe_ratio(r, annual, periods_per_year=PPY) == pytest.approx(
        hs.probabilistic_sharpe_ratio(r, 0.05), rel=1e-12
    )


def test_psr_uses_non_excess_kurtosis() -> None:
    # normal sample with a large per-period SR: the textbook variance term is 1 + SR^2 / 2
    r = np.random.default_rng(3).normal(1.0, 1.0, 20_000)
    sr = r.mean() / r.std(ddof=1)
    target = sr - 0.005
    textbook = PHI.cdf(0.005 * math.sqrt(r.size - 1) / math.sqrt(1 + sr**2 / 2))
    excess_mistake = PHI.cdf(0.005 * math.sqrt(r.size - 1) / math.sqrt(1 - sr**2 / 4))
    psr = hs.probabilistic_sharpe_ratio(r, target)
    assert psr == pytest.approx(textbook, abs=3e-3)
    assert abs(psr - excess_mistake) > 0.05


def test_psr_at_the_estimated_sharpe_is_one_half() -> None:
    r = _returns(500, seed=1)
    assert hs.probabilistic_sharpe_ratio(r, r.mean() / r.std(ddof=1)) == pytest.approx(0.5)
    annual = sharpe_ratio(r, PPY)
    assert hs.probabilistic_sharpe_ratio(r, annual, periods_per_year=PPY) == pytest.approx(0.5)


def test_psr_at_the_sharpe_lower_bound_is_its_level() -> None:
    """The lower confidence bound is the benchmark Sharpe ratio the PSR clears with probability
    ``level`` (the same standard error)."""
    r = np.random.default_rng(9).standard_t(4, 800) * 1e-3 + 1e-4
    for level in (0.9, 0.95, 0.99):
        bound = sharpe_lower_bound(r, PPY, level)
        psr = hs.probabilistic_sharpe_ratio(r, bound, periods_per_year=PPY)
        assert psr == pytest.approx(level, rel=1e-9)


def test_sharpe_interval_is_the_reports_block_bootstrap() -> None:
    r = _returns(900, seed=4)
    assert hs.sharpe_interval(r, PPY, n_boot=300) == hs.bootstrap_sharpe_ci(
        r, PPY, block=30, n_boot=300
    )
    honest = hs.honest_statistics(r, PPY, 1, n_boot=300)
    assert (honest["sharpe_ci_low"], honest["sharpe_ci_high"]) == hs.sharpe_interval(
        r, PPY, n_boot=300
    )


def test_psr_grows_with_sample_length() -> None:
    base = _returns(100, seed=2, mean=5e-4, std=1e-2)  # per-period SR > 0
    assert sharpe_ratio(base, 1.0) > 0
    psr = [hs.probabilistic_sharpe_ratio(np.tile(base, k)) for k in (1, 2, 4, 8)]
    assert np.all(np.diff(psr) > 0)
    assert 0.5 < psr[0] < psr[-1] < 1.0


def test_psr_undefined_cases() -> None:
    assert math.isnan(hs.probabilistic_sharpe_ratio([0.01]))
    assert math.isnan(hs.probabilistic_sharpe_ratio(np.full(10, 1e-3)))


def test_expected_max_sharpe_closed_form() -> None:
    g = 0.5772156649015329
    closed = (1 - g) * PHI.inv_cdf(1 - 1 / 100) + g * PHI.inv_cdf(1 - 1 / (100 * math.e))
    assert hs.expected_max_sharpe(100, 1.0) == pytest.approx(closed, rel=1e-12)
    assert hs.expected_max_sharpe(100, 1.0) == pytest.approx(2.5306, abs=1e-4)
    assert hs.expected_max_sharpe(100, 4.0) == pytest.approx(2 * closed, rel=1e-12)
    assert hs.expected_max_sharpe(1, 1.0) == 0.0
    with pytest.raises(ValueError):
        hs.expected_max_sharpe(0, 1.0)


def test_dsr_deflates_with_more_trials() -> None:
    r = _returns(1000, seed=4, mean=1e-3)
    psr = hs.probabilistic_sharpe_ratio(r)
    assert hs.deflated_sharpe_ratio(r, 1) == psr
    variance = 0.02**2  # per-period SR dispersion across trials
    dsr = [hs.deflated_sharpe_ratio(r, n, variance) for n in (2, 10, 100, 1000)]
    assert dsr[0] < psr
    assert np.all(np.diff(dsr) < 0)
    expected = hs.probabilistic_sharpe_ratio(r, hs.expected_max_sharpe(10, variance))
    assert dsr[1] == expected


def test_dsr_from_trial_sharpes() -> None:
    r = _returns(1000, seed=5, mean=1e-3)
    trials = np.random.default_rng(6).normal(0.0, 0.03, 20)
    via_trials = hs.deflated_sharpe_ratio(r, 20, trial_sharpes=trials)
    assert via_trials == pytest.approx(hs.deflated_sharpe_ratio(r, 20, float(trials.var(ddof=1))))
    with pytest.raises(ValueError):
        hs.deflated_sharpe_ratio(r, 20)


def _width(ci: tuple[float, float]) -> float:
    return ci[1] - ci[0]


def test_bootstrap_ci_contains_estimate_and_narrows() -> None:
    r = _returns(8000, seed=8, mean=2e-4, std=1e-3)
    small, large = r[:500], r
    ci_small = hs.bootstrap_sharpe_ci(small, PPY, n_boot=1000)
    ci_large = hs.bootstrap_sharpe_ci(large, PPY, n_boot=1000)
    for sample, ci in ((small, ci_small), (large, ci_large)):
        assert ci[0] < sharpe_ratio(sample, PPY) < ci[1]
    assert _width(ci_large) < 0.5 * _width(ci_small)
    assert _width(hs.bootstrap_sharpe_ci(large, PPY, level=0.5, n_boot=1000)) < _width(ci_large)


def test_bootstrap_ci_width_matches_normal_theory() -> None:
    r = _returns(4000, seed=9, mean=0.0, std=1e-3)
    lo, hi = hs.bootstrap_sharpe_ci(r, 1.0, n_boot=2000)  # per-period SR, SE ~ 1/sqrt(n)
    assert hi - lo == pytest.approx(2 * 1.959964 / math.sqrt(r.size), rel=0.1)


def test_block_bootstrap_widens_for_autocorrelated_returns() -> None:
    rng = np.random.default_rng(10)
    eps, r, phi = rng.normal(0, 1e-3, 4000), np.empty(4000), 0.6
    r[0] = eps[0]
    for t in range(1, r.size):
        r[t] = phi * r[t - 1] + eps[t]
    iid = _width(hs.bootstrap_sharpe_ci(r + 1e-4, PPY, n_boot=1000))
    blocked = _width(hs.bootstrap_sharpe_ci(r + 1e-4, PPY, n_boot=1000, block=50))
    # long-run variance ratio (1 + phi) / (1 - phi) = 4: about twice the width
    assert 1.5 < blocked / iid < 2.6


def test_bootstrap_is_seeded() -> None:
    r = _returns(300, seed=11)
    for block in (None, 10):
        a = hs.bootstrap_sharpe_ci(r, PPY, n_boot=300, block=block, seed=3)
        assert a == hs.bootstrap_sharpe_ci(r, PPY, n_boot=300, block=block, seed=3)
        assert a != hs.bootstrap_sharpe_ci(r, PPY, n_boot=300, block=block, seed=4)


@pytest.mark.filterwarnings("error")
def test_bootstrap_undefined_cases() -> None:
    assert all(math.isnan(x) for x in hs.bootstrap_sharpe_ci([0.01], PPY))
    assert all(math.isnan(x) for x in hs.bootstrap_sharpe_ci(np.full(20, 1e-3), PPY))
    with pytest.raises(ValueError):
        hs.bootstrap_sharpe_ci(_returns(10), PPY, block=0)

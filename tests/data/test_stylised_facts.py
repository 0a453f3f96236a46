"""Stylised facts against processes whose facts are known: GBM (none), GARCH (volatility
clustering, heavy tails, aggregational Gaussianity), Student-t (tail index), an asymmetric GARCH
(leverage); the discriminative score and train-on-synthetic/test-on-real on matched and mismatched
series. References: statsmodels' ACF, scipy's moments."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.tsa.stattools import acf as sm_acf

from grandmodel.data.synthetic import (
    discriminative_score,
    stylised_facts,
    train_synthetic_test_real,
)

N = 60_000


def gbm(n: int = N, seed: int = 0) -> np.ndarray:
    return 1e-3 * np.random.default_rng(seed).standard_normal(n)


def garch(
    n: int = N, seed: int = 1, alpha: float = 0.1, beta: float = 0.88, gamma: float = 0.0
) -> np.ndarray:
    """GJR-GARCH(1,1) with unit unconditional variance scale 1e-3 (gamma > 0: leverage)."""
    z = np.random.default_rng(seed).standard_normal(n)
    omega = 1 - alpha - beta - gamma / 2
    h, out = 1.0, np.empty(n)
    for t in range(n):
        out[t] = np.sqrt(h) * z[t]
        h = omega + (alpha + gamma * (out[t] < 0)) * out[t] ** 2 + beta * h
    return 1e-3 * out


@pytest.fixture(scope="module")
def facts() -> dict:
    return {"gbm": stylised_facts(gbm()), "garch": stylised_facts(garch())}


def test_acf_and_moments_match_the_references() -> None:
    r = garch(5000)
    f = stylised_facts(r, lags=20)
    np.testing.assert_allclose(f.acf_returns, sm_acf(r, nlags=20, fft=False)[1:], atol=1e-12)
    np.testing.assert_allclose(f.acf_abs, sm_acf(np.abs(r), nlags=20, fft=False)[1:], atol=1e-12)
    np.testing.assert_allclose(f.acf_squared, sm_acf(r**2, nlags=20, fft=False)[1:], atol=1e-12)
    assert f.excess_kurtosis == pytest.approx(stats.kurtosis(r))
    assert f.skewness == pytest.approx(stats.skew(r))
    assert f.leverage[2] == pytest.approx(np.corrcoef(r[:-3], r[3:] ** 2)[0, 1])


def test_returns_are_uncorrelated_in_both(facts: dict) -> None:
    band = 4 / np.sqrt(N)
    for f in facts.values():
        assert np.abs(f.acf_returns[:10]).max() < band


def test_volatility_clustering_only_in_garch(facts: dict) -> None:
    band = 4 / np.sqrt(N)
    assert np.abs(facts["gbm"].acf_abs[:10]).max() < band
    assert np.abs(facts["gbm"].acf_squared[:10]).max() < band
    clustered = facts["garch"].acf_abs
    assert clustered[:30].min() > 0.05  # slow decay: still well above noise at lag 30
    assert clustered[0] > clustered[29]  # but decaying
    assert facts["garch"].acf_squared[0] > 0.1


def test_heavy_tails_and_aggregational_gaussianity(facts: dict) -> None:
    assert abs(facts["gbm"].excess_kurtosis) < 0.15
    k = facts["garch"].aggregated_kurtosis
    assert k[1] > 1.0 and k[1] > k[5] > k[30]
    t3 = np.random.default_rng(2).standard_t(3, N)
    assert stylised_facts(t3).hill_tail_index == pytest.approx(3.0, abs=0.6)
    assert stylised_facts(gbm()).hill_tail_index > 4.5  # a Gaussian's tail is thin


def test_leverage_and_gain_loss_asymmetry() -> None:
    symmetric = stylised_facts(gbm())
    assert abs(symmetric.leverage[:5]).max() < 4 / np.sqrt(N)
    assert symmetric.gain_loss_ratio == pytest.approx(1.0, abs=0.06)
    asymmetric = stylised_facts(garch(gamma=0.1, alpha=0.03))
    assert asymmetric.leverage[:5].max() < -4 / np.sqrt(N)
    rng = np.random.default_rng(7)  # Merton: 2% of minutes jump down by 3 sigma on average
    jumps = rng.binomial(1, 0.02, N) * rng.normal(-3e-3, 1e-3, N)
    crashes = stylised_facts(gbm(seed=8) + jumps)
    assert crashes.gain_loss_ratio > 1.2 and crashes.skewness < -0.5


def test_discriminative_score_separates_gbm_from_garch_but_not_from_itself() -> None:
    same = discriminative_score(garch(seed=3), garch(seed=4))
    different = discriminative_score(garch(seed=3), gbm(seed=4))
    assert same < 0.6
    assert different > 0.75


def test_train_on_synthetic_test_on_real() -> None:
    real = garch(seed=5)
    matched = train_synthetic_test_real(real, garch(seed=6))
    mismatched = train_synthetic_test_real(real, gbm(seed=6))
    assert matched["trtr_r2"] > 0.05
    assert matched["tstr_r2"] == pytest.approx(matched["trtr_r2"], abs=0.02)
    assert mismatched["tstr_r2"] < matched["tstr_r2"] - 0.03


def test_too_short_a_series_is_refused() -> None:
    with pytest.raises(ValueError, match="expected at least"):
        stylised_facts(np.zeros(50))

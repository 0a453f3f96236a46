"""Stylised facts of one-minute log returns, and two scores of how real a synthetic series looks.

:func:`stylised_facts` measures what a realistic generator must reproduce (Cont, 2001): heavy tails
(excess kurtosis, Hill tail index), no linear autocorrelation of returns, slowly decaying
autocorrelation of ``|r|`` and ``r**2`` (volatility clustering), the leverage effect, gain/loss
asymmetry and aggregational Gaussianity (tails thin as returns are summed over 5 and 30 minutes).
:func:`discriminative_score` and :func:`train_synthetic_test_real` compare a synthetic series with a
real one: a classifier's accuracy at telling their windows apart (0.5 = indistinguishable) and how
well a volatility predictor fitted on the synthetic series forecasts the real one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

AGGREGATIONS = (1, 5, 30)  # minutes per aggregated return
TAIL_SHARE = 0.05  # largest |r| used by the Hill estimator
TAIL_QUANTILE = 0.01  # gain/loss asymmetry compares the 1% and 99% quantiles


def acf(x: np.ndarray, lags: int) -> np.ndarray:
    """Sample autocorrelation at lags 1..``lags`` (the biased estimator statsmodels uses)."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    denominator = float(x @ x)
    return np.array([float(x[:-k] @ x[k:]) / denominator for k in range(1, lags + 1)])


def hill_tail_index(returns: np.ndarray, share: float = TAIL_SHARE) -> float:
    """Hill estimator of the tail exponent of ``|r|`` from its largest ``share`` (lower = heavier)."""
    tail = np.sort(np.abs(returns))[::-1]
    k = max(int(share * tail.size), 2)
    threshold = tail[k]
    if threshold <= 0:
        return float("nan")
    return float(1.0 / np.mean(np.log(tail[:k] / threshold)))


def leverage(returns: np.ndarray, lags: int) -> np.ndarray:
    """corr(r_t, r_{t+k}**2) for k = 1..``lags``: negative when falls raise later volatility."""
    r = np.asarray(returns, dtype=np.float64)
    return np.array([np.corrcoef(r[:-k], r[k:] ** 2)[0, 1] for k in range(1, lags + 1)])


def aggregate(returns: np.ndarray, minutes: int) -> np.ndarray:
    """Sums of consecutive non-overlapping blocks of ``minutes`` returns (log returns add)."""
    n = returns.size // minutes * minutes
    return np.asarray(returns[:n]).reshape(-1, minutes).sum(axis=1)


@dataclass(frozen=True)
class StylisedFacts:
    """The facts of one return series; ``summary()`` flattens them to one row of a table."""

    excess_kurtosis: float
    hill_tail_index: float
    acf_returns: np.ndarray  # lags 1..L, ≈ 0 for real prices
    acf_abs: np.ndarray  # slow positive decay for real prices
    acf_squared: np.ndarray
    leverage: np.ndarray  # negative at short lags for equity indices
    skewness: float
    gain_loss_ratio: float  # |1% quantile| / 99% quantile; > 1: large losses exceed large gains
    aggregated_kurtosis: dict[int, float]  # excess kurtosis of 1/5/30-minute returns

    def summary(self, lags: tuple[int, ...] = (1, 5, 30)) -> dict[str, float]:
        row = {
            "excess_kurtosis": self.excess_kurtosis,
            "hill_tail_index": self.hill_tail_index,
            "skewness": self.skewness,
            "gain_loss_ratio": self.gain_loss_ratio,
        }
        for lag in lags:
            if lag <= self.acf_returns.size:
                row[f"acf_r_{lag}"] = float(self.acf_returns[lag - 1])
                row[f"acf_abs_{lag}"] = float(self.acf_abs[lag - 1])
                row[f"acf_sq_{lag}"] = float(self.acf_squared[lag - 1])
                row[f"leverage_{lag}"] = float(self.leverage[lag - 1])
        for minutes, value in self.aggregated_kurtosis.items():
            row[f"kurtosis_{minutes}min"] = value
        return row


def stylised_facts(returns: np.ndarray, lags: int = 50) -> StylisedFacts:
    """The stylised facts of a series of one-minute log returns (at least ``30 * lags`` of them)."""
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size < max(30 * lags, 100):
        raise ValueError(f"returns: {r.size} values; expected at least {max(30 * lags, 100)}")
    low, high = np.quantile(r, [TAIL_QUANTILE, 1 - TAIL_QUANTILE])
    return StylisedFacts(
        excess_kurtosis=float(stats.kurtosis(r)),
        hill_tail_index=hill_tail_index(r),
        acf_returns=acf(r, lags),
        acf_abs=acf(np.abs(r), lags),
        acf_squared=acf(r**2, lags),
        leverage=leverage(r, lags),
        skewness=float(stats.skew(r)),
        gain_loss_ratio=float(abs(low) / high) if high > 0 else float("nan"),
        aggregated_kurtosis={m: float(stats.kurtosis(aggregate(r, m))) for m in AGGREGATIONS},
    )


def windows(returns: np.ndarray, length: int) -> np.ndarray:
    """Non-overlapping windows ``[n, length]`` of a return series."""
    n = returns.size // length
    return np.asarray(returns[: n * length], dtype=np.float64).reshape(n, length)


def window_features(batch: np.ndarray) -> np.ndarray:
    """What the discriminator sees of each window: its sorted |r| (the distribution) and the
    autocorrelation of |r| at lags 1..5 (the clustering), both scale-free, plus its scale."""
    scale = batch.std(axis=1, keepdims=True) + 1e-12
    z = batch / scale
    sorted_abs = np.sort(np.abs(z), axis=1)[:, :: max(batch.shape[1] // 16, 1)]
    centred = np.abs(z) - np.abs(z).mean(axis=1, keepdims=True)
    denominator = (centred**2).sum(axis=1) + 1e-12
    clustering = [(centred[:, :-k] * centred[:, k:]).sum(axis=1) / denominator for k in range(1, 6)]
    return np.column_stack([sorted_abs, *clustering, np.log(scale[:, 0])])


def discriminative_score(
    real: np.ndarray, synthetic: np.ndarray, window: int = 120, seed: int = 0
) -> float:
    """Held-out accuracy of a gradient-boosted classifier telling real windows from synthetic
    ones (equal numbers of each); 0.5 means it cannot tell them apart, 1.0 that it always can."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import train_test_split

    a, b = windows(real, window), windows(synthetic, window)
    n = min(len(a), len(b))
    if n < 20:
        raise ValueError(f"too few windows of {window} returns ({n}); expected at least 20 of each")
    rng = np.random.default_rng(seed)
    a, b = a[rng.permutation(len(a))[:n]], b[rng.permutation(len(b))[:n]]
    x = window_features(np.concatenate([a, b]))
    y = np.concatenate([np.ones(n), np.zeros(n)])
    x_fit, x_test, y_fit, y_test = train_test_split(
        x, y, test_size=0.3, random_state=seed, stratify=y
    )
    model = HistGradientBoostingClassifier(max_iter=100, max_depth=3, random_state=seed)
    model.fit(x_fit, y_fit)
    return float(model.score(x_test, y_test))


def _lagged(x: np.ndarray, lags: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the last ``lags`` values of ``x`` and the next value after each row."""
    rows = np.lib.stride_tricks.sliding_window_view(x[:-1], lags)
    return rows, x[lags:]


def train_synthetic_test_real(
    real: np.ndarray, synthetic: np.ndarray, lags: int = 30
) -> dict[str, float]:
    """Out-of-sample R² of a next-minute |r| predictor (ridge on the last ``lags`` |r|, scale-free)
    on the second half of ``real``: fitted on ``synthetic`` (``tstr_r2``) and on the first half of
    ``real`` (``trtr_r2``, the reference). Volatility is the predictable part of returns."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score

    def prepared(x: np.ndarray) -> np.ndarray:
        x = np.abs(np.asarray(x, dtype=np.float64))
        return x / x.mean()

    real_abs, synthetic_abs = prepared(real), prepared(synthetic)
    half = real_abs.size // 2
    x_test, y_test = _lagged(real_abs[half:], lags)
    out: dict[str, float] = {}
    for name, series in (("tstr_r2", synthetic_abs), ("trtr_r2", real_abs[:half])):
        x_fit, y_fit = _lagged(series, lags)
        model = Ridge(alpha=1.0).fit(x_fit, y_fit)
        out[name] = float(r2_score(y_test, model.predict(x_test)))
    return out

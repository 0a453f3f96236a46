"""A Gaussian hidden Markov model of the base returns, fitted on the training split, and its forward
filter: the ``regime_*`` observation features (``FITTED_FEATURES`` in ``data/features.py``).

Why a fitted filter: the moving-average and volatility features see a trend only after it has
moved the price; the filter's posterior weighs every base return by how likely each regime makes
it, which is the best a policy can do from returns alone when the market is such a chain
(``experiments/learning_quality/README.md``: the fitted filter alone makes about half the regime
oracle's Sharpe on the default market).

**Fit.** ``hmmlearn``'s Baum-Welch (``GaussianHMM``) on the training split's base log returns summed
over one strategic bar (one-minute returns make EM spend its states on short bursts), from a sticky
start (0.99 on the diagonal) and k-means means; the most likely of ``restarts`` runs (seeds 0, 1, …)
is kept. Its per-base-bar model: mean and variance divided by the bars summed, expected duration
``bars / (1 - P_ii)`` base bars, and on leaving a regime the next is uniform among the others.
States are sorted by mean, so the fit is the same whatever labels EM gave them.

**Filter.** :func:`forward_filter` (Hamilton 1989, "A New Approach to the Economic Analysis of
Nonstationary Time Series and the Business Cycle", Econometrica 57(2)), in log space::

    log α_0(j) = log π(j) + log b_j(r_0)                          − log Σ_j (…)
    log α_t(j) = log b_j(r_t) + logsumexp_i(log α_{t-1}(i) + log P_ij) − log Σ_j (…)

``α_t(j) = P(S_t = j | r_0..r_t)``, ``π`` uniform. The batch recursion runs in chunks: each chunk's
transfer matrix (the log-semiring product of its steps) carries the boundary posterior from chunk
to chunk, then all chunks filter at once from their boundaries; the result is the sequential
recursion's (:meth:`RegimeFit.step`, what the paper loop runs bar by bar), in about ``2 sqrt(T)``
vectorised steps instead of ``T``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from grandmodel.config.data import RegimeFitConfig
from grandmodel.errors import DataError


def _lse(x: np.ndarray, axis: int) -> np.ndarray:
    """``log Σ exp`` along ``axis`` (``-inf`` where every term is)."""
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(x - top), axis=axis)) + np.squeeze(top, axis=axis)


def _normalise(log_p: np.ndarray) -> np.ndarray:
    return log_p - _lse(log_p, -1)[..., None]


def forward_filter(
    log_lik: np.ndarray, transition: np.ndarray, prior: np.ndarray, chunk: int | None = None
) -> np.ndarray:
    """``[T, K]`` log filtered posteriors ``log P(S_t = j | r_0..r_t)`` of an HMM with emission
    log-likelihoods ``log_lik[t, j]``, transition matrix ``transition[i, j] = P(S_t = j | S_{t-1}
    = i)`` and initial distribution ``prior`` (of ``S_0``). ``chunk``: steps per chunk (default
    ``ceil(sqrt(T))``); every value gives the same posteriors up to rounding."""
    steps, k = log_lik.shape
    with np.errstate(divide="ignore"):
        log_p, log_prior = np.log(transition), np.log(prior)
    out = np.empty((steps, k))
    if steps == 0:
        return out
    out[0] = _normalise(log_prior + log_lik[0])
    rest = steps - 1
    if rest == 0:
        return out
    size = max(1, chunk or math.isqrt(rest - 1) + 1)
    chunks = -(-rest // size)
    # step matrices M[j, i] = log b_j(r_t) + log P[i, j]; the padding steps are identities
    lik = np.zeros((chunks * size, k))
    lik[:rest] = log_lik[1:]
    steps_m = lik[:, :, None] + log_p.T[None]
    identity = np.where(np.eye(k, dtype=bool), 0.0, -np.inf)
    steps_m[rest:] = identity
    steps_m = steps_m.reshape(chunks, size, k, k)
    transfer = np.broadcast_to(identity, (chunks, k, k)).copy()
    for s in range(size):  # every chunk's transfer matrix at once
        transfer = _lse(steps_m[:, s, :, :, None] + transfer[:, None, :, :], axis=2)
        transfer -= np.max(transfer, axis=(1, 2), keepdims=True)
    start = np.empty((chunks, k))
    start[0] = out[0]
    for c in range(1, chunks):  # the posterior entering each chunk
        start[c] = _normalise(_lse(transfer[c - 1] + start[c - 1][None, :], axis=1))
    filtered = np.empty((chunks, size, k))
    alpha = start
    for s in range(size):  # every chunk filters from its boundary at once
        alpha = _normalise(_lse(steps_m[:, s] + alpha[:, None, :], axis=2))
        filtered[:, s] = alpha
    out[1:] = filtered.reshape(-1, k)[:rest]
    return out


@dataclass
class RegimeFit:
    """Per-base-bar Gaussian HMM: ``mean`` and ``var`` of a base log return in each state (sorted by
    mean), ``bars`` the expected duration of each state in base bars; JSON-serialisable (it travels
    in the strategic :class:`~grandmodel.data.normalise.NormStats`)."""

    mean: list[float]
    var: list[float]
    bars: list[float]
    fitted_on: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, returns: np.ndarray, summed: int, states: int = 5, restarts: int = 5) -> RegimeFit:
        """The most likely of ``restarts`` EM fits on ``returns`` (base log returns, training split
        only) summed ``summed`` at a time (see the module docstring)."""
        from hmmlearn.hmm import GaussianHMM

        sums = returns[: returns.size // summed * summed].reshape(-1, summed).sum(1)
        if sums.size < 10 * states:
            raise ValueError(f"{sums.size} summed returns; expected at least {10 * states}")
        scale = 1.0 / max(float(np.std(sums)), 1e-12)  # hmmlearn's variance floor wants unit scale
        x = (sums * scale)[:, None]
        best = None
        for seed in range(restarts):
            hmm = GaussianHMM(states, "diag", n_iter=300, tol=1e-4, random_state=seed)
            hmm.init_params = "mc"
            hmm.startprob_ = np.full(states, 1.0 / states)
            leave = 0.01 / (states - 1)
            hmm.transmat_ = np.full((states, states), leave) + np.eye(states) * (0.99 - leave)
            hmm.fit(x)
            score = float(hmm.score(x))
            if best is None or score > best[0]:
                best = (score, seed, hmm)
        score, seed, hmm = best
        order = np.argsort(hmm.means_[:, 0])
        mean = hmm.means_[order, 0] / scale / summed
        var = hmm.covars_[order, 0, 0] / scale**2 / summed
        stay = np.diag(hmm.transmat_)[order]
        bars = summed / np.maximum(1e-12, 1.0 - stay)
        info = {"sums": int(sums.size), "summed": summed, "log_likelihood": round(score, 2)}
        return cls(mean.tolist(), var.tolist(), bars.tolist(), info | {"seed": seed})

    def transition(self) -> np.ndarray:
        """``P[i, j]`` per base bar: stay with ``1 - 1/D_i``, else move uniformly to another state."""
        bars = np.asarray(self.bars)
        k = bars.size
        move = np.repeat(((1.0 / bars) / (k - 1))[:, None], k, axis=1)
        np.fill_diagonal(move, 1.0 - 1.0 / bars)
        return move

    def log_likelihood(self, returns: np.ndarray) -> np.ndarray:
        """``[T, K]`` log normal density of every base log return in every state."""
        mean, std = np.asarray(self.mean), np.sqrt(np.asarray(self.var))
        z = (np.asarray(returns, np.float64)[:, None] - mean) / std
        return -0.5 * z**2 - np.log(std) - 0.5 * math.log(2.0 * math.pi)

    def posteriors(self, returns: np.ndarray) -> np.ndarray:
        """``[T, K]`` filtered log posteriors after each of ``returns``, from the uniform prior."""
        k = len(self.mean)
        return forward_filter(self.log_likelihood(returns), self.transition(), np.full(k, 1.0 / k))

    def step(self, log_posterior: np.ndarray | None, r: float) -> np.ndarray:
        """The next log posterior after base return ``r`` (``None``: the first return)."""
        lik = self.log_likelihood(np.array([r]))[0]
        if log_posterior is None:
            return _normalise(lik - math.log(len(self.mean)))
        return _normalise(lik + _lse(log_posterior[:, None] + self._log_transition, axis=0))

    @cached_property
    def _log_transition(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.transition())

    def features(self, log_posterior: np.ndarray) -> dict[str, np.ndarray]:
        """The ``regime_*`` features of ``[..., K]`` log posteriors: ``regime_edge`` the expected log
        return until the current regime ends (``Σ_k p_k · mean_k · D_k``) and ``regime_vol`` the
        posterior's per-bar volatility (``Σ_k p_k · sqrt(var_k)``)."""
        p = np.exp(log_posterior)
        mean, var, bars = (np.asarray(v) for v in (self.mean, self.var, self.bars))
        return {"regime_edge": p @ (mean * bars), "regime_vol": p @ np.sqrt(var)}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RegimeFit:
        return cls(**data)


def base_returns(base: pd.DataFrame) -> np.ndarray:
    """Log return of every base bar: close to close, the first bar's open to close."""
    close = base["close"].to_numpy(np.float64)
    first = math.log(close[0] / float(base["open"].iloc[0]))
    return np.concatenate(([first], np.diff(np.log(close))))


def add_regime_features(
    frames: dict[str, pd.DataFrame], columns: dict[str, tuple[str, ...]], fit: RegimeFit
) -> None:
    """Add the ``regime_*`` features listed in ``columns`` to the tactical and strategic tables of
    ``frames`` (replaced by copies): each bar's value is ``fit``'s filter after its last base bar."""
    returns = base_returns(frames["base"])
    values = fit.features(fit.posteriors(returns))
    for name, names in columns.items():
        wanted = [c for c in names if c in values]
        if wanted:
            frame = frames[name] = frames[name].copy()
            last = frame["last"].to_numpy()
            for column in wanted:
                frame[column] = values[column][last]


def fit_training_split(
    base: pd.DataFrame,
    decision_known: np.ndarray,
    train: tuple[int, int],
    size: dict[str, pd.Timedelta],
    cfg: RegimeFitConfig,
    cache: Path | None = None,
) -> RegimeFit:
    """The model fitted on the base returns known within the training split (decisions
    ``train[0]..train[1]``, ``decision_known`` their close times), summed over one strategic bar.

    ``cache``: a file for the fit (named by the caller after the data's content). EM is
    deterministic for the same returns and settings, so runs on the same data (a sweep's trials,
    ``make train-staged``'s stages) read the first run's fit instead of fitting again (35 s on the
    default market)."""
    first, last = train
    low = int(decision_known[first - 1]) if first > 0 else -(2**62)
    known = base.index.asi8 + int(size["base"].value)
    inside = (known > low) & (known <= int(decision_known[last]))
    summed = max(1, int(size["strategic"] / size["base"]))
    sums = int(inside.sum()) // summed
    if sums < 10 * cfg.states:
        raise DataError(
            f"data.regime_fit: the training split holds {sums} strategic bars of returns to fit "
            f"the regime_* features on; expected at least {10 * cfg.states} for "
            f"{cfg.states} states (more data or fewer data.regime_fit.states)"
        )
    if cache is not None:
        cache = (
            cache / f"{low}-{int(decision_known[last])}-{summed}-{cfg.states}-{cfg.restarts}.json"
        )
        if cache.is_file():
            return RegimeFit.from_dict(json.loads(cache.read_text()))
    fit = RegimeFit.fit(base_returns(base)[inside], summed, cfg.states, cfg.restarts)
    if cache is not None:  # written whole or not at all: a concurrent run writes the same fit
        cache.parent.mkdir(parents=True, exist_ok=True)
        staging = cache.with_name(f".{cache.name}.{os.getpid()}")
        staging.write_text(json.dumps(fit.to_dict()))
        os.replace(staging, cache)
    return fit

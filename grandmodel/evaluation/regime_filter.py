"""The Hamilton filter of the synthetic market's hidden regime, from observed returns only.

The ``regime`` generator (``grandmodel/data/synthetic/generators.py``) is a hidden Markov chain on
one-minute bars: regime ``k`` lasts a geometric number of minutes with mean ``D_k`` (it ends after a
minute with probability ``1 / D_k``, then the next regime is uniform among the others) and emits
log returns ``r ~ N(m_k, s_k²)`` with ``m_k = drift_k / PPY - s_k² / 2``, ``s_k = vol_k / sqrt(PPY)``.
With those known parameters the forward filter (``grandmodel/data/hmm.py``) gives the posterior
of the regime after each return.

:func:`filter_actions` trades the posterior the strategic agent could have had: at decision t,
the posterior after the last one-minute bar of the last completed strategic bar (docs/
architecture.md, "Time and look-ahead").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from grandmodel.config.data import SyntheticConfig
from grandmodel.data.hmm import forward_filter
from grandmodel.data.market_data import MarketData
from grandmodel.data.synthetic.generators import PERIODS_PER_YEAR, _allowed_regimes

LONG, FLAT, SHORT = 2, 1, 0  # strategic actions


@dataclass(frozen=True)
class RegimeModel:
    """One-minute HMM of the regime generator: ``codes`` (into ``generators.REGIMES``), annual
    ``drift``, per-minute ``sigma`` and mean duration ``minutes`` of each regime it may visit, and
    the observation ``noise`` (``noise_level``: the observed log close adds ``noise · sigma · N(0,
    1)``, so a return's variance grows by ``2 noise² sigma²``; its MA(1) correlation is ignored)."""

    codes: np.ndarray
    drift: np.ndarray
    sigma: np.ndarray
    minutes: np.ndarray
    noise: float = 0.0

    @classmethod
    def from_config(cls, cfg: SyntheticConfig) -> RegimeModel:
        """The parameters ``generators._regime_states`` draws with (conditions, strong trends and
        ``volatility_range`` applied)."""
        table = _allowed_regimes(cfg)
        vol = table.vol.astype(np.float64)
        if cfg.volatility_range is not None:  # the generator's mapping of vols onto the range
            low, high = cfg.volatility_range
            lo, hi = float(vol.min()), float(vol.max())
            share = (vol - lo) / (hi - lo) if hi > lo else np.full(vol.shape, 0.5)
            vol = low + share * (high - low)
        sigma = vol / math.sqrt(PERIODS_PER_YEAR)
        codes = table.codes.astype(np.int64)
        return cls(codes, table.drift, sigma, table.mean_minutes, float(cfg.noise_level))

    def transition(self) -> np.ndarray:
        """``P[i, j]``: stay with ``1 - 1/D_i``, else move uniformly to another regime."""
        k = self.codes.size
        leave = 1.0 / self.minutes
        if k == 1:
            return np.ones((1, 1))
        move = np.repeat((leave / (k - 1))[:, None], k, axis=1)
        np.fill_diagonal(move, 1.0 - leave)
        return move

    def log_likelihood(self, returns: np.ndarray) -> np.ndarray:
        """``[T, K]`` log normal density of every one-minute log return under every regime."""
        mean = self.drift / PERIODS_PER_YEAR - 0.5 * self.sigma**2
        std = self.sigma * math.sqrt(1.0 + 2.0 * self.noise**2)
        z = (returns[:, None] - mean) / std
        return -0.5 * z**2 - np.log(std) - 0.5 * math.log(2.0 * math.pi)

    def edge(self, posterior: np.ndarray) -> np.ndarray:
        """Expected simple return of a long position until the current regime ends:
        ``Σ_k p_k · drift_k / PPY · D_k`` (a geometric duration's expected remainder is ``D_k``)."""
        return posterior @ (self.drift / PERIODS_PER_YEAR * self.minutes)


def posteriors(model: RegimeModel, log_returns: np.ndarray) -> np.ndarray:
    """``[T, K]`` filtered probabilities of ``model``'s regimes after each one-minute log return,
    from the generator's uniform first regime."""
    k = model.codes.size
    prior = np.full(k, 1.0 / k)
    return np.exp(forward_filter(model.log_likelihood(log_returns), model.transition(), prior))


def minute_posteriors(data: MarketData, model: RegimeModel) -> np.ndarray:
    """:func:`posteriors` after each one-minute bar of ``data.base``, from its close-to-close log
    returns (the first bar's open-to-close). The last answer is kept: a final report and a
    walk-forward ask again for every split of the same bars (1–2 s each on the default data)."""
    if _last is not None and _last[0] is data.base.close and _same(_last[1], model):
        return _last[2]
    close = data.base.close.double().numpy()
    first = np.log(close[0] / float(data.base.open[0]))
    out = posteriors(model, np.concatenate(([first], np.diff(np.log(close)))))
    out.flags.writeable = False
    _remember(data.base.close, model, out)
    return out


_last: tuple[torch.Tensor, RegimeModel, np.ndarray] | None = None


def _remember(close: torch.Tensor, model: RegimeModel, posterior: np.ndarray) -> None:
    global _last
    _last = (close, model, posterior)


def _same(a: RegimeModel, b: RegimeModel) -> bool:
    return a.noise == b.noise and all(
        np.array_equal(getattr(a, f), getattr(b, f)) for f in ("codes", "drift", "sigma", "minutes")
    )


def decision_posteriors(data: MarketData, minutes: np.ndarray) -> np.ndarray:
    """``[T, K]``: at each decision, the posterior after the last one-minute bar of the last
    strategic bar known then (what the strategic agent sees; never a partial bar); the uniform
    prior before any strategic bar is known."""
    index = data.strategic_index.numpy()
    known = data.strategic.known_ns.numpy()[np.maximum(index, 0)]
    last = np.searchsorted(data.base.known_ns.numpy(), known, side="right") - 1
    out = minutes[np.maximum(last, 0)]
    out[(index < 0) | (last < 0)] = 1.0 / minutes.shape[1]
    return out


def filter_actions(
    data: MarketData, model: RegimeModel, round_trip: np.ndarray
) -> tuple[torch.Tensor, np.ndarray]:
    """Strategic action at every decision and the decision posteriors: long when the posterior's
    :meth:`RegimeModel.edge` exceeds ``round_trip`` (the cost of entering and leaving, a fraction
    of notional, per decision), short when below its negative, else flat."""
    posterior = decision_posteriors(data, minute_posteriors(data, model))
    edge = model.edge(posterior)
    action = np.where(edge > round_trip, LONG, np.where(edge < -round_trip, SHORT, FLAT))
    return torch.as_tensor(action, dtype=torch.int64), posterior


class RegimeFilter(nn.Module):
    """Strategic action of the regime filter at the decision, looked up from a table computed from
    returns known at each decision (:func:`filter_actions`)."""

    def __init__(self, actions: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("actions", actions.clone())

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.actions[t[..., 0]]

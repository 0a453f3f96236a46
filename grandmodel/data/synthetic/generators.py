"""Seeded one-minute ES price paths: GBM, GARCH(1,1), Markov regimes, Merton jumps, stress events.

Each path generator returns a :class:`PricePath` (per-minute log returns, session-open gaps, the
volatility in force and the regime label); :func:`generate` turns it into OHLCV bars on the session
calendar. Annualised numbers become per-minute ones with ``PERIODS_PER_YEAR = 252 * 1380``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from grandmodel.config.data import SyntheticConfig
from grandmodel.data.synthetic.calendar import (
    BARS_PER_SESSION,
    EXCHANGE_TZ,
    session_index,
    session_minute_of_day,
)
from grandmodel.data.synthetic.ohlcv import build_bars

REGIMES: tuple[str, ...] = ("trend_up", "trend_down", "sideways", "volatile")
TREND_UP, TREND_DOWN, SIDEWAYS, VOLATILE = range(len(REGIMES))

PERIODS_PER_YEAR = 252 * BARS_PER_SESSION
CONDITION_REGIMES: dict[str, tuple[str, ...]] = {
    "all": REGIMES,
    "trend": ("trend_up", "trend_down"),
    "strong_trend": ("trend_up", "trend_down"),
    "sideways": ("sideways",),
    "volatile": ("volatile",),
}
STRONG_TREND_SCALE = 1.5  # "strong_trend" multiplies trend drift and mean duration by this
GARCH_T_DOF = 8.0  # GARCH shocks are standardised Student-t with this many degrees of freedom
GARCH_VOLATILE_RATIO = 1.5  # conditional vol above this multiple of the unconditional → volatile
JUMP_VOLATILE_MINUTES = 30  # bars labelled volatile from a jump (or a stress gap) on
CRASH_RECOVERY_SHARE = 0.8  # share of a flash crash recovered over the following 2x its length


@dataclass(frozen=True)
class PricePath:
    """Per-minute ingredients of a price path, before bars are built."""

    log_returns: np.ndarray  # log return from each bar's open to its close
    gaps: np.ndarray  # log jump from the previous close to each bar's open (0 = none)
    sigma: np.ndarray  # per-minute volatility in force at each bar
    labels: np.ndarray  # int8 codes into REGIMES


def per_minute_sigma(annual_vol: np.ndarray | float) -> np.ndarray | float:
    """Per-minute standard deviation of log returns for an annualised volatility."""
    return annual_vol / np.sqrt(PERIODS_PER_YEAR)


def _gbm_returns(
    drift: np.ndarray | float, sigma: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Log returns of a GBM with annual ``drift`` and per-minute ``sigma``."""
    return drift / PERIODS_PER_YEAR - 0.5 * sigma**2 + sigma * rng.standard_normal(sigma.shape)


def _daily_annual_vol(cfg: SyntheticConfig, days: int, rng: np.random.Generator) -> np.ndarray:
    """Annual vol of every bar: ``cfg.annual_vol``, or one uniform draw per day in the range."""
    if cfg.volatility_range is None:
        return np.full(days * BARS_PER_SESSION, cfg.annual_vol)
    low, high = cfg.volatility_range
    return np.repeat(rng.uniform(low, high, size=days), BARS_PER_SESSION)


def _monte_carlo(
    cfg: SyntheticConfig, days: int, rng: np.random.Generator, _: np.random.Generator
) -> PricePath:
    sigma = per_minute_sigma(_daily_annual_vol(cfg, days, rng))
    drift = cfg.annual_drift
    label = TREND_UP if drift > 0 else TREND_DOWN if drift < 0 else SIDEWAYS
    return PricePath(
        _gbm_returns(drift, sigma, rng),
        np.zeros_like(sigma),
        sigma,
        np.full(sigma.size, label, np.int8),
    )


def _garch_unit_variance(shocks: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Conditional variances of a GARCH(1,1) with unconditional variance 1 driven by ``shocks``.

    ``h[t] = omega + (alpha * z[t-1]**2 + beta) * h[t-1]`` with ``omega = 1 - alpha - beta``; a
    plain float loop (about 0.1 s per million steps) since the recursion is inherently serial.
    """
    omega = 1.0 - alpha - beta
    growth = (alpha * shocks[:-1] ** 2 + beta).tolist()
    variance = [1.0] * shocks.size
    h = 1.0
    for t, g in enumerate(growth, start=1):
        h = omega + g * h
        variance[t] = h
    return np.asarray(variance)


def _garch(
    cfg: SyntheticConfig, days: int, rng: np.random.Generator, _: np.random.Generator
) -> PricePath:
    unit_sigma = per_minute_sigma(_daily_annual_vol(cfg, days, rng))
    shocks = rng.standard_t(GARCH_T_DOF, unit_sigma.size) / np.sqrt(GARCH_T_DOF / (GARCH_T_DOF - 2))
    conditional = np.sqrt(_garch_unit_variance(shocks, cfg.garch.alpha, cfg.garch.beta))
    sigma = unit_sigma * conditional
    log_returns = cfg.annual_drift / PERIODS_PER_YEAR - 0.5 * sigma**2 + sigma * shocks
    labels = np.where(conditional > GARCH_VOLATILE_RATIO, VOLATILE, SIDEWAYS).astype(np.int8)
    return PricePath(log_returns, np.zeros_like(sigma), sigma, labels)


def _mark_windows(n: int, starts: np.ndarray, length: int) -> np.ndarray:
    """Boolean mask of the bars in ``[start, start + length)`` for every start (clipped to n)."""
    edges = np.zeros(n + 1, np.int64)
    np.add.at(edges, starts, 1)
    np.add.at(edges, np.minimum(starts + length, n), -1)
    return np.cumsum(edges[:-1]) > 0


def _jump(
    cfg: SyntheticConfig, days: int, rng: np.random.Generator, _: np.random.Generator
) -> PricePath:
    sigma = per_minute_sigma(_daily_annual_vol(cfg, days, rng))
    rate = cfg.jump.per_day / BARS_PER_SESSION
    mean, std = cfg.jump.mean, cfg.jump.std
    compensator = rate * np.expm1(mean + 0.5 * std**2)  # keeps E[price] growing at annual_drift
    log_returns = _gbm_returns(cfg.annual_drift, sigma, rng) - compensator
    counts = rng.poisson(rate, sigma.size)
    hit = np.flatnonzero(counts)
    jump_sizes = counts[hit] * mean + np.sqrt(counts[hit]) * std * rng.standard_normal(hit.size)
    log_returns[hit] += jump_sizes
    volatile = _mark_windows(sigma.size, hit, JUMP_VOLATILE_MINUTES)
    labels = np.where(volatile, VOLATILE, SIDEWAYS).astype(np.int8)
    return PricePath(log_returns, np.zeros_like(sigma), sigma, labels)


@dataclass(frozen=True)
class _RegimeTable:
    """The regimes the chain may visit, as parallel arrays."""

    codes: np.ndarray
    drift: np.ndarray
    vol: np.ndarray
    mean_minutes: np.ndarray


def _allowed_regimes(cfg: SyntheticConfig) -> _RegimeTable:
    """``cfg.regimes`` restricted by ``cfg.conditions`` (strong_trend strengthens the trends)."""
    conditions = list(cfg.conditions)
    unknown = [c for c in conditions if c not in CONDITION_REGIMES]
    if unknown:
        raise ValueError(f"unknown market conditions {unknown}; expected {list(CONDITION_REGIMES)}")
    allowed = {name for c in conditions for name in CONDITION_REGIMES[c]}
    strong = "strong_trend" in conditions
    rows = []
    for spec in cfg.regimes:
        if spec.name not in REGIMES:
            raise ValueError(f"unknown regime {spec.name!r}; expected one of {list(REGIMES)}")
        if spec.name not in allowed:
            continue
        scale = STRONG_TREND_SCALE if strong and spec.name in CONDITION_REGIMES["trend"] else 1.0
        rows.append(
            (REGIMES.index(spec.name), spec.drift * scale, spec.vol, spec.mean_minutes * scale)
        )
    if not rows:
        raise ValueError(f"no regime in cfg.regimes matches the conditions {conditions}")
    codes, drift, vol, mean_minutes = (np.asarray(column) for column in zip(*rows, strict=True))
    return _RegimeTable(codes.astype(np.int8), drift, vol, mean_minutes)


def _regime_states(
    cfg: SyntheticConfig, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bar annual drift, per-minute sigma and label of a Markov-switching regime chain.

    Segments last a geometric number of minutes with the regime's mean; on a switch the next
    regime is uniform among the other allowed ones (state + uniform offset in 1..k-1, mod k).
    """
    table = _allowed_regimes(cfg)
    k = table.codes.size
    batch = max(16, int(2 * n / table.mean_minutes.min()) + 1)
    states: list[np.ndarray] = []
    durations: list[np.ndarray] = []
    state, covered = int(rng.integers(k)), 0
    while covered < n:
        offsets = rng.integers(1, k, batch) if k > 1 else np.zeros(batch, np.int64)
        chain = (state + np.concatenate(([0], np.cumsum(offsets[:-1])))) % k
        lengths = rng.geometric(1.0 / table.mean_minutes[chain])
        states.append(chain)
        durations.append(lengths)
        state, covered = int((chain[-1] + offsets[-1]) % k), covered + int(lengths.sum())
    chain, lengths = np.concatenate(states), np.concatenate(durations)
    segment_vol = table.vol[chain]
    if cfg.volatility_range is not None:
        # map the regimes' vols onto the range, keeping their order (volatile stays the most volatile,
        # trends keep their edge relative to their noise)
        low, high = cfg.volatility_range
        lo, hi = float(table.vol.min()), float(table.vol.max())
        share = (segment_vol - lo) / (hi - lo) if hi > lo else np.full(segment_vol.shape, 0.5)
        segment_vol = low + share * (high - low)
    drift = np.repeat(table.drift[chain], lengths)[:n]
    sigma = per_minute_sigma(np.repeat(segment_vol, lengths)[:n])
    labels = np.repeat(table.codes[chain], lengths)[:n]
    return drift, sigma, labels


def _regime(
    cfg: SyntheticConfig, days: int, rng: np.random.Generator, _: np.random.Generator
) -> PricePath:
    drift, sigma, labels = _regime_states(cfg, days * BARS_PER_SESSION, rng)
    return PricePath(_gbm_returns(drift, sigma, rng), np.zeros_like(sigma), sigma, labels)


def _stress(
    cfg: SyntheticConfig, days: int, rng: np.random.Generator, event_rng: np.random.Generator
) -> PricePath:
    """The ``regime`` path (same draws) with flash crashes, session-open gaps and vol spikes."""
    n = days * BARS_PER_SESSION
    drift, sigma, labels = _regime_states(cfg, n, rng)
    spec = cfg.stress
    volatile = np.zeros(n, bool)

    spike_starts = event_rng.integers(0, n, spec.vol_spikes)
    spiking = _mark_windows(n, spike_starts, spec.spike_minutes)
    sigma = np.where(spiking, sigma * spec.spike_multiplier, sigma)
    volatile |= spiking
    log_returns = _gbm_returns(drift, sigma, rng)

    fall_minutes = spec.crash_minutes
    fall = -np.log1p(-spec.crash_size)
    crash_shape = np.concatenate(
        (
            np.full(fall_minutes, -fall / fall_minutes),
            np.full(2 * fall_minutes, CRASH_RECOVERY_SHARE * fall / (2 * fall_minutes)),
        )
    )
    for start in event_rng.integers(0, n, spec.flash_crashes):
        stop = min(start + crash_shape.size, n)
        log_returns[start:stop] += crash_shape[: stop - start]
        volatile[start:stop] = True

    gaps = np.zeros(n)
    gap_sessions = event_rng.choice(np.arange(1, days), min(spec.gaps, days - 1), replace=False)
    gap_bars = gap_sessions * BARS_PER_SESSION
    signs = event_rng.choice([-1.0, 1.0], gap_bars.size)
    gaps[gap_bars] = np.log1p(signs * spec.gap_size)
    volatile |= _mark_windows(n, gap_bars, JUMP_VOLATILE_MINUTES)

    return PricePath(log_returns, gaps, sigma, np.where(volatile, VOLATILE, labels).astype(np.int8))


def _gan(
    cfg: SyntheticConfig, days: int, rng: np.random.Generator, _: np.random.Generator
) -> PricePath:
    """A fitted QuantGAN's returns; a conditional one follows the regime chain of ``cfg``."""
    from grandmodel.data.synthetic.gan import sample_returns  # torch, only when asked for

    n = days * BARS_PER_SESSION
    wanted = _regime_states(cfg, n, rng)[2]
    calendar = (session_minute_of_day(days), np.repeat(np.arange(days), BARS_PER_SESSION))
    log_returns, sigma, labels = sample_returns(str(cfg.gan_path), n, wanted, rng, calendar)
    return PricePath(log_returns, np.zeros(n), sigma, labels)


PathGenerator = Callable[
    [SyntheticConfig, int, np.random.Generator, np.random.Generator], PricePath
]
PATH_GENERATORS: dict[str, PathGenerator] = {
    "monte_carlo": _monte_carlo,
    "garch": _garch,
    "regime": _regime,
    "jump": _jump,
    "stress": _stress,
    "gan": _gan,
}


def generate(cfg: SyntheticConfig, timezone: str = EXCHANGE_TZ) -> pd.DataFrame:
    """Seeded, deterministic one-minute OHLCV bars on the ES session calendar.

    Index:
    ``session_index(cfg.start, cfg.days, timezone)``; columns open, high, low, close, volume
    (float64) and regime (int8 code into :data:`REGIMES`).
    """
    name = str(cfg.generator)
    if name not in PATH_GENERATORS:
        raise ValueError(
            f"unknown synthetic generator {name!r}; expected one of {list(PATH_GENERATORS)}"
        )
    days = cfg.days
    index = session_index(cfg.start, days, timezone)
    rng = np.random.default_rng(cfg.seed)
    path_rng, event_rng, noise_rng, bar_rng, volume_rng = rng.spawn(5)
    path = PATH_GENERATORS[name](cfg, days, path_rng, event_rng)
    bars = build_bars(
        path.log_returns,
        path.gaps,
        path.sigma,
        initial_price=cfg.initial_price,
        tick_size=cfg.tick_size,
        noise_level=cfg.noise_level,
        base_volume=cfg.base_volume,
        rngs=(noise_rng, bar_rng, volume_rng),
    )
    frame = pd.DataFrame(bars, index=index)
    frame["regime"] = path.labels
    return frame

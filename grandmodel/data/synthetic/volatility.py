"""The slow volatility components of one-minute returns, kept outside the GAN's networks.

A temporal convolution whose receptive field is about an hour (``gan.layers=5``: 63 minutes) cannot
produce what moves volatility over hours and days: the intraday profile (index futures' U-shape
around the US open and close) and the day-to-day level. The GAN therefore learns returns divided by
both, and sampling multiplies them back (the intraday deseasonalisation of Andersen & Bollerslev,
1997, "Intraday periodicity and volatility persistence in financial markets", with a daily level
on top)::

    r_t = profile[minute of day of t] * level[session of t] * x_t

- ``profile``: mean |r| at each Chicago minute of day (1,440 entries), smoothed over a centred
  circular window of ``PROFILE_SMOOTHING`` minutes and divided by its mean over the returns;
  minutes never observed get 1.
- ``level``: the root mean square of a session's profile-adjusted returns over that of all of
  them (1 for sessions with fewer than ``MIN_SESSION_RETURNS``); its logarithm follows an AR(1)
  fitted by least squares on consecutive fitted sessions and is sampled from its stationary start.

Sessions and minutes come from the calendar (:func:`calendar_positions` for a real series, the ES
session layout for generated days), so a generated path has the fitted profile at the right clock
times. Without the components the model is the identity (profile 1, level 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from grandmodel.data.synthetic.calendar import EXCHANGE_TZ, MINUTES_PER_DAY, SESSION_OPEN_MINUTE

PROFILE_SMOOTHING = 5  # minutes of the centred moving average of the profile (keeps the open)
MIN_SESSION_RETURNS = 60  # a session with fewer returns keeps level 1 and is left out of the AR(1)

Calendar = tuple[np.ndarray, np.ndarray]  # (Chicago minute of day, session code) of every return


def calendar_positions(stamps: pd.DatetimeIndex) -> Calendar:
    """Chicago minute of day and ES session code (trading day D: 17:00 CT on D - 1 to 16:00 CT
    on D, as :mod:`calendar`) of each bar stamp."""
    local = pd.DatetimeIndex(stamps).tz_convert(EXCHANGE_TZ)
    minute = (local.hour * 60 + local.minute).to_numpy()
    shifted = local + pd.Timedelta(minutes=MINUTES_PER_DAY - SESSION_OPEN_MINUTE)
    day = shifted.tz_localize(None).normalize().as_unit("ns").asi8 // (MINUTES_PER_DAY * 60 * 10**9)
    return minute.astype(np.int64), np.asarray(day, dtype=np.int64)


@dataclass(frozen=True)
class VolatilityModel:
    """Intraday profile and AR(1) of the log daily level; the default is the identity."""

    profile: list[float] = field(default_factory=lambda: [1.0] * MINUTES_PER_DAY)
    daily: bool = False  # a level per session (else 1)
    level_mean: float = 0.0  # of the log level
    level_phi: float = 0.0
    level_sd: float = 0.0  # of the AR(1)'s innovations

    @classmethod
    def fit(
        cls, returns: np.ndarray, calendar: Calendar, *, profile: bool, daily: bool
    ) -> VolatilityModel:
        minute, session = calendar
        r = np.asarray(returns, dtype=np.float64)
        shape = np.ones(MINUTES_PER_DAY)
        if profile:
            total = _circular_moving_sum(np.bincount(minute, np.abs(r), MINUTES_PER_DAY))
            count = _circular_moving_sum(np.bincount(minute, minlength=MINUTES_PER_DAY))
            seen = count > 0
            shape[seen] = total[seen] / count[seen]
            if r.size and shape[minute].mean() > 0:
                shape[seen] /= shape[minute].mean()
        if not daily:
            return cls(profile=shape.tolist())
        logs = _session_log_levels(r / shape[minute], session)
        return cls(shape.tolist(), True, *_ar1(logs))

    def adjust(self, returns: np.ndarray, calendar: Calendar) -> np.ndarray:
        """Returns divided by the profile and by each session's realised level (what the GAN learns)."""
        minute, session = calendar
        x = np.asarray(returns, dtype=np.float64) / np.asarray(self.profile)[minute]
        if not self.daily:
            return x
        logs = _session_log_levels(x, session)
        codes = np.unique(session, return_inverse=True)[1]
        return x / np.exp(np.nan_to_num(logs, nan=0.0))[codes]

    def scale(self, calendar: Calendar, rng: np.random.Generator) -> np.ndarray:
        """The factor of every return of a generated path: profile at its minute times a level per
        session drawn from the AR(1) (sessions in order of first appearance)."""
        minute, session = calendar
        codes = np.unique(session, return_inverse=True)[1]
        days = int(codes.max()) + 1 if codes.size else 0
        logs = np.full(days, self.level_mean if self.daily else 0.0)
        if self.daily and self.level_sd > 0 and days:
            shocks = rng.standard_normal(days)
            logs[0] += self.level_sd / np.sqrt(1.0 - self.level_phi**2) * shocks[0]
            for d in range(1, days):
                deviation = self.level_phi * (logs[d - 1] - self.level_mean)
                logs[d] = self.level_mean + deviation + self.level_sd * shocks[d]
        return np.asarray(self.profile)[minute] * np.exp(logs)[codes]

    def to_dict(self) -> dict:
        return asdict(self)


def _circular_moving_sum(x: np.ndarray, width: int = PROFILE_SMOOTHING) -> np.ndarray:
    """Centred moving sum over ``width`` entries of a circular series (minutes of a day)."""
    half = width // 2
    return np.convolve(np.r_[x[-half:], x, x[:half]], np.ones(width), "valid")


def _session_log_levels(x: np.ndarray, session: np.ndarray) -> np.ndarray:
    """log(RMS of each session / RMS of all) per session code in sorted order; NaN for sessions
    shorter than ``MIN_SESSION_RETURNS``."""
    codes, inverse = np.unique(session, return_inverse=True)
    count = np.bincount(inverse, minlength=codes.size)
    mean_square = np.bincount(inverse, x**2, codes.size) / np.maximum(count, 1)
    overall = float(np.mean(x**2)) if x.size else 1.0
    with np.errstate(divide="ignore"):
        logs = 0.5 * np.log(mean_square / overall)
    logs[(count < MIN_SESSION_RETURNS) | ~np.isfinite(logs)] = np.nan
    return logs


def _ar1(logs: np.ndarray) -> tuple[float, float, float]:
    """Mean, coefficient and innovation s.d. of an AR(1) fitted by least squares to the finite
    consecutive pairs of ``logs``; (mean, 0, s.d.) with fewer than 3 pairs; |phi| kept below 0.99."""
    finite = logs[np.isfinite(logs)]
    if finite.size == 0:
        return 0.0, 0.0, 0.0
    mean = float(finite.mean())
    pairs = np.isfinite(logs[:-1]) & np.isfinite(logs[1:])
    if pairs.sum() < 3:
        return mean, 0.0, float(finite.std())
    a, b = logs[:-1][pairs] - mean, logs[1:][pairs] - mean
    phi = float(np.clip(a @ b / max(a @ a, 1e-18), -0.99, 0.99))
    return mean, phi, float(np.std(b - phi * a))

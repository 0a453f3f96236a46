"""The volatility components the GAN leaves to :mod:`grandmodel.data.synthetic.volatility`: a known
intraday profile and a known AR(1) of daily levels are recovered from returns, removed by
``adjust`` and put back by ``scale``; calendar positions follow the ES session layout."""

from __future__ import annotations

import numpy as np
import pytest

from grandmodel.data.synthetic import session_index
from grandmodel.data.synthetic.calendar import BARS_PER_SESSION, session_minute_of_day
from grandmodel.data.synthetic.volatility import VolatilityModel, calendar_positions

DAYS = 400
PHI, SD = 0.8, 0.25  # AR(1) of the log daily level


def _profile(minute: np.ndarray) -> np.ndarray:
    """A U-shape around the US open (08:30 CT) and close (15:15 CT), quiet overnight."""
    since_open, to_close = (minute - 510) % 1440, (915 - minute) % 1440
    return 0.6 + 2.0 * np.exp(-since_open / 40.0) + 1.0 * np.exp(-to_close / 60.0)


@pytest.fixture(scope="module")
def known() -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    logs = np.zeros(DAYS)
    for d in range(1, DAYS):
        logs[d] = PHI * logs[d - 1] + SD * rng.standard_normal()
    minute = session_minute_of_day(DAYS)
    session = np.repeat(np.arange(DAYS), BARS_PER_SESSION)
    sigma = 1e-4 * _profile(minute) * np.exp(logs)[session]
    return sigma * rng.standard_normal(sigma.size), (minute, session), logs


def test_calendar_positions_follow_the_es_sessions() -> None:
    stamps = session_index("2024-03-07", 4)  # across a DST change
    minute, session = calendar_positions(stamps)
    np.testing.assert_array_equal(minute, session_minute_of_day(4))
    assert (np.diff(session) >= 0).all()
    assert [int((session == s).sum()) for s in np.unique(session)] == [BARS_PER_SESSION] * 4
    for unit in ("s", "us"):  # what read_csv and parquet files give
        seconds = calendar_positions(stamps.as_unit(unit))
        np.testing.assert_array_equal(seconds[0], minute)
        np.testing.assert_array_equal(seconds[1], session)


def test_fit_recovers_the_intraday_profile_and_the_daily_ar1(known) -> None:
    returns, calendar, logs = known
    model = VolatilityModel.fit(returns, calendar, profile=True, daily=True)
    truth = _profile(np.arange(1440))
    observed = np.unique(calendar[0])
    fitted = np.asarray(model.profile)[observed]
    expected = truth[observed] / truth[calendar[0]].mean()
    assert np.corrcoef(fitted, expected)[0, 1] > 0.97
    assert np.median(np.abs(fitted / expected - 1)) < 0.1
    a, b = logs[:-1] - logs.mean(), logs[1:] - logs.mean()  # the AR(1) of the true levels
    phi = a @ b / (a @ a)
    assert abs(phi - PHI) < 0.1 and abs(model.level_phi - phi) < 0.03
    assert abs(model.level_sd - np.std(b - phi * a)) < 0.01
    # with the components removed, no minute of day and no session stands out
    x = model.adjust(returns, calendar)
    by_minute = (
        np.bincount(calendar[0], np.abs(x), 1440)[observed] / np.bincount(calendar[0])[observed]
    )
    assert by_minute.std() / by_minute.mean() < 0.15 < expected.std() / expected.mean()
    session_rms = np.sqrt(np.bincount(calendar[1], x**2) / BARS_PER_SESSION)
    assert np.log(session_rms).std() < 0.05 < np.std(logs)


def test_scale_puts_the_components_back_and_is_seeded(known) -> None:
    returns, calendar, _ = known
    model = VolatilityModel.fit(returns, calendar, profile=True, daily=True)
    first = model.scale(calendar, np.random.default_rng(3))
    np.testing.assert_array_equal(first, model.scale(calendar, np.random.default_rng(3)))
    levels = np.log(first[calendar[1] != np.roll(calendar[1], 1)] / model.profile[calendar[0][0]])
    a, b = levels[:-1] - levels.mean(), levels[1:] - levels.mean()
    assert abs(a @ b / (a @ a) - PHI) < 0.1  # the sampled levels have the fitted persistence
    assert abs(np.std(b - model.level_phi * a) - SD) < 0.05
    within_day = first / np.exp(levels)[calendar[1]]
    np.testing.assert_allclose(within_day, np.asarray(model.profile)[calendar[0]], rtol=1e-12)


def test_without_components_the_model_is_the_identity(known) -> None:
    returns, calendar, _ = known
    model = VolatilityModel.fit(returns, calendar, profile=False, daily=False)
    assert model == VolatilityModel()
    np.testing.assert_array_equal(model.adjust(returns, calendar), returns)
    np.testing.assert_array_equal(model.scale(calendar, np.random.default_rng(0)), 1.0)

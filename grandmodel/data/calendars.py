"""Exchange sessions and holidays from the maintained ``exchange_calendars`` package (never a
hand-made holiday list): the trading days an instrument's ``exchange`` code implies."""

from __future__ import annotations

import exchange_calendars as xcals
import pandas as pd

from grandmodel.errors import GrandModelError


def session_dates(exchange: str, start: str, end: str) -> pd.DatetimeIndex:
    """Dates (naive) of the exchange's sessions in ``[start, end]``, holidays left out."""
    try:
        calendar = xcals.get_calendar(exchange)
    except xcals.errors.InvalidCalendarName:
        raise GrandModelError(
            f"instrument.exchange: {exchange!r} is not an exchange_calendars code; expected one of "
            "XNYS, XNAS, CMES, XLON, ... (exchange_calendars.get_calendar_names())"
        ) from None
    first = max(pd.Timestamp(start), calendar.first_session)
    last = min(pd.Timestamp(end), calendar.last_session)
    return pd.DatetimeIndex(calendar.sessions_in_range(first, last))


def sessions_per_year(exchange: str, first_year: int, last_year: int) -> float:
    """Mean number of sessions per calendar year over ``first_year..last_year`` (XNYS: ~252)."""
    dates = session_dates(exchange, f"{first_year}-01-01", f"{last_year}-12-31")
    return len(dates) / (last_year - first_year + 1)

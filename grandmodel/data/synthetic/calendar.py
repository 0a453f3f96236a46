"""ES (CME Globex) session calendar of one-minute bars, defined in Chicago time.

Trading day D's session runs from 17:00 CT on the calendar day before D to 16:00 CT on D
(Sunday 17:00 -> Monday 16:00 is Monday's session), with the daily halt 16:00-17:00 CT and
no trading from Friday 16:00 to Sunday 17:00. Exchange holidays are ignored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EXCHANGE_TZ = "America/Chicago"
BARS_PER_SESSION = 1380  # 23 hours of one-minute bars
SESSION_OPEN_MINUTE = 17 * 60  # 17:00 CT, the evening before the trading day
MINUTES_PER_DAY = 24 * 60


def trading_days(start: str, days: int) -> np.ndarray:
    """``days`` consecutive weekdays (datetime64[D]) from ``start``, rolled off a weekend."""
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    first = np.datetime64(pd.Timestamp(start).date(), "D")
    return np.busday_offset(first, np.arange(days), roll="forward")


def session_minute_of_day(days: int) -> np.ndarray:
    """Chicago minute of day (0..1439) of every bar of ``days`` sessions, in index order."""
    one_session = (SESSION_OPEN_MINUTE + np.arange(BARS_PER_SESSION)) % MINUTES_PER_DAY
    return np.tile(one_session, days)


def session_index(start: str, days: int, timezone: str = EXCHANGE_TZ) -> pd.DatetimeIndex:
    """Open stamps of the one-minute bars of ``days`` ES trading days beginning with ``start``.

    Built as Chicago wall-clock times, localised to Chicago (so DST is handled by the time zone
    database) and converted to ``timezone``; named ``"timestamp"``.
    """
    opens = trading_days(start, days).astype("datetime64[m]") - np.timedelta64(
        MINUTES_PER_DAY - SESSION_OPEN_MINUTE, "m"
    )
    local = (opens[:, None] + np.arange(BARS_PER_SESSION).astype("timedelta64[m]")).ravel()
    index = pd.DatetimeIndex(local.astype("datetime64[ns]"), name="timestamp")
    index = index.tz_localize(EXCHANGE_TZ, ambiguous="raise", nonexistent="raise")
    return index.tz_convert(timezone)

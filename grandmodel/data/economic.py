"""Economic indicators / calendar (``release_time, name, actual, forecast[, previous]``) → per-bar
features known only after each release (docs/architecture.md, "Time and look-ahead").

At a bar's known time t (its close): ``hours_to_next`` the next scheduled release strictly after t (a
calendar is published in advance, so the schedule is known), ``hours_since_last`` the last release
strictly before t, and ``last_surprise`` that release's (actual - forecast) / |forecast| (0 when the
forecast is 0 or missing). A release without an actual yet is a scheduled event only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from grandmodel.data.loader import _normal, _numbers, _timestamps, open_source
from grandmodel.errors import DataError

EVENT_COLUMNS = ("release_time", "name", "actual", "forecast")
EVENT_FEATURES = ("hours_to_next", "hours_since_last", "last_surprise")
HOUR_NS = 3_600_000_000_000


def read_events(path: str | Path, *, timezone: str, names: list[str] | None = None) -> pd.DataFrame:
    """Validated releases sorted by time (``names``: keep only these indicators)."""
    path = Path(path)
    raw, where = open_source(path, "a CSV or Parquet economic calendar", "releases")
    columns = {_normal(c): c for c in raw.columns}
    for name in EVENT_COLUMNS:
        if name not in columns:
            raise DataError(
                f"{path}: missing column '{name}' (expected columns {', '.join(EVENT_COLUMNS)}[, previous]; "
                f"found: {', '.join(map(str, raw.columns))})"
            )
    column = columns["release_time"]
    try:
        stamps = _timestamps(raw.rename(columns={column: "timestamp"}), path, where, timezone)
    except DataError as exc:  # name the user's column, not the loader's
        raise DataError(str(exc).replace("column 'timestamp'", f"column '{column}'")) from None
    events = pd.DataFrame(
        {
            "release_time": stamps,
            "name": raw[columns["name"]].fillna("").astype(str).str.strip(),
            "actual": _numbers(raw[columns["actual"]], "actual", where),
            "forecast": _numbers(raw[columns["forecast"]], "forecast", where),
        }
    )
    for column in ("actual", "forecast"):
        infinite = np.isinf(events[column].to_numpy())
        if infinite.any():
            row = int(np.argmax(infinite))
            raise DataError(
                f"{where(row, column)}: {events[column].iloc[row]!r}; expected a finite number or empty"
            )
    empty = events["name"] == ""
    if empty.any():
        row = int(np.argmax(empty.to_numpy()))
        raise DataError(f"{where(row, 'name')}: empty; expected the indicator's name")
    if names:
        events = events[events["name"].isin(names)]
    return events.sort_values("release_time", kind="stable", ignore_index=True)


def event_features(events: pd.DataFrame, known_ns: np.ndarray) -> pd.DataFrame:
    """:data:`EVENT_FEATURES` at each bar's known time (UTC ns); NaN where there is no such release."""
    times = pd.DatetimeIndex(events["release_time"]).as_unit("ns").asi8
    released = np.isfinite(events["actual"].to_numpy())
    out = pd.DataFrame(index=range(len(known_ns)), columns=list(EVENT_FEATURES), dtype=np.float64)
    nxt = np.searchsorted(times, known_ns, side="right")
    has_next = nxt < len(times)
    out.loc[has_next, "hours_to_next"] = (times[nxt[has_next]] - known_ns[has_next]) / HOUR_NS
    done_times = times[released]
    forecast = events["forecast"].to_numpy()[released]
    surprise = np.where(
        np.isfinite(forecast) & (forecast != 0),
        (events["actual"].to_numpy()[released] - forecast)
        / np.abs(np.where(forecast != 0, forecast, 1.0)),
        0.0,
    )
    last = np.searchsorted(done_times, known_ns, side="left") - 1
    seen = last >= 0
    out.loc[seen, "hours_since_last"] = (known_ns[seen] - done_times[last[seen]]) / HOUR_NS
    out.loc[seen, "last_surprise"] = surprise[last[seen]]
    return out

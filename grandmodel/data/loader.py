"""Read an OHLCV file (CSV or Parquet), map header aliases, parse timestamps, and validate every row.

Every problem is a :class:`DataError` with one line naming the file, the row and the column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from grandmodel.config.base import timedelta_of
from grandmodel.errors import DataError

OHLCV = ("open", "high", "low", "close", "volume")
COLUMNS = ("timestamp", *OHLCV)

# Accepted header names (compared lower-case, with spaces, dots and dashes read as underscores).
ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "datetime", "date_time", "time", "ts", "gmt_time", "local_time"),
    "open": ("open", "o", "open_price", "first"),
    "high": ("high", "h", "high_price", "max"),
    "low": ("low", "l", "low_price", "min"),
    "close": ("close", "c", "close_price", "last", "price"),
    "volume": ("volume", "vol", "v", "qty", "quantity", "size"),
}
DATE_ALIASES = ("date", "day", "trade_date")
TIME_ALIASES = ("time", "clock", "bar_time")


def open_source(path: Path, what: str, rows: str) -> tuple[pd.DataFrame, _Locator]:
    """The raw table of a CSV or Parquet source and the locator its messages name rows with;
    one line when it is a folder, missing or empty (``what``: the file expected, ``rows``: its rows)."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected {what}")
    if not path.is_file():
        raise DataError(f"{path}: file not found; expected {what}")
    raw = _read_table(path)
    if raw.empty:
        raise DataError(f"{path}: no rows (expected a header and {rows})")
    return raw, _Locator(path, csv=path.suffix.lower() not in (".parquet", ".pq"))


def read_ohlcv(
    path: str | Path,
    *,
    timezone: str,
    base: str = "1min",
    bar_stamp: str = "open",
    on_duplicate: str = "error",
    on_unsorted: str = "error",
    on_invalid_row: str = "error",
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Load, validate and clean one file.

    Returns a frame indexed by bar *open* time (tz-aware in ``timezone``) with float64 OHLCV, and a
    dict of how many rows each policy removed.
    """
    path = Path(path)
    raw, where = open_source(path, "an OHLCV CSV or Parquet file", "OHLCV bars")
    frame = pd.DataFrame({"timestamp": _timestamps(raw, path, where, timezone)})
    columns = _map_columns(raw.columns, path)
    for name in OHLCV:
        frame[name] = _numbers(raw[columns[name]], name, where)
    frame["row"] = np.arange(len(frame))
    frame, removed = _check_rows(frame, where, on_invalid_row)
    frame = _order(frame, where, on_unsorted, on_duplicate, removed)
    step = timedelta_of(base)
    assert step is not None
    if bar_stamp == "close":
        frame["timestamp"] = frame["timestamp"] - step
    _check_grid(frame, where, step, base)
    out = frame.set_index("timestamp")[list(OHLCV)]
    return out, removed


class _Locator:
    """Formats 'file: line N' for CSV (header is line 1) or 'file: row N' for Parquet."""

    def __init__(self, path: Path, csv: bool) -> None:
        self.path, self.csv = path, csv

    def __call__(self, row: int, column: str | None = None) -> str:
        place = f"line {row + 2}" if self.csv else f"row {row + 1}"
        return f"{self.path}: {place}" + (f", column '{column}'" if column else "")


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file (expected a header and OHLCV bars)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot be read as CSV or Parquet ({first})") from None


def _normal(name: object) -> str:
    return str(name).strip().lower().replace(" ", "_").replace(".", "_").replace("-", "_")


def _map_columns(columns: pd.Index, path: Path) -> dict[str, str]:
    normal = {_normal(c): c for c in columns}
    found: dict[str, str] = {}
    for name in OHLCV:
        match = next((normal[a] for a in ALIASES[name] if a in normal), None)
        if match is None:
            raise DataError(
                f"{path}: missing column '{name}' (expected columns {', '.join(COLUMNS)}; "
                f"accepted names for {name}: {', '.join(ALIASES[name])}; found: {', '.join(map(str, columns))})"
            )
        found[name] = match
    return found


def _timestamps(raw: pd.DataFrame, path: Path, where: _Locator, timezone: str) -> pd.Series:
    """One tz-aware timestamp per row, from a timestamp column or from separate date and time columns."""
    normal = {_normal(c): c for c in raw.columns}
    stamp_col = next((normal[a] for a in ALIASES["timestamp"] if a in normal), None)
    date_col = next((normal[a] for a in DATE_ALIASES if a in normal), None)
    if stamp_col is not None and date_col is not None and _normal(stamp_col) in TIME_ALIASES:
        text = raw[date_col].astype(str) + " " + raw[stamp_col].astype(str)
        column = f"{date_col}+{stamp_col}"
    elif stamp_col is not None:
        text, column = raw[stamp_col], str(stamp_col)
    elif date_col is not None:
        text, column = raw[date_col], str(date_col)
    else:
        raise DataError(
            f"{path}: missing column 'timestamp' (expected columns {', '.join(COLUMNS)}; accepted names "
            f"for timestamp: {', '.join(ALIASES['timestamp'])}, or separate date and time columns)"
        )
    if pd.api.types.is_datetime64_any_dtype(text):
        parsed = pd.Series(text)
    elif pd.api.types.is_numeric_dtype(text) or _all_digits(text):
        parsed = _epoch(pd.to_numeric(text, errors="coerce"))
    else:
        parsed = _parse_text_stamps(text.astype(str), utc=_has_offsets(text))
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(
            f"{where(row, column)}: cannot parse {str(text.iloc[row])!r} as a timestamp"
        )
    return _localize(parsed, where, timezone)


def _parse_text_stamps(text: pd.Series, utc: bool) -> pd.Series:
    """Fast path with one inferred format; element-wise ``mixed`` parsing only if that fails."""
    try:
        return pd.to_datetime(text, utc=utc)
    except (ValueError, TypeError):
        return pd.to_datetime(text, errors="coerce", utc=utc, format="mixed")


def _all_digits(text: pd.Series) -> bool:
    sample = text.head(100).astype(str)
    return bool(len(sample)) and bool(sample.str.fullmatch(r"\d{9,19}").all())


def _has_offsets(text: pd.Series) -> bool:
    sample = text.head(100).astype(str)
    return bool(sample.str.contains(r"(?:Z|[+-]\d\d:?\d\d)\s*$", regex=True).any())


def _epoch(values: pd.Series) -> pd.Series:
    """Unix epochs in s, ms, us or ns (told apart by magnitude), as UTC."""
    magnitude = float(np.nanmedian(np.abs(values.to_numpy(dtype=float)))) if len(values) else 0.0
    unit = (
        "s"
        if magnitude < 1e11
        else "ms"
        if magnitude < 1e14
        else "us"
        if magnitude < 1e17
        else "ns"
    )
    return pd.to_datetime(values, unit=unit, utc=True, errors="coerce")


def _localize(parsed: pd.Series, where: _Locator, timezone: str) -> pd.Series:
    parsed = parsed.dt.as_unit("ns")
    if parsed.dt.tz is not None:
        return parsed.dt.tz_convert(timezone)
    try:
        return parsed.dt.tz_localize(timezone, ambiguous="infer", nonexistent="raise")
    except (
        ValueError,
        TypeError,
    ) as exc:  # pytz/zoneinfo ambiguity errors are ValueError subclasses
        first = str(exc).splitlines()[0]
        raise DataError(
            f"{where.path}: local timestamps cannot be placed in {timezone} ({first}); "
            "write them with UTC offsets (e.g. 2023-11-05T01:30:00-05:00) or set data.timezone"
        ) from None


def _numbers(values: pd.Series, column: str, where: _Locator) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=np.float64)
    text = values.astype(str).str.strip()
    numbers = pd.to_numeric(text.str.lower().replace({"": "nan"}), errors="coerce").to_numpy(
        np.float64
    )
    unparsed = (
        np.isnan(numbers) & ~text.str.lower().isin(["nan", "", "na", "null", "none"]).to_numpy()
    )
    if unparsed.any():
        row = int(np.argmax(unparsed))
        raise DataError(f"{where(row, column)}: cannot parse {text.iloc[row]!r} as a number")
    return numbers


def _check_rows(
    frame: pd.DataFrame, where: _Locator, policy: str
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Finite values, positive prices, high >= low, open/close inside [low, high], volume >= 0."""
    o, h, lo, c, v = (frame[n].to_numpy() for n in OHLCV)
    tests: list[tuple[np.ndarray, str | None, str]] = []
    for name, values in zip(OHLCV, (o, h, lo, c, v), strict=True):
        tests.append(
            (~np.isfinite(values), name, "is missing, NaN or infinite (expected a finite number)")
        )
    for name, values in zip(OHLCV[:4], (o, h, lo, c), strict=True):
        tests.append((values <= 0, name, "is not positive (expected a price > 0)"))
    tests.append((h < lo, "high", "is below low (expected high >= low)"))
    tests.append(((o < lo) | (o > h), "open", "is outside [low, high]"))
    tests.append(((c < lo) | (c > h), "close", "is outside [low, high]"))
    tests.append((v < 0, "volume", "is negative (expected volume >= 0)"))
    removed = {"invalid_rows": 0}
    bad_any = np.zeros(len(frame), dtype=bool)
    with np.errstate(invalid="ignore"):
        for bad, column, message in tests:
            bad = bad & ~bad_any if policy == "drop" else bad
            if bad.any():
                if policy != "drop":
                    row = int(np.argmax(bad))
                    value = float(frame[column].iloc[row])  # plain: nan, not np.float64(nan)
                    raise DataError(
                        f"{where(row, column)}: {value!r} {message} (data.on_invalid_row=drop skips such rows)"
                    )
                bad_any |= bad
    if bad_any.any():
        removed["invalid_rows"] = int(bad_any.sum())
        frame = frame.loc[~bad_any]
    if frame.empty:
        raise DataError(f"{where.path}: no valid rows left after data.on_invalid_row=drop")
    return frame, removed


def _order(
    frame: pd.DataFrame,
    where: _Locator,
    on_unsorted: str,
    on_duplicate: str,
    removed: dict[str, int],
) -> pd.DataFrame:
    stamps = frame["timestamp"].array.asi8
    back = np.flatnonzero(stamps[1:] < stamps[:-1])
    if back.size:
        if on_unsorted != "sort":
            i = back[0]
            rows = frame["row"].to_numpy()
            raise DataError(
                f"{where(int(rows[i + 1]), 'timestamp')}: {frame['timestamp'].iloc[i + 1]} is earlier than the "
                f"previous row's {frame['timestamp'].iloc[i]} (expected ascending timestamps; data.on_unsorted=sort sorts them)"
            )
        frame = frame.sort_values("timestamp", kind="stable")
        stamps = frame["timestamp"].array.asi8
    same = np.flatnonzero(stamps[1:] == stamps[:-1])
    if same.size:
        if on_duplicate == "error":
            i = same[0]
            rows = frame["row"].to_numpy()
            raise DataError(
                f"{where(int(rows[i + 1]), 'timestamp')}: duplicate timestamp {frame['timestamp'].iloc[i]} "
                f"(also at {where(int(rows[i])).split(': ', 1)[1]}; data.on_duplicate=keep_first|keep_last picks one)"
            )
        keep = "first" if on_duplicate == "keep_first" else "last"
        dup = frame["timestamp"].duplicated(keep=keep).to_numpy()
        removed["duplicates"] = int(dup.sum())
        frame = frame.loc[~dup]
    return frame


def _check_grid(frame: pd.DataFrame, where: _Locator, step: pd.Timedelta, base: str) -> None:
    """Bars must sit on the base grid, and the base bar size must match the file's spacing."""
    ns = frame["timestamp"].dt.tz_localize(None).array.asi8  # wall-clock ns: the grid is local
    off = np.flatnonzero(ns % step.value)
    if off.size:
        row = int(frame["row"].iloc[off[0]])
        raise DataError(
            f"{where(row, 'timestamp')}: {frame['timestamp'].iloc[off[0]]} is not on the {base} grid "
            "(set data.timeframes.base to the file's bar size, and data.bar_stamp=open|close)"
        )
    if len(ns) > 2:
        gaps = np.diff(ns)
        typical = int(np.median(gaps))
        if typical > step.value and np.mean(gaps == typical) > 0.5:
            raise DataError(
                f"{where.path}: bars are {pd.Timedelta(typical)} apart but data.timeframes.base is {base} "
                "(set data.timeframes.base, and tactical/strategic as multiples of it)"
            )

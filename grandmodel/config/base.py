"""Shared pieces of the config schemas: the error type, a check helper and the validating walker."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


class ConfigError(ValueError):
    """A config value is wrong; the message is one line naming the key and what was expected."""


Problem = tuple[str, str]  # (field name relative to its dataclass, what is wrong)


def check(ok: bool, field: str, message: str) -> list[Problem]:
    """Return one problem when ``ok`` is false, else nothing (schemas collect these in ``problems``)."""
    return [] if ok else [(field, message)]


def walk_problems(obj: Any, prefix: str = "") -> Iterator[str]:
    """Yield ``"key.path: message"`` for every dataclass below ``obj`` whose ``problems()`` complains."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        problems = getattr(obj, "problems", None)
        if callable(problems):
            for field, message in problems():
                yield f"{prefix}{field}: {message}"
        for f in dataclasses.fields(obj):
            yield from walk_problems(getattr(obj, f.name), f"{prefix}{f.name}.")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from walk_problems(value, f"{prefix}{key}.")
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            yield from walk_problems(value, f"{prefix}{i}.")


def timedelta_of(text: str) -> pd.Timedelta | None:
    """Parse a bar size such as ``1min``, ``5min``, ``1h``; ``None`` when it is not a fixed duration."""
    import pandas as pd  # here, not at import: ``--help`` needs no pandas

    try:
        delta = pd.Timedelta(pd.tseries.frequencies.to_offset(text))
    except (ValueError, TypeError):
        return None
    return delta if delta > pd.Timedelta(0) else None


def timestamp_of(text: str) -> pd.Timestamp | None:
    """Parse a date or time such as ``2023-06-01`` or ``2023-06-01 09:30``; ``None`` when it is not one."""
    import pandas as pd

    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        return None
    return None if stamp is pd.NaT else stamp


def date_problems(obj: Any, names: tuple[str, ...]) -> list[Problem]:
    """Each of ``obj``'s fields ``names`` is null or a date/time, and ``start`` is before ``end``."""
    out: list[Problem] = []
    for name in names:
        value = getattr(obj, name)
        if value is not None and timestamp_of(value) is None:
            out += [(name, f"{value!r} is not a date; expected a date or time like '2023-06-01'")]
    start, end = (getattr(obj, n, None) for n in ("start", "end"))
    first, last = timestamp_of(start) if start else None, timestamp_of(end) if end else None
    if first is not None and last is not None and (first.tzinfo is None) == (last.tzinfo is None):
        out += check(first < last, "end", f"must be after start ({start}), got {end}")
    return out

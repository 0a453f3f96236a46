"""Shared pieces of the config schemas: the error type, a check helper and the validating walker."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

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
    try:
        delta = pd.Timedelta(pd.tseries.frequencies.to_offset(text))
    except (ValueError, TypeError):
        return None
    return delta if delta > pd.Timedelta(0) else None

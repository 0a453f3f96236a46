"""Market data: load → validate → resample → features → normalise → split → ``MarketData``.

The names below are imported on first use (they pull in torch and pandas), so that importing a
submodule such as ``grandmodel.data.prepare`` for ``--help`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {
    "Bars": "market_data",
    "MarketData": "market_data",
    "NormStats": "normalise",
    "load_norm": "normalise",
    "save_norm": "normalise",
    "prepare_data": "pipeline",
    "periods_per_year": "timeframes",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f"grandmodel.data.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'grandmodel.data' has no attribute {name!r}")

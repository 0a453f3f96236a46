"""GrandModel: cooperating RL agents (strategic PPO, tactical SAC, risk DQN) that trade futures."""

from __future__ import annotations

from typing import Any

from grandmodel.config import ConfigError, load_config

__all__ = ["ConfigError", "build_env", "load_config", "prepare_data"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Heavy entry points are imported on first use, so ``import grandmodel`` stays light."""
    if name == "prepare_data":
        from grandmodel.data.pipeline import prepare_data

        return prepare_data
    if name == "build_env":
        from grandmodel.env import build_env

        return build_env
    raise AttributeError(f"module 'grandmodel' has no attribute {name!r}")

"""Dataclass schemas of every config group, registered in Hydra's ConfigStore."""

from grandmodel.config.base import ConfigError
from grandmodel.config.compose import CONF_DIR, load_config, typed, validate
from grandmodel.config.root import register_configs

__all__ = ["CONF_DIR", "ConfigError", "load_config", "register_configs", "typed", "validate"]

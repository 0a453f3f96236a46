"""Compose the config exactly as the CLI does, and validate it (``grandmodel.load_config``)."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any, TypeVar

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from grandmodel.config.base import ConfigError, walk_problems
from grandmodel.config.messages import describe, real_choices, unknown_key
from grandmodel.config.root import PROJECT_ROOT, register_configs

CONF_DIR = PROJECT_ROOT / "conf"

T = TypeVar("T")
_TYPED: dict[tuple[type, str], Any] = {}  # typed(): validated conversions, oldest first
_TYPED_SIZE = 64


def load_config(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with Hydra overrides and validate every value.

    Raises :class:`ConfigError` (one line naming the key) on an unknown key, a wrong type or a value
    out of range. ``paths.output_dir`` defaults to a fresh ``outputs/runs/api_<time>`` folder.
    """
    overrides = list(overrides)
    if not any(o.lstrip("+~").startswith("paths.output_dir=") for o in overrides):
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
        overrides.append(f"paths.output_dir=${{paths.outputs_dir}}/runs/api_{stamp}")
    cfg = compose_config(overrides, config_name)
    validate(cfg)
    return cfg


def _is_number(override: str) -> bool:
    value = override.split("=", 1)[1] if "=" in override else ""
    try:
        float(value)
    except ValueError:
        return False
    return True


def compose_config(
    overrides: Sequence[str], config_name: str = "train", with_hydra: bool = False
) -> DictConfig:
    """``conf/<config_name>.yaml`` composed with ``overrides`` (``hydra.*`` ones included), not
    validated; any composition or override error is one :class:`ConfigError` naming the key."""
    register_configs()
    parsed = parse_overrides(overrides)
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
            _check_options(parsed, cfg, GlobalHydra.instance().config_loader())
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(describe(exc)) from None
    except AssertionError:  # OmegaConf, when a dotted override goes below a null node
        raise ConfigError(_below_null(overrides, config_name)) from None
    except ConfigError:  # already one line (a ValueError too: let it through as it is)
        raise
    except ValueError as exc:  # Hydra, e.g. a group choice the grammar reads as a number (x=nan)
        group = next((o.split("=", 1)[0] for o in overrides if _is_number(o)), "override")
        raise ConfigError(
            f"{group}: {exc}; expected the name of one of its configs (quote a name that reads as a number)"
        ) from None
    _check_added_keys(parsed, cfg)
    if not with_hydra:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


def parse_overrides(overrides: Sequence[str]) -> list[Override]:
    """Hydra's parse of each override; a malformed one is a :class:`ConfigError` naming it."""
    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            parsed += parser.parse_overrides([text])
        except OverrideParseException as exc:
            if "=" not in text and not text.startswith("~"):
                raise ConfigError(f"{text}: no value; expected {text}=<value>") from None
            why = str(exc).splitlines()[0].removeprefix(f"Error parsing override '{text}'")
            raise ConfigError(
                f"{text}: cannot be read ({why.strip() or 'syntax'}); expected key=value in Hydra's "
                "override syntax, e.g. seed=1, agent=sac or tags=[a,b]"
            ) from None
    return parsed


def _check_options(parsed: list[Override], cfg: DictConfig, loader: Any) -> None:
    """A group override names one of the group's configs (Hydra skips a missing optional one)."""
    for override in parsed:
        value = override.value() if not override.is_sweep_override() else None
        group = override.key_or_group
        if not isinstance(value, str) or group not in cfg.hydra.runtime.choices:
            continue
        options = loader.get_group_options(group)
        if options and value not in real_choices(options):
            choices = ", ".join(real_choices(options))
            raise ConfigError(
                f"{group}: {value!r} is not an option; expected one of its configs (choices: {choices})"
            )


def _check_added_keys(parsed: list[Override], cfg: DictConfig) -> None:
    """``+a.b=v`` into a schema node must name a field of the schema (Hydra adds any key)."""
    for override in parsed:
        if not override.is_add() or "." not in override.key_or_group:
            continue
        head, _, key = override.key_or_group.rpartition(".")
        parent = OmegaConf.select(cfg, head)
        schema = OmegaConf.get_type(parent) if isinstance(parent, DictConfig) else None
        if (
            schema is not None
            and is_dataclass(schema)
            and key not in {f.name for f in fields(schema)}
        ):
            structured = OmegaConf.structured(schema)
            raise ConfigError(unknown_key(override.key_or_group, structured))


def _below_null(overrides: Sequence[str], config_name: str) -> str:
    """The override that sets a key below an unselected (null) group, as a one-line message."""
    groups = [o for o in overrides if "." not in o.split("=", 1)[0]]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        base = compose(config_name, overrides=groups, return_hydra_config=True)
        loader = GlobalHydra.instance().config_loader()
        for text in overrides:
            path = text.split("=", 1)[0].lstrip("+~").split(".")
            for depth in range(1, len(path)):
                parent = ".".join(path[:depth])
                if OmegaConf.select(base, parent, default="absent") is None:
                    plus = "" if parent in base.hydra.runtime.choices else "+"
                    choices = ", ".join(real_choices(loader.get_group_options(parent)))
                    return (
                        f"{text.split('=', 1)[0]}: {parent} is not selected; expected "
                        f"{plus}{parent}=<option> first (choices: {choices})"
                    )
    return f"{' '.join(overrides)}: cannot be applied to the config; expected keys of the config"


def validate(cfg: DictConfig) -> Any:
    """Check every range and cross-field rule of the schemas and return the dataclass tree
    (``RootConfig`` for ``train``); raise one :class:`ConfigError` naming every problem."""
    try:
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(describe(exc)) from None
    _raise_problems(obj)
    return obj


def typed(node: Any, schema: type[T]) -> T:
    """``node`` as a validated ``schema`` dataclass.

    ``node`` may be a node of the composed config, a plain dict or ``OmegaConf.create`` of one (the
    configs stored in checkpoints), or already a ``schema``. Entry functions of the lower layers
    (``MarketEnv``, ``prepare_data``, ``build_learner``) convert here once and work typed inside.
    """
    if isinstance(node, schema):
        return node
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    # the same node is converted again for each env, learner and walk a run builds (a dozen in a
    # smoke training): a copy of the first conversion costs 0.1 ms instead of 15-35 ms
    key = (schema, json.dumps(node, sort_keys=True, default=repr))
    if key not in _TYPED:
        try:
            obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), node))
        except OmegaConfBaseException as exc:
            raise ConfigError(describe(exc)) from None
        _raise_problems(obj)
        if len(_TYPED) >= _TYPED_SIZE:
            _TYPED.pop(next(iter(_TYPED)))
        _TYPED[key] = obj
    return copy.deepcopy(_TYPED[key])  # type: ignore[return-value]


def _raise_problems(obj: Any) -> None:
    problems = list(walk_problems(obj))
    if problems:
        raise ConfigError("; ".join(problems))

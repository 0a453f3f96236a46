"""Compose the config exactly as the CLI does, and validate it (``grandmodel.load_config``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from grandmodel.config.base import ConfigError, walk_problems
from grandmodel.config.root import PROJECT_ROOT, register_configs

CONF_DIR = PROJECT_ROOT / "conf"

T = TypeVar("T")


def load_config(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with Hydra overrides and validate every value.

    Raises :class:`ConfigError` (one line naming the key) on an unknown key, a wrong type or a value
    out of range. ``paths.output_dir`` defaults to a fresh ``outputs/runs/api_<time>`` folder.
    """
    register_configs()
    overrides = list(overrides)
    if not any(o.lstrip("+~").startswith("paths.output_dir=") for o in overrides):
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
        overrides.append(f"paths.output_dir=${{paths.outputs_dir}}/runs/api_{stamp}")
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(describe(exc)) from None
    validate(cfg)
    return cfg


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
    try:
        obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), node))
    except OmegaConfBaseException as exc:
        raise ConfigError(describe(exc)) from None
    _raise_problems(obj)
    return obj  # type: ignore[return-value]


def _raise_problems(obj: Any) -> None:
    problems = list(walk_problems(obj))
    if problems:
        raise ConfigError("; ".join(problems))


def describe(exc: BaseException) -> str:
    """Hydra's message plus its causes, on one line (the causes name the key and what was expected)."""
    lines: list[str] = []
    full_key = ""
    seen: BaseException | None = exc
    while seen is not None:
        for line in str(seen).splitlines():
            line = line.strip()
            if line.startswith("full_key:"):
                full_key = full_key or line.split(":", 1)[1].strip()
            elif line and "$" not in line and not line.startswith(_NOISE) and line not in lines:
                lines.append(line)
        seen = seen.__cause__ or seen.__context__
    text = " ".join(lines)
    return f"{full_key}: {text}" if full_key and full_key not in text else text


_NOISE = ("object_type", "reference_type", "ref_type", "'")

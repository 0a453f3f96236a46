"""The command line of every Hydra entry point (``python -m grandmodel.train`` and the tools).

Hydra composes the config inside ``@hydra.main``, after it has created the run folder, and reports a
bad override in many lines with a misleading "append with +" hint. :func:`run` first composes the
same config with the same overrides (each value of a ``--multirun`` sweep too) and validates it, so
a bad override or value is one line ``error: <key>: <what is wrong>; expected <what>``, exit status
2, and nothing is created. ``--help`` is answered here, with only the choices a user can make.
"""

from __future__ import annotations

import string
import sys
from argparse import Namespace
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from hydra import initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.object_type import ObjectType
from hydra.core.override_parser.types import ValueType
from omegaconf import OmegaConf, open_dict

from grandmodel.config.base import ConfigError
from grandmodel.config.compose import CONF_DIR, compose_config, parse_overrides, validate
from grandmodel.config.messages import real_choices
from grandmodel.errors import reported

# flags Hydra answers itself, with no job run: the overrides are only composed, not validated
_SHOW_ONLY = ("cfg", "info", "shell_completion", "hydra_help")
_MODES = ("run", "multirun", "cfg", "info", "shell_completion")  # at most one per command line
# sweeps whose values are listed (a,b,c / choice(...) / range(...)); interval and glob are sampled
_LISTED_SWEEPS = (ValueType.SIMPLE_CHOICE_SWEEP, ValueType.CHOICE_SWEEP, ValueType.RANGE_SWEEP)


def run(main: Callable[[], Any], config_name: str, module: str) -> None:
    """Answer ``--help``, check the command line, then hand over to the ``@hydra.main`` ``main``."""
    with reported():
        args = parse_command_line()
    if args.config_path or args.config_dir or args.experimental_rerun:
        return main()  # another config tree or a rerun: Hydra's own checks
    name = args.config_name or config_name
    with reported():
        if args.help:
            print(help_text(module, name, args.overrides, resolve=args.resolve))
            return None
        shown = any(getattr(args, flag) for flag in _SHOW_ONLY)
        check(args.overrides, name, multirun=args.multirun, values=not shown)
    return main()


def parse_command_line() -> Namespace:
    """Hydra's flags and overrides, in any order; ``sys.argv`` is put in the order Hydra's own
    parser accepts (flags first). A bad flag is a :class:`ConfigError`."""
    parser = get_args_parser()

    def fail(message: str) -> NoReturn:
        raise ConfigError(
            f"command line: {message}; expected python -m <tool> [--flags] [key=value ...]"
        )

    parser.error = fail  # type: ignore[method-assign]
    argv = sys.argv[1:]
    args = parser.parse_intermixed_args(argv)
    modes = [flag for flag in _MODES if getattr(args, flag)]
    if len(modes) > 1:
        fail(f"--{' and --'.join(modes)} together (Hydra takes one of them)")
    flags = list(argv)
    for override in args.overrides:
        flags.remove(override)
    sys.argv[1:] = [*flags, *args.overrides]
    return args


def check(
    overrides: Sequence[str], config_name: str, multirun: bool = False, values: bool = True
) -> None:
    """Compose (and with ``values`` validate) the config as Hydra will; raise ``ConfigError``.

    Under ``--multirun`` every value of a choice or range sweep is checked once (the other sweeps
    at their first value); interval and glob sweeps are left to the sweeper.
    """
    for variant in sweep_variants(overrides) if multirun else [list(overrides)]:
        if values and not any(_key(o) == "paths.output_dir" for o in variant):
            variant = [*variant, "paths.output_dir=${paths.outputs_dir}/runs/check"]
        cfg = compose_config(variant, config_name)
        if values:
            validate(cfg)


def sweep_variants(overrides: Sequence[str]) -> Iterator[list[str]]:
    """The command lines that together try every value of every choice/range sweep once."""
    base: list[str] = []
    sweeps: list[tuple[int, str, list[str]]] = []
    for override in parse_overrides(overrides):
        if not override.is_sweep_override():
            base.append(override.input_line)
        elif override.value_type in _LISTED_SWEEPS:
            key, values = override.get_key_element(), list(override.sweep_string_iterator())
            sweeps.append((len(base), key, values[1:]))
            base.append(f"{key}={values[0]}")
    yield base
    for i, key, values in sweeps:
        for value in values:
            yield [*base[:i], f"{key}={value}", *base[i + 1 :]]


def help_text(module: str, config_name: str, overrides: Sequence[str], resolve: bool) -> str:
    """Hydra's ``--help`` page (its template, flags and the composed config) with real choices."""
    cfg = compose_config(overrides, config_name, with_hydra=True)
    template = OmegaConf.to_container(cfg.hydra.help, resolve=False)["template"]  # type: ignore[index]
    used = {*cfg.hydra.runtime.choices, *cfg.keys()}  # the groups this command composes or appends
    with open_dict(cfg):
        del cfg["hydra"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        groups = "".join(
            f"{group}: {', '.join(real_choices(loader.get_group_options(group)))}\n"
            for group in _groups(loader)
            if group in used and real_choices(loader.get_group_options(group))
        )
    header = f"usage: python -m {module} [key=value ...]\n"
    footer = "Powered by Hydra (https://hydra.cc)\nUse --hydra-help to view Hydra specific help\n"
    page = str(template).replace("${hydra.help.header}", header)
    page = page.replace("${hydra.help.footer}", footer)
    return string.Template(page).safe_substitute(
        FLAGS_HELP=_flags_help(),
        APP_CONFIG_GROUPS=groups,
        HYDRA_CONFIG_GROUPS="",
        CONFIG=OmegaConf.to_yaml(cfg, resolve=resolve),
    )


def _groups(loader: Any, parent: str = "") -> list[str]:
    """Every config group outside ``hydra/``, depth first, sorted."""
    found: list[str] = []
    for name in sorted(loader.list_groups(parent)):
        group = f"{parent}/{name}" if parent else name
        if group == "hydra":
            continue
        if loader.get_group_options(group, ObjectType.CONFIG):
            found.append(group)
        found += _groups(loader, group)
    return found


def _flags_help() -> str:
    lines = []
    for action in get_args_parser()._actions:
        if action.option_strings:
            lines.append(f"{','.join(action.option_strings)} : {action.help}")
    return "\n".join(lines)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")

"""Hydra and OmegaConf errors as one line ``<key>: <what is wrong>; expected <what> (choices: …)``.

Hydra's own messages span 5–13 lines, name internal schema classes and suggest ``+key=value`` for a
misspelt key (which would add the typo); these name the key the user typed and what it accepts.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator

from hydra.errors import MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

SCHEMA_SUFFIX = "_schema"  # schema nodes in the ConfigStore: not choices a user makes
REQUIRED_HINTS = {
    "run": "run=<run folder | MLflow run id | checkpoint file>",
    "bundle": "bundle=<export folder | models:/<name>@<alias>>",
}

_KINDS = {
    "Integer": "an integer",
    "Float": "a number",
    "Boolean": "true or false",
    "String": "a string",
}


def describe(exc: BaseException) -> str:
    """One line naming the key (or config file) of a composition or validation error."""
    chain = list(_chain(exc))
    missing = next((e for e in chain if isinstance(e, MissingConfigException)), None)
    if missing is not None:
        return missing_option(missing)
    omega = next((e for e in chain if isinstance(e, OmegaConfBaseException) and e.full_key), None)
    if omega is not None:
        return _omegaconf(omega)
    return _hydra(_first_line(exc))


def real_choices(options: list[str] | tuple[str, ...]) -> list[str]:
    """The options of a config group a user can pick (no ``*_schema`` node)."""
    return sorted(o for o in options if not o.endswith(SCHEMA_SUFFIX))


def missing_option(exc: MissingConfigException) -> str:
    """``agent: 'nosuch' is not an option; expected one of its configs (choices: dqn, marl, …)``."""
    path = str(exc.missing_cfg_file or "")
    if exc.options is None or "/" not in path:
        return f"{path or 'config'}: config file not found; expected a file under conf/"
    group, name = path.rsplit("/", 1)
    choices = ", ".join(real_choices(list(exc.options)))
    return f"{group}: {name!r} is not an option; expected one of its configs (choices: {choices})"


def unknown_key(full_key: str, parent: object) -> str:
    """``trainer.totl_frames: no such key; expected a key of trainer (did you mean total_frames?)``."""
    head, _, key = full_key.rpartition(".")
    where = f"a key of {head}" if head else "a top-level key"
    keys = [str(k) for k in parent.keys()] if isinstance(parent, DictConfig) else []
    keys = [k for k in keys if head or k != "hydra"]
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.75)
    if close:
        return f"{full_key}: no such key; expected {where} (did you mean {', '.join(close)}?)"
    if keys:
        return f"{full_key}: no such key; expected {where} (choices: {', '.join(keys)})"
    return f"{full_key}: no such key; expected {where}"


def _omegaconf(exc: OmegaConfBaseException) -> str:
    key, text = str(exc.full_key), _first_line(exc)
    if m := re.match(r"Value '(.*?)' (?:of type '[^']*' )?could not be converted to (\w+)", text):
        kind = _KINDS.get(m.group(2), m.group(2).lower())
        return f"{key}: {m.group(1)!r} is not {kind}; expected {kind}"
    if m := re.match(r"Value '(.*)' is not a valid bool", text):
        return f"{key}: {m.group(1)!r} is not true or false; expected true or false"
    if m := re.match(r"Invalid value '(.*)', expected one of \[(.*)\]", text):
        return f"{key}: {m.group(1)!r} is not allowed; expected one of (choices: {m.group(2)})"
    if re.match(r"Key '.*' (?:is )?not in", text):
        return unknown_key(key, exc.parent_node)
    if m := re.match(r"Invalid value assigned: \w+ is not a (List|Dict)Config", text):
        kind, example = ("list", "[1, 2]") if m.group(1) == "List" else ("mapping", "{a: 1}")
        return f"{key}: {exc.value!r} is not a {kind}; expected a {kind}, e.g. {example}"
    if "missing mandatory value" in text.lower():
        hint = REQUIRED_HINTS.get(key, f"{key}=<value>")
        return f"{key}: is required; expected {hint} on the command line"
    if "cannot be assigned None" in text or "is not Optional" in text:
        return f"{key}: null is not allowed; expected a value"
    return f"{key}: {text}"


def _hydra(text: str) -> str:
    if m := re.search(r"An item is already at '(.*?)'", text):
        return f"{m.group(1)}: already in the config; expected {m.group(1)}=<value> without '+'"
    if m := re.search(
        r"Could not (?:override|delete) '(.*?)'\. No match in the defaults list", text
    ):
        return (
            f"{m.group(1)}: not selected in this config; expected +{m.group(1)}=<option> to add it"
        )
    if m := re.search(r"Could not (?:override|delete) '(.*?)'", text):
        return f"{m.group(1)}: no such key; expected a key of the config"
    return re.sub(r"\s*To append to your config use \S+", "", text)


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__

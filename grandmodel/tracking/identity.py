"""What identifies a run in the store: its parameters (the flattened config), commit and name."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def flatten(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as ``{"a.b.c": value}`` (lists as their text) for run parameters."""
    tree = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            out[prefix[:-1]] = node if not isinstance(node, list) else str(node)

    walk(tree, "")
    return out


def git_commit() -> str:
    """HEAD of the project checkout (``-dirty`` when it has uncommitted changes), or ``unknown``."""
    try:
        head = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_name(output_dir: str | Path, in_sweep: bool) -> str:
    """The run folder's name (``trial-<n>`` in a sweep): MLflow's random names repeat when
    Python's RNG is seeded the same."""
    name = Path(output_dir).name
    return f"trial-{name}" if in_sweep and name.isdigit() else name

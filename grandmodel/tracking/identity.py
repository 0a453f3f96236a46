"""What identifies a run in the store: its parameters (the flattened config), commit and name."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# The runs-table view every experiment carries: the MLflow UI opens it at
# #/experiments/<id>/runs?viewStateShareKey=compare&workflowType=machine_learning (README.md,
# "Comparing runs in the MLflow UI"). MLflow 3.17 chooses the model-training view (rather than
# GenAI) by its workflowType setting; mlflow.experimentKind is what its experiment-kind selector shows.
COMPARE_VIEW = "compare"
HEADLINE_METRICS = (
    "final/val/sharpe", "final/test/sharpe", "final/val/total_return", "final/val/max_drawdown",
    "final/val/trades", "val/sharpe",
)  # fmt: skip
HEADLINE_PARAMS = (
    "agent.name", "data.name", "seed", "agent.strategic.lr", "agent.tactical.lr", "agent.risk.lr",
)  # fmt: skip


def experiment_tags() -> dict[str, str]:
    """The tags of a GrandModel experiment: a model-training experiment, and the ``compare`` view
    (headline metrics and parameters as columns, best final validation Sharpe first)."""
    view = {
        "selectedColumns": [f"metrics.`{m}`" for m in HEADLINE_METRICS]
        + [f"params.`{p}`" for p in HEADLINE_PARAMS],
        "orderByKey": "metrics.`final/val/sharpe`",
        "orderByAsc": False,
        # the UI applies a width only to a column named in the order: run names shown whole
        "columnOrder": ["attributes.`Run Name`"],
        "columnWidths": {"attributes.`Run Name`": 300},
    }
    return {
        "mlflow.experimentKind": "custom_model_development",
        f"mlflow.sharedViewState.{COMPARE_VIEW}": json.dumps(view),
    }


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


def run_folder(task: str, stamp: str, agent: Any = None, data: Any = None, seed: Any = None) -> str:
    """A run folder's name, which is also its MLflow run name: ``<task>-<agent>-<data>-s<seed>-<stamp>``
    for a training run (the runs table tells runs apart by their first characters), and
    ``<stamp>_<task>`` for the tools that train nothing (no agent in their config)."""
    if agent is None:
        return f"{stamp}_{task}"
    parts = [task, agent, data, None if seed is None else f"s{seed}", stamp]
    return "-".join(str(part) for part in parts if part is not None)


class RunFolders(Callback):
    """Makes ``${gm.run_folder:...}`` (:func:`run_folder`) available to ``hydra.run.dir`` and
    ``hydra.sweep.dir``: Hydra creates its callbacks before it resolves either."""

    def __init__(self) -> None:
        OmegaConf.register_new_resolver("gm.run_folder", run_folder, replace=True)


def run_name(output_dir: str | Path, in_sweep: bool) -> str:
    """The run folder's name (``trial-<n>`` in a sweep): MLflow's random names repeat when
    Python's RNG is seeded the same."""
    name = Path(output_dir).name
    return f"trial-{name}" if in_sweep and name.isdigit() else name

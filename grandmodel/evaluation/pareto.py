"""Pareto-optimal sets over two or three metrics, from MLflow runs or any table."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def non_dominated(points: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Mask of the rows no other row dominates (at least as good everywhere, better somewhere).

    ``directions``: ``"max"`` or ``"min"`` per column. Rows with a NaN are never on the front.
    """
    sign = np.array([1.0 if d == "max" else -1.0 for d in directions])
    q = np.asarray(points, dtype=float) * sign
    valid = ~np.isnan(q).any(axis=1)
    front = valid.copy()
    for i in np.flatnonzero(valid):
        others = q[valid]
        dominated = np.any(np.all(others >= q[i], axis=1) & np.any(others > q[i], axis=1))
        front[i] = not dominated
    return front


def plot_front(
    table: pd.DataFrame, metrics: Sequence[str], front: np.ndarray, path: str | Path, title: str
) -> Path:
    """Scatter of every run with the Pareto-optimal ones highlighted (one panel per metric pair)."""
    pairs = list(combinations(metrics, 2))
    fig, axes = plt.subplots(
        1, len(pairs), figsize=(5.5 * len(pairs), 4.5), constrained_layout=True, squeeze=False
    )
    for ax, (x, y) in zip(axes[0], pairs, strict=True):
        ax.scatter(table[x], table[y], color="lightgray", label="runs")
        best = table[front].sort_values(x)
        ax.plot(best[x], best[y], "o-", color="tab:red", label="Pareto-optimal")
        ax.set(xlabel=x, ylabel=y)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def runs_table(
    client, experiment_name: str, metrics: Sequence[str], parent_run_id: str | None = None
) -> pd.DataFrame:
    """One row per finished training run of the experiment (optionally one sweep's children):
    run id, name, its parameters that differ between runs, and the latest value of each metric."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return pd.DataFrame()
    query = "tags.kind = 'training' and attributes.status = 'FINISHED'"
    if parent_run_id:
        query += f" and tags.mlflow.parentRunId = '{parent_run_id}'"
    runs = client.search_runs([experiment.experiment_id], filter_string=query, max_results=10_000)
    rows = []
    for run in runs:
        row = {"run_id": run.info.run_id, "run_name": run.info.run_name}
        row.update({m: run.data.metrics.get(m, np.nan) for m in metrics})
        row.update({f"param:{k}": v for k, v in run.data.params.items()})
        rows.append(row)
    table = pd.DataFrame(rows)
    varying = [
        c for c in table.columns
        if c.startswith("param:") and not c.startswith(("param:paths.", "param:hydra.")) and table[c].nunique(dropna=False) > 1
    ]  # fmt: skip
    return table[["run_id", "run_name", *metrics, *varying]] if len(table) else table

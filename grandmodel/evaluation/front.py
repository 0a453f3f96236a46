"""Pareto-optimal sets over two or three metrics of any table (training runs, sweep trials)."""

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

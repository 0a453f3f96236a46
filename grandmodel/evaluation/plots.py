"""PNG plots for runs and reports (matplotlib, Agg backend; nothing is shown on screen)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def learning_curves(history: list[dict[str, float]], path: str | Path) -> Path | None:
    """Episode rewards per agent and validation metrics against frames collected."""
    train = [row for row in history if any(k.startswith("train/episode_reward/") for k in row)]
    val = [row for row in history if any(k.startswith("val/") for k in row)]
    if not train and not val:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
    keys = sorted({k for row in train for k in row if k.startswith("train/episode_reward/")})
    for key in keys:
        points = [(row["frames"], row[key]) for row in train if key in row]
        axes[0].plot(*zip(*points, strict=True), label=key.rsplit("/", 1)[1])
    axes[0].set(title="training episode reward", xlabel="frames", ylabel="reward")
    for key in ("val/sharpe", "val/mean_reward", "val/mean_return", "val/max_drawdown"):
        points = [(row["frames"], row[key]) for row in val if key in row]
        if points:
            axes[1].plot(*zip(*points, strict=True), marker="o", label=key)
    axes[1].set(title="evaluation", xlabel="frames")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        ax.grid(alpha=0.3)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

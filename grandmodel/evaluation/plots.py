"""PNG plots for runs and reports (matplotlib, Agg backend; nothing is shown on screen)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter, StrMethodFormatter

MIN_EPISODES = 5  # fewer evaluation episodes than this: reward_histogram shows per-step rewards

STRATEGIC_LABELS = ("short", "neutral", "long")
TACTICAL_ACTIONS = ("entry_timing", "stop_distance", "position_scale")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
    return _save(fig, path)


def _times(index: pd.Index) -> tuple[pd.Index, str]:
    """Wall-clock times for the x axis (a tz-aware index is shown in its own zone) and a label."""
    tz = getattr(index, "tz", None)
    if tz is None:
        return index, "time"
    return index.tz_localize(None), f"time ({tz})"


def equity_drawdown(equity: pd.DataFrame, path: str | Path) -> Path:
    """Equity curve on top, drawdown (filled, drawn negative) below, on a shared time axis."""
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 6), sharex=True, height_ratios=(3, 1), constrained_layout=True
    )
    x, label = _times(equity.index)
    top.plot(x, equity["equity"].to_numpy(), color="tab:blue", lw=1)
    top.set(title="equity", ylabel="equity")
    top.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    drawdown = -equity["drawdown"].to_numpy(dtype=float)
    bottom.fill_between(x, drawdown, 0.0, color="tab:red", alpha=0.4, lw=0)
    bottom.plot(x, drawdown, color="tab:red", lw=0.6)
    bottom.yaxis.set_major_formatter(PercentFormatter(1.0))
    bottom.set(ylabel="drawdown", xlabel=label)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def positions_over_price(equity: pd.DataFrame, path: str | Path) -> Path:
    """Price line with the signed position as a step plot on a twin axis (long green, short red)."""
    fig, ax = plt.subplots(figsize=(12, 5), constrained_layout=True)
    x, label = _times(equity.index)
    ax.plot(x, equity["mark"].to_numpy(), color="black", lw=0.8, label="price")
    ax.set(title="position over price", xlabel=label, ylabel="price")
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    position = equity["position"].to_numpy(dtype=float)
    twin.step(x, position, where="post", color="tab:blue", lw=0.8, label="position")
    for where, color in ((position > 0, "tab:green"), (position < 0, "tab:red")):
        twin.fill_between(x, position, 0.0, where=where, step="post", color=color, alpha=0.2, lw=0)
    twin.set_ylabel("position (contracts)")
    return _save(fig, path)


def _count_bar(ax: Axes, values: pd.Series, levels: range, labels: list[str], title: str) -> None:
    counts = values.value_counts().reindex(list(levels), fill_value=0)
    positions = np.arange(
        len(labels)
    )  # numeric positions: number-like labels are not dates/categories
    ax.bar(positions, counts.to_numpy(), color="tab:blue")
    ax.set_xticks(positions, labels)
    ax.set(title=title, ylabel="steps")


def action_distributions(decisions: pd.DataFrame, path: str | Path) -> Path:
    """Strategic actions at decision steps, direction, the three continuous tactical actions and the
    risk level, one panel each."""
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), constrained_layout=True)
    acted = decisions.loc[decisions["decision"].astype(bool), "strategic_action"].astype(int)
    _count_bar(axes[0, 0], acted, range(3), list(STRATEGIC_LABELS), "strategic (decision steps)")
    direction = decisions["direction"].astype(int)
    _count_bar(axes[0, 1], direction, range(-1, 2), list(STRATEGIC_LABELS), "direction (all steps)")
    risk = decisions["risk_level"].astype(int)
    _count_bar(axes[0, 2], risk, range(5), [str(level) for level in range(5)], "risk level")
    for ax, name in zip(axes[1], TACTICAL_ACTIONS, strict=True):
        ax.hist(decisions[name].dropna().to_numpy(dtype=float), bins=30, color="tab:orange")
        ax.set(title=f"tactical: {name}", ylabel="steps")
    for ax in axes.flat:
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def reward_histogram(
    episode_rewards: dict[str, np.ndarray],
    path: str | Path,
    decisions: pd.DataFrame | None = None,
) -> Path:
    """Per-role histogram of the total reward of each evaluation episode; with fewer than
    ``MIN_EPISODES`` episodes and ``decisions`` given, of the per-step rewards instead."""
    roles = list(episode_rewards)
    if decisions is not None and not roles:
        roles = [c.removeprefix("reward_") for c in decisions.columns if c.startswith("reward_")]
    episodes = min((np.asarray(episode_rewards.get(r, [])).size for r in roles), default=0)
    per_step = decisions is not None and episodes < MIN_EPISODES
    fig, axes = plt.subplots(
        1, max(len(roles), 1), figsize=(4 * max(len(roles), 1), 3.5), constrained_layout=True
    )
    for ax, role in zip(np.atleast_1d(axes), roles, strict=False):
        if per_step:
            values = decisions[f"reward_{role}"].dropna().to_numpy(dtype=float)
        else:
            values = np.asarray(episode_rewards[role], dtype=float).ravel()
        ax.hist(values, bins=min(30, max(values.size // 3, 5)), color="tab:green")
        ax.set(title=role, xlabel="reward per step" if per_step else "reward per episode")
        ax.set_ylabel("steps" if per_step else "episodes")
        ax.grid(alpha=0.3)
    return _save(fig, path)

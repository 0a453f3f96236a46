"""``MarketData``: contiguous tensors per timeframe plus the decision-clock alignment the env needs.

No pandas after preparation. Prices are float64 (money is accounted in float64), features float32.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch

from grandmodel.data.normalise import NormStats


@dataclass
class Bars:
    """One timeframe: open/close stamps (UTC ns), OHLC prices, volume and normalised features."""

    name: str
    size_ns: int
    open_ns: torch.Tensor  # [N] int64
    known_ns: torch.Tensor  # [N] int64: the bar's close, when it becomes known
    open: torch.Tensor  # [N] float64
    high: torch.Tensor
    low: torch.Tensor
    close: torch.Tensor
    volume: torch.Tensor | None = None  # not kept for base bars (the env never reads it)
    features: torch.Tensor | None = None  # [N, F] float32, 0 during warm-up
    feature_names: tuple[str, ...] = ()
    warmup: int = 0  # first row with every feature defined

    def __len__(self) -> int:
        return int(self.open_ns.shape[0])

    def to(self, device: torch.device | str) -> Bars:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[key] = value.to(device)
        return Bars(**moved)


@dataclass
class MarketData:
    """Everything a batched env needs, indexed on the decision clock (one decision per tactical bar).

    For decision ``t`` (the close of tactical bar t): ``strategic_index[t]`` is the last strategic bar
    known then; ``fill_index[t]`` the first base bar opening at or after it (where orders fill);
    ``step_bars[t, :step_count[t]]`` the base bars between decision t and t+1 (for stops and marking).
    """

    base: Bars
    tactical: Bars
    strategic: Bars
    strategic_index: torch.Tensor  # [T] int64
    strategic_decision: torch.Tensor  # [T] bool: a new strategic bar became known at t
    fill_index: torch.Tensor  # [T] int64
    step_bars: torch.Tensor  # [T, K] int64 (padded with the last valid bar)
    step_count: torch.Tensor  # [T] int64
    regime: torch.Tensor | None  # [T] int64 true regime at t (synthetic data only)
    splits: dict[str, tuple[int, int]]  # name -> [start, stop) of decision points
    norm: dict[str, NormStats]
    window: dict[str, int]
    meta: dict[str, Any] = field(default_factory=dict)

    def split_steps(self, name: str) -> int:
        """Transitions available in a split (an episode of L steps needs L of them)."""
        start, stop = self.splits[name]
        return max(stop - start - 1, 0)

    def to(self, device: torch.device | str) -> MarketData:
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor | Bars):
                moved[f.name] = value.to(device)
        return replace(self, **moved)

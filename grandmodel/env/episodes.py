"""Which window of decisions each env plays: random or overlapping windows (train), or a walk (eval)."""

from __future__ import annotations

from typing import Any

import torch

from grandmodel.data.market_data import MarketData


class EpisodeSampler:
    """Start and end decision of the next episode of each env.

    ``train`` mode draws windows of ``length`` steps inside the split (uniform starts, or
    ``overlap``: starts every ``length // 2`` steps, windows overlapping by half); ``eval`` mode walks
    the split in consecutive windows, env i taking windows i, i + n, i + 2n, ... (the last window
    may be shorter).
    """

    def __init__(self, data: MarketData, length: int, sampling: str, n_envs: int) -> None:
        self.splits = dict(data.splits)
        self.length = length
        self.sampling = sampling
        self.n = n_envs
        self.allowed: torch.Tensor | None = None  # optional whitelist of train starts (scenarios)
        self.mode, self.split = "train", "train"
        self.cursor = torch.arange(n_envs)

    def set_mode(self, mode: str, split: str) -> None:
        if mode not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; expected one of {list(self.splits)}")
        self.mode, self.split = mode, split
        self.cursor = torch.arange(self.n)

    def set_length(self, length: int) -> None:
        steps = self.splits["train"][1] - self.splits["train"][0] - 1
        if length > steps:
            raise ValueError(
                f"episode_length={length} is longer than the train split ({steps} steps)"
            )
        self.length = length

    def windows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval windows of the current split: (starts, ends)."""
        start, stop = self.splits[self.split]
        starts = torch.arange(start, stop - 1, self.length)
        return starts, torch.clamp(starts + self.length, max=stop - 1)

    def candidates(self) -> torch.Tensor:
        """Allowed train starts (every start whose whole window fits in the split)."""
        start, stop = self.splits[self.split]
        last = stop - 1 - self.length
        step = max(self.length // 2, 1) if self.sampling == "overlap" else 1
        starts = torch.arange(start, last + 1, step)
        if self.allowed is not None:
            keep = torch.isin(starts, self.allowed)
            starts = starts[keep] if keep.any() else starts
        return starts

    def draw(self, rows: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Starts and ends for every env (only the ``rows`` being reset consume randomness/cursors)."""
        if self.mode == "eval":
            starts, ends = self.windows()
            index = self.cursor % len(starts)
            self.cursor = torch.where(rows, self.cursor + self.n, self.cursor)
            return starts[index], ends[index]
        pool = self.candidates()
        pick = torch.randint(len(pool), (int(rows.sum()),), generator=rng)
        start = torch.zeros(self.n, dtype=torch.int64)
        start[rows] = pool[pick]
        return start, start + self.length

    def state_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "split": self.split,
            "cursor": self.cursor.clone(),
            "length": self.length,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mode, self.split, self.length = state["mode"], state["split"], int(state["length"])
        self.cursor = state["cursor"].clone()

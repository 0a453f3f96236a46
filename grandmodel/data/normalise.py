"""Feature normalisation fitted on the training split only; statistics serialise to JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class NormStats:
    """z-score per scaled feature (categorical ones pass through), then clipped to ``±clip``."""

    features: list[str]
    mean: list[float]
    std: list[float]
    scaled: list[bool]
    clip: float = 10.0
    fitted_on: dict[str, str] = field(default_factory=dict)
    regime: dict | None = None  # a RegimeFit (data/hmm.py) where the features use one

    @classmethod
    def fit(
        cls,
        table: np.ndarray,
        features: list[str],
        scaled: list[bool],
        *,
        clip: float = 10.0,
        fitted_on: dict[str, str] | None = None,
        regime: dict | None = None,
    ) -> NormStats:
        """Statistics of the rows of ``table`` (already restricted to the training split)."""
        mean = (
            np.where(scaled, np.nanmean(table, axis=0), 0.0)
            if len(table)
            else np.zeros(len(features))
        )
        std = (
            np.where(scaled, np.nanstd(table, axis=0), 1.0)
            if len(table)
            else np.ones(len(features))
        )
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        return cls(
            list(features),
            mean.tolist(),
            std.tolist(),
            list(scaled),
            clip,
            dict(fitted_on or {}),
            regime,
        )

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Normalised float32 copy; NaN (warm-up rows) becomes 0."""
        out = (values - np.asarray(self.mean)) / np.asarray(self.std)
        out = np.clip(
            np.nan_to_num(out, nan=0.0, posinf=self.clip, neginf=-self.clip), -self.clip, self.clip
        )
        return out.astype(np.float32)

    def to_dict(self) -> dict:
        out = asdict(self)
        if out["regime"] is None:  # the statistics of models without fitted features read as before
            del out["regime"]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> NormStats:
        return cls(**data)


def save_norm(stats: dict[str, NormStats], path: str | Path) -> Path:
    """Write ``{timeframe: stats}`` as JSON (the export step ships it with the model)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: v.to_dict() for k, v in stats.items()}, indent=2))
    return path


def load_norm(path: str | Path) -> dict[str, NormStats]:
    return {k: NormStats.from_dict(v) for k, v in json.loads(Path(path).read_text()).items()}

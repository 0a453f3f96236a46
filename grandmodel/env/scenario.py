"""Curriculum levels in the env: which markets the next resets draw from.

On synthetic data a level regenerates the market with its conditions, volatility range and noise;
on historical data it keeps the training windows whose start matches the conditions (trend /
sideways / volatile, from the last completed strategic bar) and the volatility range (annualised
volatility of tactical returns).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from grandmodel.config.curriculum import CurriculumLevel
from grandmodel.config.data import DataConfig, Source
from grandmodel.data.market_data import MarketData
from grandmodel.data.pipeline import prepare
from grandmodel.errors import DataError


def synthetic_config(data_cfg: DataConfig, level: CurriculumLevel) -> DataConfig:
    """A copy of ``data_cfg`` whose synthetic generator produces the level's market."""
    synthetic = replace(
        data_cfg.synthetic,
        conditions=list(level.market_conditions),
        volatility_range=list(level.volatility_range),
        noise_level=level.noise_level,
    )
    return replace(data_cfg, synthetic=synthetic)


def matching_starts(
    data: MarketData, level: CurriculumLevel, annualised_vol: torch.Tensor, length: int
) -> torch.Tensor:
    """Train-split decisions whose market matches the level at the window's start."""
    start, stop = data.splits["train"]
    t = torch.arange(start, max(start, stop - 1 - length) + 1)
    names = data.strategic.feature_names
    rows = data.strategic.features[data.strategic_index[t]]
    trend, vol_regime = rows[:, names.index("trend_regime")], rows[:, names.index("vol_regime")]
    previous = data.strategic.features[
        (data.strategic_index[t] - 3).clamp_min(0), names.index("trend_regime")
    ]
    wanted = set(level.market_conditions)
    keep = torch.zeros(len(t), dtype=torch.bool)
    if "all" in wanted:
        keep |= True
    if "trend" in wanted:
        keep |= trend != 0
    if "strong_trend" in wanted:
        keep |= (trend != 0) & (previous == trend)
    if "sideways" in wanted:
        keep |= trend == 0
    if "volatile" in wanted:
        keep |= vol_regime == 2
    low, high = level.volatility_range
    vol = annualised_vol[t].to(torch.float64)
    keep &= (vol >= low) & (vol <= high)
    if not keep.any():
        raise DataError(
            f"{data.meta.get('source')}: no training window matches the curriculum level "
            f"(conditions {list(level.market_conditions)}, volatility {list(level.volatility_range)})"
        )
    return t[keep]


def level_market(
    data_cfg: DataConfig,
    cache_dir: Path,
    data: MarketData,
    level: CurriculumLevel,
    annualised_vol: torch.Tensor,
) -> tuple[MarketData, torch.Tensor | None]:
    """(the market, the allowed training starts or None) for ``level``: regenerated synthetic
    data, or the historical data with the matching windows."""
    if data_cfg.source == Source.synthetic:
        return prepare(synthetic_config(data_cfg, level), cache_dir)[1], None
    return data, matching_starts(data, level, annualised_vol, level.episode_length)

"""Scenarios for the curriculum: which markets the next resets draw from.

On synthetic data a scenario regenerates the market with the level's conditions, volatility range and
noise; on historical data it keeps the training windows whose start matches the conditions (trend /
sideways / volatile, from the last completed strategic bar) and the volatility range (annualised
volatility of tactical returns).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from omegaconf import DictConfig, OmegaConf

from grandmodel.data.market_data import MarketData
from grandmodel.errors import DataError


@dataclass(frozen=True)
class Scenario:
    """One curriculum level's market (the seed's ``difficulty_levels`` entries)."""

    market_conditions: list[str] = field(default_factory=lambda: ["all"])
    volatility_range: list[float] | None = None
    noise_level: float = 0.0
    episode_length: int | None = None


def synthetic_config(cfg: DictConfig, scenario: Scenario) -> DictConfig:
    """A copy of ``cfg`` whose synthetic generator produces the scenario's market."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    out.data.synthetic.conditions = list(scenario.market_conditions)
    out.data.synthetic.volatility_range = (
        None if scenario.volatility_range is None else list(scenario.volatility_range)
    )
    out.data.synthetic.noise_level = float(scenario.noise_level)
    return out


def matching_starts(
    data: MarketData, scenario: Scenario, annualised_vol: torch.Tensor, length: int
) -> torch.Tensor:
    """Train-split decisions whose market matches the scenario at the window's start."""
    start, stop = data.splits["train"]
    t = torch.arange(start, max(start, stop - 1 - length) + 1)
    names = data.strategic.feature_names
    rows = data.strategic.features[data.strategic_index[t]]
    trend, vol_regime = rows[:, names.index("trend_regime")], rows[:, names.index("vol_regime")]
    previous = data.strategic.features[
        (data.strategic_index[t] - 3).clamp_min(0), names.index("trend_regime")
    ]
    wanted = set(scenario.market_conditions)
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
    if scenario.volatility_range is not None:
        low, high = scenario.volatility_range
        vol = annualised_vol[t].to(torch.float64)
        keep &= (vol >= low) & (vol <= high)
    if not keep.any():
        raise DataError(
            f"{data.meta.get('source')}: no training window matches the scenario "
            f"(conditions {list(scenario.market_conditions)}, volatility {scenario.volatility_range})"
        )
    return t[keep]


def scenario_market(
    cfg: DictConfig, data: MarketData, scenario: Scenario, annualised_vol: torch.Tensor, length: int
) -> tuple[MarketData, torch.Tensor | None]:
    """(the market, the allowed training starts or None) for ``scenario``: regenerated synthetic
    data, or the historical data with the matching windows."""
    if str(getattr(cfg.data.source, "value", cfg.data.source)) == "synthetic":
        from grandmodel.data.pipeline import prepare_data

        return prepare_data(synthetic_config(cfg, scenario)), None
    return data, matching_starts(data, scenario, annualised_vol, length)

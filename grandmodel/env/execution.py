"""Fills, protective stops and position accounting as pure tensor functions (float64 money).

Conventions: ``position`` in signed contracts; ``avg_price`` is the average entry price of the open
position (0 when flat); PnL in account currency = contracts x price change x multiplier. Costs are
kept apart from prices (fills happen at the bar's open or the stop level) and charged per contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from grandmodel.config import typed
from grandmodel.config.env import ContractConfig, CostConfig, CostKind


@dataclass(frozen=True)
class CostModel:
    """Per-contract cost: ``fixed`` currency units plus ``rate`` x price x multiplier."""

    fixed: float
    rate: float
    multiplier: float

    @classmethod
    def from_config(cls, costs: CostConfig | Any, contract: ContractConfig | Any) -> CostModel:
        """From ``env.costs`` and ``env.contract`` (dataclasses or config nodes)."""
        costs, contract = typed(costs, CostConfig), typed(contract, ContractConfig)
        multiplier = contract.multiplier
        if costs.model == CostKind.proportional:
            return cls(0.0, costs.proportional, multiplier)
        per_contract = costs.commission + costs.slippage_ticks * contract.tick_size * multiplier
        return cls(per_contract, 0.0, multiplier)

    def per_contract(self, price: torch.Tensor) -> torch.Tensor:
        return self.fixed + self.rate * price * self.multiplier


@dataclass
class Fill:
    """Result of trading ``qty`` contracts at ``price`` from ``position`` / ``avg_price``."""

    position: torch.Tensor
    avg_price: torch.Tensor
    realised: torch.Tensor  # gross PnL of the contracts closed by this fill
    closed: torch.Tensor  # contracts closed (>= 0)
    opened: torch.Tensor  # contracts opened (>= 0)
    ends_trade: torch.Tensor  # the open position was closed out or flipped


def apply_fill(
    position: torch.Tensor,
    avg_price: torch.Tensor,
    qty: torch.Tensor,
    price: torch.Tensor,
    multiplier: float,
) -> Fill:
    """Trade ``qty`` (signed) at ``price``: realise PnL on the closed part, average the opened part."""
    new_position = position + qty
    opposite = (position * qty) < 0
    closed = torch.where(opposite, torch.minimum(qty.abs(), position.abs()), torch.zeros_like(qty))
    opened = qty.abs() - closed
    realised = closed * torch.sign(position) * (price - avg_price) * multiplier
    ends_trade = opposite & (qty.abs() >= position.abs())
    adding = (position * qty > 0) | ((position == 0) & (qty != 0))
    weighted = (avg_price * position.abs() + price * qty.abs()) / new_position.abs().clamp_min(
        1e-12
    )
    avg = torch.where(adding, weighted, torch.where(ends_trade, price, avg_price))
    avg = torch.where(new_position == 0, torch.zeros_like(avg), avg)
    return Fill(new_position, avg, realised, closed, opened, ends_trade)


def stop_levels(
    position: torch.Tensor, reference: torch.Tensor, distance: torch.Tensor
) -> torch.Tensor:
    """Protective stop ``distance`` (fraction of price) away from ``reference``; NaN when flat."""
    below = reference * (1.0 - distance)
    above = reference * (1.0 + distance)
    nan = torch.full_like(reference, float("nan"))
    return torch.where(position > 0, below, torch.where(position < 0, above, nan))


def first_stop_hit(
    position: torch.Tensor,
    stop: torch.Tensor,
    opens: torch.Tensor,
    highs: torch.Tensor,
    lows: torch.Tensor,
    valid: torch.Tensor,
    slots: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scan the bars ``[B, K]`` after a fill for the first one that touches the stop (``slots`` is
    ``arange(K)``).

    Returns (hit [B] bool, index of that bar [B], fill price [B]): the stop level, or the bar's open
    when the bar gaps through it.
    """
    long = (position > 0).unsqueeze(1)
    short = (position < 0).unsqueeze(1)
    level = stop.unsqueeze(1)
    touched = valid & ((long & (lows <= level)) | (short & (highs >= level)))
    hit = touched.any(dim=1)
    # first touching bar (0 when none); not argmax: inductor's vectorised uint8 argmax over a short
    # row returns an out-of-range index at batch 1 (torch 2.13)
    first = torch.where(touched, slots, touched.shape[1]).amin(dim=1)
    bar = torch.where(hit, first, 0)
    open_at = opens.gather(1, bar.unsqueeze(1)).squeeze(1)
    price = torch.where(position > 0, torch.minimum(open_at, stop), torch.maximum(open_at, stop))
    return hit, bar, torch.where(hit, price, torch.zeros_like(price))

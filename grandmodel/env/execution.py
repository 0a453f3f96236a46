"""Fills, protective stops and position accounting as pure tensor functions (float64 money).

Conventions: ``position`` in signed whole units (contracts, shares or FX lots); ``avg_price`` is the
average entry price of the open position (0 when flat); PnL in account currency = units x price
change x multiplier; notional of a position = |units| x price x multiplier, leverage = notional /
equity. Costs are kept apart from prices (fills happen at the bar's open or the stop level) and
charged per unit (or on traded notional). Targets are sized from what is known at the decision:
the equity and the close of the decision's bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from grandmodel.config import typed
from grandmodel.config.env import ContractConfig, CostConfig, CostKind, EnvConfig, Sizing
from grandmodel.errors import GrandModelError


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


def target_units(
    fraction: torch.Tensor,
    equity: torch.Tensor,
    unit_notional: torch.Tensor,
    max_contracts: float,
    max_exposure: float,
    max_leverage: float,
    notional: bool,
) -> torch.Tensor:
    """Signed whole units to hold for ``fraction`` (direction x scale x risk cap) of a full position.

    A full position is ``max_contracts`` units, or (``notional``) ``max_exposure`` x ``equity`` of
    notional rounded down to whole units; either way |units| x ``unit_notional`` stays within
    ``max_leverage`` x ``equity``.
    """
    full = torch.floor(max_exposure * equity / unit_notional) if notional else max_contracts
    cap = torch.floor(max_leverage * equity / unit_notional)
    return torch.clamp(torch.round(fraction * full), -cap, cap)


def check_leverage(env: EnvConfig, price: float) -> None:
    """One line when the sizing cannot be met at ``price`` (the first decision's close) from
    ``env.initial_capital``: not one whole unit fits, or ``max_contracts`` exceed ``max_leverage``."""
    unit = price * env.contract.multiplier
    capital, symbol = env.initial_capital, env.contract.symbol
    if env.sizing == Sizing.notional:
        if env.max_exposure * capital < unit:
            raise GrandModelError(
                f"env.sizing=notional: one {symbol} unit is {unit:,.0f} of notional (price {price:,.6g} x "
                f"multiplier {env.contract.multiplier:g}), more than env.max_exposure x "
                f"env.initial_capital = {env.max_exposure * capital:,.0f}; raise env.initial_capital "
                "or env.max_exposure, or trade a smaller unit"
            )
        return
    most = round(env.max_contracts * env.scale_bounds[1] * env.risk_cap[-1])
    leverage = most * unit / capital
    if leverage > env.max_leverage:
        raise GrandModelError(
            f"env.max_contracts={env.max_contracts}: up to {most} {symbol} contracts (x scale "
            f"{env.scale_bounds[1]:g}) are {most * unit:,.0f} of notional, {leverage:.1f}x "
            f"env.initial_capital={capital:,.0f}, over env.max_leverage={env.max_leverage:g}; lower "
            "env.max_contracts, raise env.initial_capital or use env.sizing=notional"
        )


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

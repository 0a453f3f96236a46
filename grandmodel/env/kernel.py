"""The env's step as one pure tensor function (eager, or fused by ``torch.compile``).

``StepKernel.step(state, strategic, tactical, level)`` returns the new state and the outputs of the
transition: observations of the next decision, per-role rewards, done flags and accounting info.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from grandmodel.config.env import ROLES, EnvConfig, RewardConfig, Sizing
from grandmodel.data.market_data import MarketData
from grandmodel.env.execution import (
    CostModel,
    apply_fill,
    check_leverage,
    first_stop_hit,
    stop_levels,
    target_units,
)
from grandmodel.env.rewards import RewardWeights, differential_sharpe
from grandmodel.env.state import F64, State


@dataclass(frozen=True)
class Params:
    """Scalars of the env config that the step reads."""

    capital: float
    floor: float
    max_contracts: float
    notional: bool  # env.sizing=notional: full position = max_exposure x equity of notional
    max_exposure: float
    max_leverage: float
    stop_bounds: tuple[float, float]
    scale_bounds: tuple[float, float]
    multiplier: float
    win_alpha: float
    var_rank: int  # 0-based rank of the 5% quantile in the sorted return window
    reward_scale: float
    dsr_eta: float

    @classmethod
    def from_config(cls, env: EnvConfig, reward: RewardConfig) -> Params:
        return cls(
            capital=env.initial_capital,
            floor=env.equity_floor * env.initial_capital,
            max_contracts=float(env.max_contracts),
            notional=env.sizing == Sizing.notional,
            max_exposure=env.max_exposure,
            max_leverage=env.max_leverage,
            stop_bounds=(env.stop_bounds[0], env.stop_bounds[1]),
            scale_bounds=(env.scale_bounds[0], env.scale_bounds[1]),
            multiplier=env.contract.multiplier,
            win_alpha=env.win_rate_alpha,
            var_rank=max(1, round(0.05 * env.var_window)) - 1,
            reward_scale=reward.scale,
            dsr_eta=reward.dsr_eta,
        )


class StepKernel:
    """Market tensors on the device plus the step and observation maths over them."""

    def __init__(
        self,
        data: MarketData,
        env: EnvConfig,
        reward: RewardConfig,
        device: torch.device,
        compile: bool = False,
    ) -> None:
        self.p = Params.from_config(env, reward)
        check_leverage(env, float(data.tactical.close[int(data.meta["first_decision"])]))
        self.device = device
        self.costs = CostModel.from_config(env.costs, env.contract)
        self.risk_cap = torch.tensor(env.risk_cap, dtype=F64, device=device)
        weights = RewardWeights.from_config(reward, device)
        self.term_weights = torch.stack([weights.roles[r] for r in ROLES], dim=1)  # [5, roles]
        d = data.to(device)
        self.windows = {
            name: window_rows(getattr(d, name).features, data.window[name])
            for name in ("tactical", "strategic")
        }
        self.window = dict(data.window)
        self.n_features = {name: getattr(d, name).features.shape[1] for name in self.windows}
        self.strategic_index, self.strategic_decision = d.strategic_index, d.strategic_decision
        self.fill_index, self.step_bars, self.step_count = d.fill_index, d.step_bars, d.step_count
        self.base_open, self.base_high, self.base_low = d.base.open, d.base.high, d.base.low
        self.mark_close = d.tactical.close
        self.sigma = ewma_vol(data.tactical.close.numpy(), env.vol_halflife).to(device)
        self.reward_factor = vol_scaling(self.sigma) if reward.vol_scaled else None
        self.annualiser = float(np.sqrt(data.meta["periods_per_year"]["tactical"]))
        self.last_decision = int(data.meta["last_decision"])
        self.slots = torch.arange(self.step_bars.shape[1], device=device)
        self._advance = (
            torch.compile(self._transition, dynamic=False) if compile else self._transition
        )

    def step(
        self, s: State, strategic: torch.Tensor, tactical: torch.Tensor, level: torch.Tensor
    ) -> tuple[State, dict[str, torch.Tensor]]:
        """One transition; the window gathers stay outside ``torch.compile`` (aten's copy is faster)."""
        new, out = self._advance(s, strategic, tactical, level)
        return new, out | self.windows_at(out["t"])

    def transition(
        self, s: State, strategic: torch.Tensor, tactical: torch.Tensor, level: torch.Tensor
    ) -> tuple[State, dict[str, torch.Tensor]]:
        """:meth:`step` without the observation windows (for a walk that gathers them itself)."""
        return self._advance(s, strategic, tactical, level)

    def windows_at(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """Tactical and strategic observation windows of decisions ``t`` (bars known at their close):
        ``[B, length, features]``, one ``index_select`` of whole window rows each."""
        first = {
            "tactical": t - (self.window["tactical"] - 1),
            "strategic": self.strategic_index[t] - (self.window["strategic"] - 1),
        }
        return {
            name: self.windows[name]
            .index_select(0, row)
            .view(-1, self.window[name], self.n_features[name])
            for name, row in first.items()
        }

    def _transition(
        self, s: State, strategic: torch.Tensor, tactical: torch.Tensor, level: torch.Tensor
    ) -> tuple[State, dict[str, torch.Tensor]]:
        p = self.p
        t = s["ptr"].clamp_max(self.last_decision)
        tactical = tactical.to(F64)
        direction = torch.where(self.strategic_decision[t], strategic - 1, s["direction"])
        timing = tactical[:, 0].clamp(0.0, 1.0)
        # NaN stop distance: no protective stop (the unstopped buy-and-hold baseline)
        stop_distance = tactical[:, 1].clamp(*p.stop_bounds)
        scale = tactical[:, 2].clamp(*p.scale_bounds)
        fraction = direction * scale * self.risk_cap[level]
        unit_notional = self.mark_close[t] * p.multiplier  # one unit at the decision's close
        target = target_units(
            fraction,
            s["equity"],
            unit_notional,
            p.max_contracts,
            p.max_exposure,
            p.max_leverage,
            p.notional,
        )
        qty = torch.round(timing * (target - s["position"]))

        # orders fill at the open of the first base bar after the decision
        price = self.base_open[self.fill_index[t]]
        unit = self.costs.per_contract(price)
        fill = apply_fill(s["position"], s["avg_price"], qty, price, p.multiplier)
        trade_pnl = s["trade_pnl"] + fill.realised - fill.closed * unit
        trades, wins, win_rate = self._record(
            fill.ends_trade, trade_pnl, s["trades"], s["wins"], s["win_rate"]
        )
        closed_at_fill = torch.where(fill.ends_trade, trade_pnl, float("nan"))
        trade_pnl = torch.where(fill.ends_trade, 0.0, trade_pnl) - fill.opened * unit

        # protective stop on the base bars up to the next decision; a gap through it fills at the open
        stop = stop_levels(fill.position, price, stop_distance)
        bars = self.step_bars[t]
        valid = self.slots < self.step_count[t].unsqueeze(1)
        hit, stop_slot, stop_price = first_stop_hit(
            fill.position,
            stop,
            self.base_open[bars],
            self.base_high[bars],
            self.base_low[bars],
            valid,
            self.slots,
        )
        stop_qty = torch.where(hit, -fill.position, 0.0)
        stop_unit = self.costs.per_contract(stop_price)
        closing = apply_fill(fill.position, fill.avg_price, stop_qty, stop_price, p.multiplier)
        trade_pnl = trade_pnl + closing.realised - closing.closed * stop_unit
        trades, wins, win_rate = self._record(hit, trade_pnl, trades, wins, win_rate)
        closed_at_stop = torch.where(hit, trade_pnl, float("nan"))
        trade_pnl = torch.where(hit, 0.0, trade_pnl)
        stop_bar = torch.where(hit, bars.gather(1, stop_slot.unsqueeze(1)).squeeze(1), -1)
        position = closing.position

        # mark to market at the close of the next tactical bar
        nxt = t + 1
        mark = self.mark_close[nxt]
        realised = s["realised"] + fill.realised + closing.realised
        step_cost = qty.abs() * unit + stop_qty.abs() * stop_unit
        costs = s["costs"] + step_cost
        equity = p.capital + realised - costs + position * (mark - closing.avg_price) * p.multiplier
        ret = equity / s["equity"] - 1.0
        peak = torch.maximum(s["peak"], equity)
        max_drawdown = torch.maximum(s["max_drawdown"], 1.0 - equity / peak)
        sharpe, dsr_a, dsr_b = differential_sharpe(ret, s["dsr_a"], s["dsr_b"], p.dsr_eta)
        exposure = position.abs() * mark * p.multiplier / equity
        turnover = (qty.abs() * price + stop_qty.abs() * stop_price) * p.multiplier / s["equity"]
        drawdown_step = max_drawdown - s["max_drawdown"]
        # risk: the variance of the step's equity return, (exposure·σ)², i.e. a mean-variance utility;
        # a linear exposure·σ per step would outweigh any achievable per-step edge ~30x
        variance = (exposure * self.sigma[nxt]) ** 2
        terms = torch.stack((ret, turnover, variance, drawdown_step, sharpe), dim=1)
        weighted = (terms @ self.term_weights) * p.reward_scale
        if self.reward_factor is not None:  # reward.vol_scaled: σ at the decision's bar, known then
            weighted = weighted * self.reward_factor[t].unsqueeze(1)
        rewards = weighted.to(torch.float32)

        started = (fill.ends_trade & (fill.position != 0)) | (
            (s["position"] == 0) & (fill.position != 0)
        )
        in_trade = torch.where(started, 1, s["bars_in_trade"] + 1)
        slot = (s["steps"] % s["returns"].shape[1]).unsqueeze(1)
        evicted = s["returns"].gather(1, slot).squeeze(1)
        windowed = ret.to(s["returns"].dtype)
        new: State = {
            "ptr": nxt,
            "end": s["end"],
            "steps": s["steps"] + 1,
            "position": position,
            "avg_price": closing.avg_price,
            "realised": realised,
            "costs": costs,
            "equity": equity,
            "peak": peak,
            "max_drawdown": max_drawdown,
            "direction": direction,
            "stop": torch.where(position != 0, stop, float("nan")),
            "bars_in_trade": torch.where(position != 0, in_trade, 0),
            "trade_pnl": trade_pnl,
            "win_rate": win_rate,
            "trades": trades,
            "wins": wins,
            "dsr_a": dsr_a,
            "dsr_b": dsr_b,
            "returns": s["returns"].scatter(1, slot, windowed.unsqueeze(1)),
            "sorted_returns": replace_sorted(s["sorted_returns"], evicted, windowed),
        }
        out = self._observe(new, nxt, mark)
        terminated = equity < p.floor
        out |= {
            "rewards": rewards,
            "terminated": terminated.unsqueeze(1),
            "truncated": ((nxt >= s["end"]) & ~terminated).unsqueeze(1),
            "step_cost": step_cost,
            "traded": qty,
            "fill_price": price,
            "stop_hit": hit,
            "stop_bar": stop_bar,
            "closed_fill_pnl": closed_at_fill,
            "closed_stop_pnl": closed_at_stop,
            "stop_price": stop_price,
            "terms": terms,
        }
        return new, out

    def _record(self, closes, pnl, trades, wins, rate):
        """Count a closed round trip where ``closes``; a win is a positive net trade PnL."""
        won = closes & (pnl > 0)
        rate = torch.where(closes, rate + self.p.win_alpha * (won.to(F64) - rate), rate)
        return trades + closes.to(trades.dtype), wins + won.to(wins.dtype), rate

    def observe(self, s: State) -> dict[str, torch.Tensor]:
        """Observations of the current decision (after a reset)."""
        t = s["ptr"].clamp_max(self.last_decision + 1)
        return self._observe(s, t, self.mark_close[t]) | self.windows_at(t)

    def _observe(self, s: State, t: torch.Tensor, mark: torch.Tensor) -> dict[str, torch.Tensor]:
        """The portfolio marked at the close of decision ``t`` (the windows come from ``windows_at``)."""
        p = self.p
        position, equity = s["position"], s["equity"]
        unrealised = position * (mark - s["avg_price"]) * p.multiplier
        drawdown = 1.0 - equity / s["peak"]
        stop_gap = torch.nan_to_num((mark - s["stop"]).abs() / mark, nan=0.0)
        var95 = (-s["sorted_returns"][:, p.var_rank].to(F64)).clamp_min(0.0)
        risk = torch.stack(
            (
                position * mark * p.multiplier / (equity * p.max_exposure)
                if p.notional
                else position / p.max_contracts,
                100.0 * unrealised / equity,
                100.0 * (s["realised"] - s["costs"]) / p.capital,
                100.0 * drawdown,
                self.sigma[t] * self.annualiser,
                100.0 * var95,
                position.abs() * mark * p.multiplier / equity,
                s["bars_in_trade"].to(F64) / 100.0,
                s["win_rate"],
                100.0 * stop_gap,
            ),
            dim=1,
        ).to(torch.float32)
        return {
            "decision": self.strategic_decision[t].unsqueeze(1),
            "risk": risk,
            "t": t,
            "mark": mark,
            "drawdown": drawdown,
            "unrealised": unrealised,
        }


def replace_sorted(
    sorted_rows: torch.Tensor, evicted: torch.Tensor, value: torch.Tensor
) -> torch.Tensor:
    """Each row of ``sorted_rows`` with one ``evicted`` value replaced by ``value``, still sorted."""
    width = sorted_rows.shape[1]
    slots = torch.arange(width, device=sorted_rows.device).unsqueeze(0)
    gone = torch.searchsorted(sorted_rows, evicted.unsqueeze(1).contiguous())
    into = torch.searchsorted(sorted_rows, value.unsqueeze(1).contiguous())
    into = into - (into > gone).to(into.dtype)
    source = slots - (slots > into).to(slots.dtype)
    source = source + (source >= gone).to(source.dtype)
    moved = sorted_rows.gather(1, source.clamp_max(width - 1))
    return torch.where(slots == into, value.unsqueeze(1), moved)


def window_rows(features: torch.Tensor, length: int) -> torch.Tensor:
    """``[N - length + 1, length · F]`` overlapping view of ``features`` ``[N, F]`` (row-major
    copy): row i is the window of bars i .. i + length - 1, flattened bar by bar. A window is one
    contiguous run of memory, so ``index_select`` copies it like a ``memcpy``: 4x faster at 1024
    envs than advanced indexing of the ``unfold`` view, which copies element by element
    (experiments/env_throughput/README.md, 2026-11-30)."""
    rows = features.contiguous()
    n, width = rows.shape
    return rows.as_strided((n - length + 1, length * width), (width, 1))


def ewma_vol(close: np.ndarray, halflife: float) -> torch.Tensor:
    """Per-bar volatility: bias-corrected exponential average of squared log returns, past bars only."""
    ret = np.diff(np.log(close), prepend=np.log(close[0]))
    var = pd.Series(ret * ret).ewm(halflife=halflife, adjust=True).mean()
    return torch.from_numpy(np.sqrt(var.to_numpy()))


def vol_scaling(sigma: torch.Tensor, cap: float = 10.0) -> torch.Tensor:
    """Per-bar reward factor of ``reward.vol_scaled``: ``σ̃ / max(σ_t, σ̃ / cap)``, σ̃ the median of
    the positive ``σ_t`` (a constant that keeps the reward's units).

    The reward of a step decided at bar t is divided by that bar's volatility (known at t), as
    the volatility-scaled rewards of Zhang, Zohren & Roberts 2020 ("Deep Reinforcement Learning for
    Trading", J. Financial Data Science 2(2)): a unit position's reward then has about the same
    spread in every regime, so the high-volatility stretches no longer dominate the policy
    gradient's noise. ``cap`` bounds the factor where σ_t is near zero (the first bar, quiet
    sessions). It weights the learning signal only; equity, costs and every metric are unscaled.
    """
    positive = sigma[sigma > 0]
    typical = positive.median() if positive.numel() else sigma.new_tensor(1.0)
    return typical / sigma.clamp_min(typical / cap)

"""Brokers: where paper orders go. :class:`SimulatedBroker` fills them with the env's own step.

The simulated broker is the env's :class:`~grandmodel.env.kernel.StepKernel` over growing live
buffers instead of a prepared ``MarketData``: the same fill (next base bar's open, or ``latency_bars``
later), costs, protective stops, accounting and risk observation, so a replay equals a backtest
of the same range (docs/architecture.md, "The market env"). Decision t settles once tactical bar
t + 1 has completed (its base bars are the stop scan, its close the mark).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from grandmodel.config.env import ROLES, EnvConfig, RewardConfig
from grandmodel.deploy.paper.features import Bar
from grandmodel.env.execution import CostModel, check_leverage, target_units
from grandmodel.env.kernel import Params, StepKernel
from grandmodel.env.rewards import RewardWeights
from grandmodel.env.state import F64, State, fresh_state

ACCOUNT = ("position", "avg_price", "realised", "costs", "equity", "peak", "stop")


@dataclass
class Fill:
    kind: str  # "order" (at the fill bar's open) or "stop"
    bar_ns: int
    qty: float
    price: float
    cost: float


@dataclass
class Settlement:
    """Decision ``t`` settled: its fills, the account after them (marked at bar t + 1) and the
    risk observation of decision t + 1."""

    t: int
    fills: list[Fill]
    account: dict[str, float]
    risk: np.ndarray
    terminated: bool


class Broker(Protocol):
    """An execution venue for the paper loop."""

    def add_base_bar(self, bar: Bar) -> None: ...
    def add_tactical_bar(self, bar: Bar, strategic_new: bool) -> int: ...
    def begin(self, t: int) -> np.ndarray: ...
    def target(self, actions: dict[str, np.ndarray]) -> float: ...
    def submit(self, t: int, actions: dict[str, np.ndarray]) -> None: ...
    def settle(self) -> Settlement | None: ...
    def account(self) -> dict[str, float]: ...


class _Buffer:
    """A growable 1-D (or 2-D) numpy array with a torch view of its filled part."""

    def __init__(self, dtype: type, width: int = 0) -> None:
        shape = (1024, width) if width else (1024,)
        self.data, self.n = np.zeros(shape, dtype=dtype), 0

    def append(self, value: object) -> None:
        if self.n == len(self.data):
            self.data = np.concatenate((self.data, np.zeros_like(self.data)))
        self.data[self.n] = value
        self.n += 1

    def tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.data)  # shares memory; indices beyond n are never read


class SimulatedBroker(StepKernel):
    """Fills with the env's transition at batch 1 (``StepKernel._transition``) on live buffers."""

    def __init__(
        self,
        env: EnvConfig,
        reward: RewardConfig,
        bars_per_tactical: int,
        periods_per_year: float,
        vol_halflife: float,
        latency_bars: int = 0,
    ) -> None:
        # not StepKernel.__init__ (it indexes a whole MarketData): the same attributes, filled live
        self.env_cfg, self.p = env, Params.from_config(env, reward)
        self.device = torch.device("cpu")
        self.costs = CostModel.from_config(env.costs, env.contract)
        self.risk_cap = torch.tensor(env.risk_cap, dtype=F64)
        weights = RewardWeights.from_config(reward, self.device)
        self.term_weights = torch.stack([weights.roles[r] for r in ROLES], dim=1)
        self.reward_factor = None  # live rewards feed no learner: no reward.vol_scaled weighting
        self.annualiser = float(np.sqrt(periods_per_year))
        self.last_decision = 2**62
        self.k, self.latency = bars_per_tactical, latency_bars
        self.slots = torch.arange(bars_per_tactical)
        self._advance = self._transition
        self.alpha_w = math.exp(math.log(0.5) / vol_halflife)  # pandas ewm(halflife) decay
        self._ew: tuple[float, float] | None = None
        self.base_ns: list[int] = []
        self.buf = {
            name: _Buffer(np.float64)
            for name in ("base_open", "base_high", "base_low", "mark_close", "sigma")
        }
        self.buf |= {"strategic_decision": _Buffer(np.bool_), "tactical_known": _Buffer(np.int64)}
        self.buf |= {name: _Buffer(np.int64) for name in ("fill_index", "step_count")}
        self.buf["step_bars"] = _Buffer(np.int64, bars_per_tactical)
        self.state: State | None = None
        self.pending: tuple[int, dict[str, np.ndarray]] | None = None

    # market data ---------------------------------------------------------------------------
    def add_base_bar(self, bar: Bar) -> None:
        self.base_ns.append(bar.open_ns)
        for name, value in (
            ("base_open", bar.open),
            ("base_high", bar.high),
            ("base_low", bar.low),
        ):
            self.buf[name].append(value)

    def add_tactical_bar(self, bar: Bar, strategic_new: bool) -> int:
        """Record a completed tactical bar (close, volatility, strategic clock); returns its index."""
        log_close = math.log(bar.close)
        ret = 0.0 if self._ew is None else log_close - self._last_log
        self._last_log = log_close
        x = ret * ret
        if self._ew is None:
            self._ew = (x, 1.0)
        else:  # pandas' adjusted EWM recursion
            mean, old = self._ew
            old *= self.alpha_w
            mean = (old * mean + x) / (old + 1.0) if mean != x else mean
            self._ew = (mean, old + 1.0)
        self.buf["sigma"].append(math.sqrt(self._ew[0]))
        self.buf["mark_close"].append(bar.close)
        self.buf["strategic_decision"].append(strategic_new)
        self.buf["tactical_known"].append(bar.known_ns)
        for name in ("fill_index", "step_count"):
            self.buf[name].append(0)
        self.buf["step_bars"].append(0)
        return self.buf["mark_close"].n - 1

    def _bind(self) -> None:
        """Point the kernel's tensors at the buffers (after any growth)."""
        for name in ("base_open", "base_high", "base_low", "mark_close", "sigma"):
            setattr(self, name, self.buf[name].tensor())
        for name in ("strategic_decision", "fill_index", "step_bars", "step_count"):
            setattr(self, name, self.buf[name].tensor())

    def _align(self, t: int) -> None:
        """Fill bar and stop-scan bars of decision t, once tactical bar t + 1 is in."""
        known = self.buf["tactical_known"].data
        fill = bisect.bisect_left(self.base_ns, int(known[t]))
        after = bisect.bisect_left(self.base_ns, int(known[t + 1]))
        count = min(max(after - fill, 0), self.k)
        shift = min(self.latency, max(count - 1, 0))
        fill, count = fill + shift, count - shift
        self.buf["fill_index"].data[t] = fill
        self.buf["step_count"].data[t] = count
        self.buf["step_bars"].data[t] = fill + np.minimum(np.arange(self.k), max(count - 1, 0))

    # trading ---------------------------------------------------------------------------------
    def begin(self, t: int) -> np.ndarray:
        """Start the account at decision ``t``; returns its risk observation."""
        check_leverage(self.env_cfg, float(self.buf["mark_close"].data[t]))
        self.state = fresh_state(1, self.env_cfg.var_window, self.p.capital, self.device)
        self.state["ptr"] = torch.tensor([t])
        self.state["end"] = torch.tensor([self.last_decision])
        self._bind()
        return self.observe(self.state)["risk"][0].numpy()

    def windows_at(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}  # the windows come from the live features

    def target(self, actions: dict[str, np.ndarray]) -> float:
        """Contracts the env's step would aim for with ``actions`` now (before entry timing)."""
        s = self.state
        assert s is not None
        t = int(s["ptr"][0])
        decision = bool(self.buf["strategic_decision"].data[t])
        direction = int(actions["strategic"]) - 1 if decision else int(s["direction"][0])
        lo, hi = self.p.scale_bounds
        scale = min(max(float(actions["tactical"][2]), lo), hi)
        fraction = (
            torch.tensor([direction * scale], dtype=F64) * self.risk_cap[int(actions["risk"])]
        )
        unit = torch.tensor([self.buf["mark_close"].data[t] * self.p.multiplier], dtype=F64)
        p = self.p
        units = target_units(
            fraction, s["equity"], unit, p.max_contracts, p.max_exposure, p.max_leverage, p.notional
        )
        return float(units[0])

    def submit(self, t: int, actions: dict[str, np.ndarray]) -> None:
        self.pending = (t, actions)

    def settle(self) -> Settlement | None:
        """Settle the pending decision when the next tactical bar is in."""
        if self.pending is None or self.state is None:
            return None
        t, actions = self.pending
        if self.buf["mark_close"].n <= t + 1:
            return None
        self._align(t)
        self._bind()
        strategic = torch.tensor([int(actions["strategic"])])
        tactical = torch.tensor(np.asarray(actions["tactical"], np.float32)[None])
        level = torch.tensor([int(actions["risk"])])
        before = float(self.state["position"][0])
        self.state, out = self._transition(self.state, strategic, tactical, level)
        self.pending = None
        fills = []
        cost = lambda price: float(self.costs.per_contract(torch.tensor(price)))  # noqa: E731
        qty, price = float(out["traded"][0]), float(out["fill_price"][0])
        if qty:
            bar = self.base_ns[int(self.buf["fill_index"].data[t])]
            fills.append(Fill("order", bar, qty, price, abs(qty) * cost(price)))
        if bool(out["stop_hit"][0]):
            held = before + qty
            bar = self.base_ns[int(out["stop_bar"][0])]
            stop_price = float(out["stop_price"][0])
            fills.append(Fill("stop", bar, -held, stop_price, abs(held) * cost(stop_price)))
        return Settlement(
            t, fills, self.account(), out["risk"][0].numpy(), bool(out["terminated"][0, 0])
        )

    def account(self) -> dict[str, float]:
        assert self.state is not None
        return {name: float(self.state[name][0]) for name in ACCOUNT}

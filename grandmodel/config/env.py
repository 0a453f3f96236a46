"""Schemas of the ``env`` and ``reward`` config groups (package ``grandmodel.env``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise

from grandmodel.config.base import Problem, check

ROLES = ("strategic", "tactical", "risk")
REWARD_TERMS = ("profit", "turnover", "risk", "drawdown", "sharpe")


class CostKind(StrEnum):
    """How execution costs are charged (``env.costs.model``)."""

    contract = "contract"
    share = "share"  # the same formula per share (multiplier 1): commission per share + ticks
    proportional = "proportional"


class Sizing(StrEnum):
    """What the agents' full position means (``env.sizing``).

    ``contracts``: ``max_contracts`` units; ``notional``: ``max_exposure`` x equity of notional at
    the decision's close, rounded down to whole units (contracts, shares or lots).
    """

    contracts = "contracts"
    notional = "notional"


@dataclass
class ContractConfig:
    """The traded future (ES by default)."""

    symbol: str = "ES"
    multiplier: float = 50.0
    tick_size: float = 0.25

    def problems(self) -> list[Problem]:
        return check(
            self.multiplier > 0, "multiplier", f"must be > 0, got {self.multiplier}"
        ) + check(self.tick_size > 0, "tick_size", f"must be > 0, got {self.tick_size}")


@dataclass
class CostConfig:
    """Per contract (or share, or lot): commission plus slippage in ticks (for spot FX the
    half-spread), or ``proportional``: a rate on traded notional (e.g. half the bid-ask spread)."""

    model: CostKind = CostKind.contract
    commission: float = 2.0
    slippage_ticks: float = 0.5
    proportional: float = 0.001

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        for name in ("commission", "slippage_ticks", "proportional"):
            out += check(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        return out


@dataclass
class EnvConfig:
    """Batched market env: execution, accounting, risk levels and action bounds."""

    n_envs: int = 64
    device: str = "cpu"
    compile: bool = False
    lean_step: bool = True  # MarketEnv's own step_and_maybe_reset (false: TorchRL's generic one)
    keep_freed_mb: int = 256  # glibc keeps this much freed memory for reuse (0: its defaults)
    initial_capital: float = 1_000_000.0
    equity_floor: float = 0.5
    max_contracts: int = 5
    sizing: Sizing = Sizing.contracts
    max_exposure: float = 1.0  # sizing=notional: full position = max_exposure x equity
    max_leverage: float = 4.0  # |position| x price x multiplier <= max_leverage x equity, always
    risk_cap: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    stop_bounds: list[float] = field(default_factory=lambda: [0.001, 0.05])
    scale_bounds: list[float] = field(default_factory=lambda: [0.1, 2.0])
    contract: ContractConfig = field(default_factory=ContractConfig)
    costs: CostConfig = field(default_factory=CostConfig)
    var_window: int = 100
    win_rate_alpha: float = 0.1
    vol_halflife: float = 60.0

    def problems(self) -> list[Problem]:
        out = check(self.n_envs >= 1, "n_envs", f"must be >= 1, got {self.n_envs}")
        out += check(
            self.initial_capital > 0, "initial_capital", f"must be > 0, got {self.initial_capital}"
        )
        out += check(
            0 <= self.equity_floor < 1,
            "equity_floor",
            f"must be in [0, 1), got {self.equity_floor}",
        )
        out += check(
            self.max_contracts >= 1, "max_contracts", f"must be >= 1, got {self.max_contracts}"
        )
        out += check(self.max_exposure > 0, "max_exposure", f"must be > 0, got {self.max_exposure}")
        out += check(self.max_leverage > 0, "max_leverage", f"must be > 0, got {self.max_leverage}")
        cap = list(self.risk_cap)
        increasing = all(b > a for a, b in pairwise(cap))
        out += check(
            len(cap) == 5 and increasing and cap[0] >= 0 and cap[-1] <= 1,
            "risk_cap",
            f"expected 5 strictly increasing levels in [0, 1], got {cap}",
        )
        stop = list(self.stop_bounds)
        out += check(
            len(stop) == 2 and 0 < stop[0] < stop[1] < 1,
            "stop_bounds",
            f"expected [low, high] with 0 < low < high < 1, got {stop}",
        )
        scale = list(self.scale_bounds)
        out += check(
            len(scale) == 2 and 0 < scale[0] < scale[1],
            "scale_bounds",
            f"expected [low, high] with 0 < low < high, got {scale}",
        )
        out += check(self.var_window >= 2, "var_window", f"must be >= 2, got {self.var_window}")
        out += check(
            self.keep_freed_mb >= 0, "keep_freed_mb", f"must be >= 0, got {self.keep_freed_mb}"
        )
        out += check(
            0 < self.win_rate_alpha <= 1,
            "win_rate_alpha",
            f"must be in (0, 1], got {self.win_rate_alpha}",
        )
        out += check(self.vol_halflife > 0, "vol_halflife", f"must be > 0, got {self.vol_halflife}")
        return out


@dataclass
class TermWeights:
    """Extra weight per reward term for one role (added to the team reward)."""

    profit: float = 0.0
    turnover: float = 0.0
    risk: float = 0.0
    drawdown: float = 0.0
    sharpe: float = 0.0


@dataclass
class ShapingConfig:
    strategic: TermWeights = field(default_factory=TermWeights)
    tactical: TermWeights = field(default_factory=TermWeights)
    risk: TermWeights = field(default_factory=TermWeights)


@dataclass
class RewardConfig:
    """Team reward (docs/architecture.md, "Reward"); every term is a fraction of equity.

    ``scale`` multiplies the whole reward (per-step equity returns are ~1e-3). ``objectives`` /
    ``objective_weights`` (reward=multi_objective) replace the term weights by weighted objectives
    over profit, risk, Sharpe and drawdown.
    """

    name: str = "default"
    profit_weight: float = 1.0
    transaction_cost: float = 0.0
    risk_penalty: float = 0.5
    max_drawdown_penalty: float = 1.0
    sharpe_bonus: float = 0.002
    dsr_eta: float = 0.01
    scale: float = 100.0
    vol_scaled: bool = False  # divide each step's reward by its bar's volatility (env/kernel.py)
    objectives: list[str] | None = None
    objective_weights: list[float] | None = None
    shaping: ShapingConfig = field(default_factory=ShapingConfig)

    def problems(self) -> list[Problem]:
        out = check(0 < self.dsr_eta < 1, "dsr_eta", f"must be in (0, 1), got {self.dsr_eta}")
        out += check(self.scale > 0, "scale", f"must be > 0, got {self.scale}")
        for name in ("transaction_cost", "risk_penalty", "max_drawdown_penalty"):
            out += check(
                getattr(self, name) >= 0,
                name,
                f"must be >= 0 (it is subtracted), got {getattr(self, name)}",
            )
        if self.objectives is not None or self.objective_weights is not None:
            objectives, weights = list(self.objectives or []), list(self.objective_weights or [])
            known = ("profit", "risk", "sharpe", "drawdown")
            out += check(
                bool(objectives) and all(o in known for o in objectives),
                "objectives",
                f"expected a list of {list(known)}, got {objectives}",
            )
            out += check(
                len(weights) == len(objectives),
                "objective_weights",
                f"expected one weight per objective ({len(objectives)}), got {len(weights)}",
            )
        return out

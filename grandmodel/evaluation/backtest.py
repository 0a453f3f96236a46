"""Deterministic passes of trained and baseline policies over a split or a date range.

The trained policy and every baseline run through the same :class:`MarketEnv` (so the same
execution and accounting code), on the same windows, from the same capital.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from tensordict.nn import TensorDictModule, TensorDictModuleBase, TensorDictSequential
from torch import nn

from grandmodel.agents import group_specs
from grandmodel.config.env import ROLES
from grandmodel.data.market_data import MarketData
from grandmodel.data.pipeline import prepare_data
from grandmodel.env import MarketEnv
from grandmodel.env.baselines import baseline_policy, joint_baseline
from grandmodel.env.episodes import EpisodeSampler
from grandmodel.env.execution import CostModel
from grandmodel.errors import GrandModelError
from grandmodel.evaluation.evaluator import run_policy
from grandmodel.evaluation.ledger import Ledger, ledger
from grandmodel.evaluation.metrics import contribution_stats, exposure_stats, performance_summary
from grandmodel.evaluation.runs import TrainedRun
from grandmodel.training.policies import baseline_params, restore_policy

BASELINES = {
    "buy_and_hold": {"strategic": "always_long"},
    "flat": {"strategic": "flat"},
    "random": {"strategic": "random"},
    "ma_crossover": {"strategic": "ma_crossover"},
}
RANGE = "range"


@dataclass
class Outcome:
    """One policy's pass: its tables, per-episode rewards and summary metrics."""

    ledger: Ledger
    episode_rewards: dict[str, np.ndarray]
    metrics: dict[str, float]


def model_config(
    run: TrainedRun,
    data_override: DictConfig | None,
    paths: DictConfig,
    capital: float | None = None,
) -> DictConfig:
    """The run's config with another data source, this machine's paths, and another capital."""
    cfg = OmegaConf.create(OmegaConf.to_container(run.config, resolve=True))
    cfg.paths = OmegaConf.create(OmegaConf.to_container(paths, resolve=True))
    if data_override is not None:
        cfg.data = OmegaConf.create(OmegaConf.to_container(data_override, resolve=True))
        cfg.data.episode_length = run.config.data.episode_length
    if capital is not None:
        cfg.env.initial_capital = float(capital)
    return cfg


def market(run: TrainedRun, cfg: DictConfig) -> MarketData:
    """The data the model is evaluated on, normalised with the model's own statistics."""
    for name in ("strategic", "tactical"):  # checked before any data is prepared (or cached)
        if int(cfg.data.window[name]) != int(run.config.data.window[name]):
            raise GrandModelError(
                f"data.window.{name}={cfg.data.window[name]} does not match the model's {run.config.data.window[name]}"
            )
    return prepare_data(cfg, norm=run.norm)


def with_range(data: MarketData, start: str | None, end: str | None) -> MarketData:
    """``data`` with a ``range`` split: the decisions whose time falls in ``[start, end]``."""
    tz = str(data.meta["timezone"])
    known = data.tactical.known_ns.numpy()
    first, last = int(data.meta["first_decision"]), int(data.meta["last_decision"])
    lo_ns = _ns(start, tz) if start else int(known[first])
    hi_ns = _ns(end, tz) if end else int(known[last])
    decisions = np.arange(first, last + 1)
    inside = decisions[(known[first : last + 1] >= lo_ns) & (known[first : last + 1] <= hi_ns)]
    if len(inside) < 2:
        covers = f"{_stamp(known[first], tz)} to {_stamp(known[last], tz)}"
        raise GrandModelError(
            f"start={start} end={end}: the range holds no tradable bars; the data covers {covers}"
        )
    return replace(data, splits={**data.splits, RANGE: (int(inside[0]), int(inside[-1]) + 1)})


def _ns(text: str, tz: str) -> int:
    stamp = pd.Timestamp(text)
    return (stamp.tz_convert(tz) if stamp.tzinfo else stamp.tz_localize(tz)).value


def _stamp(ns: int, tz: str) -> str:
    return str(pd.Timestamp(int(ns), tz="UTC").tz_convert(tz).strftime("%Y-%m-%d %H:%M"))


class Arena:
    """Runs policies over the same windows of one split (a whole range = one window)."""

    def __init__(
        self, cfg: DictConfig, data: MarketData, split: str, episodes: int = 0, whole: bool = False
    ) -> None:
        length = data.split_steps(split) if whole else int(cfg.data.episode_length)
        cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        cfg.data.episode_length = length
        sampler = EpisodeSampler(data, length, "random", 1)
        sampler.set_mode("eval", split)
        starts, ends = sampler.windows()
        n = len(starts) if episodes <= 0 else min(episodes, len(starts))
        self.cfg, self.data, self.split = cfg, data, split
        self.steps = int((ends[:n] - starts[:n]).max())
        self.env = MarketEnv(data, cfg, n_envs=n, split=split, mode="eval")
        self.groups = group_specs(self.env)
        self.costs = CostModel.from_config(cfg.env.costs, cfg.env.contract)
        self.periods_per_year = float(data.meta["periods_per_year"]["tactical"])

    def run(self, policy: TensorDictModuleBase) -> Outcome:
        self.env.set_mode("eval", self.split)
        rollout, alive = run_policy(self.env, policy, self.steps)
        mask = alive.numpy()
        tables = ledger(rollout, mask, self.data, self.costs)
        rewards = {
            role: (rollout.get(("next", role, "reward"))[..., 0].double().numpy() * mask).sum(
                axis=1
            )
            for role in ROLES
        }
        return Outcome(tables, rewards, self.summary(tables))

    def summary(self, tables: Ledger) -> dict[str, float]:
        """Metrics of the chained per-step returns of every window, trades and exposure."""
        equity = chained_equity(tables.decisions, float(self.cfg.env.initial_capital))
        trades = tables.trades
        out = performance_summary(
            equity,
            self.periods_per_year,
            trades_pnl=trades["pnl"].to_numpy(),
            trade_durations=trades["bars"].to_numpy(),
        )
        d = tables.decisions
        out.update(
            exposure_stats(
                d["position"],
                d["mark"],
                float(self.cfg.env.contract.multiplier),
                d["equity"],
                periods_per_year=self.periods_per_year,
            )
        )
        out["net_pnl"] = float(
            (d.groupby("episode")["equity"].last() - float(self.cfg.env.initial_capital)).sum()
        )
        out["costs"] = float(d.groupby("episode")["costs"].last().sum())
        return out

    def trained(self, run: TrainedRun) -> tuple[dict, TensorDictSequential]:
        learners, policy = restore_policy(
            run.checkpoint, self.groups, self.data.strategic.feature_names
        )
        return learners, policy

    def baseline(self, name: str, run: TrainedRun) -> TensorDictSequential:
        return joint_baseline(
            self.data.strategic.feature_names, BASELINES[name], baseline_params(run.config)
        )

    def oracle(self, run: TrainedRun) -> TensorDictSequential | None:
        """Knows the true regime (synthetic data): long in up-trends, short in down-trends, else flat."""
        if self.data.regime is None:
            return None
        params = baseline_params(run.config)
        steps = [
            TensorDictModule(
                RegimeOracle(self.data.regime),
                in_keys=[("info", "t")],
                out_keys=[("strategic", "action")],
            ),
            baseline_policy("tactical", "full_entry", **params["tactical"]),
            baseline_policy("risk", "fixed", **params["risk"]),
        ]
        return TensorDictSequential(*steps)


class RegimeOracle(nn.Module):
    """Strategic action from the true regime at the decision (0 trend_up → long, 1 trend_down → short)."""

    def __init__(self, regime: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("regime", regime.clone())

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        regime = self.regime[t[..., 0]]
        return torch.where(regime == 0, 2, torch.where(regime == 1, 0, 1)).to(torch.int64)


def chained_equity(decisions: pd.DataFrame, capital: float) -> np.ndarray:
    """One equity curve from every window's per-step returns (each window starts at ``capital``)."""
    returns = []
    for _, steps in decisions.groupby("episode", sort=True):
        equity = np.concatenate(([capital], steps["equity"].to_numpy()))
        returns.append(equity[1:] / equity[:-1] - 1.0)
    flat = np.concatenate(returns) if returns else np.zeros(0)
    return capital * np.concatenate(([1.0], np.cumprod(1.0 + flat)))


def compare(arena: Arena, run: TrainedRun, trained: TensorDictSequential) -> dict[str, Outcome]:
    """The trained policy and every baseline (and the oracle, on synthetic data) on the same windows."""
    outcomes = {"trained": arena.run(trained)}
    for name in BASELINES:
        outcomes[name] = arena.run(arena.baseline(name, run))
    oracle = arena.oracle(run)
    if oracle is not None:
        outcomes["oracle"] = arena.run(oracle)
    return outcomes


def contributions(
    arena: Arena, run: TrainedRun, learners: dict, trained: Outcome
) -> dict[str, dict[str, float]]:
    """The seed's per-agent reward statistics, plus the counterfactual: the same windows with one
    learning agent replaced by its baseline; Δ = trained − counterfactual."""
    total = sum(trained.episode_rewards.values())
    out = contribution_stats(trained.episode_rewards, total)
    base = run.config.agent.baselines
    params = baseline_params(run.config)
    _, policy = arena.trained(run)
    for role in learners:
        steps = [
            baseline_policy(
                r, str(base[r]), arena.data.strategic.feature_names, **params.get(r, {})
            )
            if r == role
            else module
            for r, module in zip(ROLES, policy.module, strict=True)
        ]
        counterfactual = arena.run(TensorDictSequential(*steps))
        out[role]["delta_pnl"] = trained.metrics["net_pnl"] - counterfactual.metrics["net_pnl"]
        out[role]["delta_sharpe"] = trained.metrics["sharpe"] - counterfactual.metrics["sharpe"]
    return out

"""One evaluation pass: a policy walks a split (or a date range) deterministically and the walk
becomes an :class:`Outcome`.

Training picks checkpoints with it (through :class:`~grandmodel.evaluation.evaluator.MarketEvaluator`)
and every report, table and statistic is built from it, so a policy on a split has one reward
total per role, one chained equity curve and one Sharpe ratio wherever it is shown. Trained and
baseline policies run through the same :class:`MarketEnv` (the same execution and accounting code),
on the same windows, from the same capital.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from grandmodel.config.env import ROLES
from grandmodel.data.market_data import MarketData
from grandmodel.env import MarketEnv
from grandmodel.env.episodes import EpisodeSampler
from grandmodel.env.execution import CostModel
from grandmodel.errors import GrandModelError
from grandmodel.evaluation.lean import LeanPolicy, lean_policy, lean_rollouts
from grandmodel.evaluation.ledger import Ledger, ledger
from grandmodel.evaluation.metrics import exposure_stats, performance_summary, trade_stats

RANGE = "range"  # the split name of a date range (see with_range)
# what a walk keeps of each step: not the observation windows (they dominate the memory)
HEAVY = ("observation", "hidden", "logits", "loc", "scale", "action_value", "state_value")


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch at one intra-op thread for a walk: its networks act at the walk's batch (a few rows),
    where a second thread only costs hand-offs (~10x per call, experiments/backtest_speed), and
    every walk (training's validation, reports, backtests) runs its matrix products alike."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_policy(
    env: EnvBase, policy: TensorDictModuleBase, steps: int
) -> tuple[TensorDictBase, torch.Tensor]:
    """Deterministic rollout of ``steps`` (no exploration, no dropout) keeping actions, rewards,
    flags and info but not observations; also the mask of each env's first-episode steps."""
    was_training = getattr(policy, "training", False)
    policy.eval()
    kept: dict = {}  # leaf key -> that entry at every step (cheaper than stacking TensorDicts)
    try:
        with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
            td = env.reset()
            for _ in range(steps):
                out, td = env.step_and_maybe_reset(policy(td))
                if not kept:  # the same keys at every step
                    kept = {k: [] for k in out.keys(True, True) if _leaf(k) not in HEAVY}
                for key, values in kept.items():
                    values.append(out.get(key))
    finally:
        policy.train(was_training)
    dim = len(env.batch_size)
    rollout = TensorDict({}, batch_size=[*env.batch_size, steps], device=env.device)
    for key, values in kept.items():
        rollout.set(key, torch.stack(values, dim=dim))
    done = rollout.get(("next", "done"))[..., 0]
    ended_before = torch.cumsum(done.int(), dim=-1) - done.int()
    return rollout, ended_before == 0


def _leaf(key: str | tuple) -> str:
    return key[-1] if isinstance(key, tuple) else key


@dataclass
class Outcome:
    """One policy's walk.

    ``episode_rewards``: per role, the total reward of each window; ``returns``: the per-step equity
    returns of every window, chained in window order (their equity curve is
    :func:`~grandmodel.evaluation.metrics.equity_curve`); ``metrics``: see :meth:`Walk.run`;
    ``ledger``: the decision, equity and trade tables when the walk was asked for them.
    """

    episode_rewards: dict[str, np.ndarray]
    returns: np.ndarray
    metrics: dict[str, float]
    ledger: Ledger | None = None

    @property
    def mean_episode_rewards(self) -> np.ndarray:
        """Per window, the mean over roles of its total reward (what the curriculum watches)."""
        return np.mean([self.episode_rewards[role] for role in ROLES], axis=0)


class Walk:
    """Walks policies over the same windows of one split: consecutive episodes of
    ``data.episode_length`` steps, one env each (the first ``episodes`` of them when > 0), or the
    whole split as one window (``whole=True``, e.g. a backtest's date range)."""

    def __init__(
        self, cfg: DictConfig, data: MarketData, split: str, episodes: int = 0, whole: bool = False
    ) -> None:
        if whole:
            cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
            cfg.data.episode_length = data.split_steps(split)
            data = replace(data, meta={**data.meta, "episode_length": data.split_steps(split)})
        length = int(data.meta.get("episode_length", cfg.data.episode_length))
        sampler = EpisodeSampler(data, length, "random", 1)
        sampler.set_mode("eval", split)
        starts, ends = sampler.windows()
        n = len(starts) if episodes <= 0 else min(int(episodes), len(starts))
        self.cfg, self.data, self.split = cfg, data, split
        self.steps = int((ends[:n] - starts[:n]).max())
        self.env = MarketEnv(data, cfg, n_envs=n, split=split, mode="eval")
        self.costs = CostModel.from_config(cfg.env.costs, cfg.env.contract)
        self.capital = float(cfg.env.initial_capital)
        self.periods_per_year = float(data.meta["periods_per_year"]["tactical"])

    def run(
        self, policy: TensorDictModuleBase | LeanPolicy, tables: bool = False, lean: bool = True
    ) -> Outcome:
        """Walk ``policy`` once: through :func:`~grandmodel.evaluation.lean.lean_rollout` where
        :func:`~grandmodel.evaluation.lean.lean_policy` expresses it (and ``lean``), else through
        TorchRL (:func:`run_policy`); both give the same rollout.

        Metrics: per role ``reward/<role>`` (mean window total) and ``mean_reward`` (their mean);
        every :func:`~grandmodel.evaluation.metrics.performance_summary` key of the chained returns;
        ``trades`` and ``win_rate`` of the closed round trips (the env's own counters). With
        ``tables`` also the Ledger and what needs it: the trade statistics (``n_trades``,
        ``profit_factor``, ...), exposure and turnover, ``net_pnl`` and ``costs``.
        """
        return self.run_many({"policy": policy}, tables, lean)["policy"]

    def run_many(
        self,
        policies: dict[str, TensorDictModuleBase | LeanPolicy],
        tables: bool = False,
        lean: bool = True,
    ) -> dict[str, Outcome]:
        """:meth:`run` of each policy; those the lean walk expresses walk together
        (:func:`~grandmodel.evaluation.lean.lean_rollouts`: one kernel call per step for all),
        with the same outcomes as one by one."""
        with one_thread():
            return self._run_many(policies, tables, lean)

    def _run_many(
        self, policies: dict[str, TensorDictModuleBase | LeanPolicy], tables: bool, lean: bool
    ) -> dict[str, Outcome]:
        self.env.set_mode("eval", self.split)
        actors = {name: lean_policy(p) if lean else None for name, p in policies.items()}
        together = [name for name, a in actors.items() if a is not None]
        walked = dict(
            zip(
                together,
                lean_rollouts(self.env, [actors[name] for name in together], self.steps)
                if together
                else [],
                strict=True,
            )
        )
        out = {}
        for name, policy in policies.items():
            if name not in walked:
                assert not isinstance(policy, dict)
                walked[name] = run_policy(self.env, policy, self.steps)
            out[name] = self._outcome(*walked[name], tables)
        return out

    def _outcome(self, rollout: TensorDictBase, alive: torch.Tensor, tables: bool) -> Outcome:
        mask = alive.numpy()
        rewards = {
            role: (rollout.get(("next", role, "reward"))[..., 0].double().numpy() * mask).sum(1)
            for role in ROLES
        }
        returns = rollout.get(("next", "info", "terms"))[..., 0].numpy()[mask]
        metrics = performance_summary(returns, self.periods_per_year)
        book = ledger(rollout, mask, self.data, self.costs) if tables else None
        if book is not None:
            metrics |= self._table_metrics(book)
        for role, totals in rewards.items():
            metrics[f"reward/{role}"] = float(totals.mean())
        metrics["mean_reward"] = float(np.mean([totals.mean() for totals in rewards.values()]))
        last = np.maximum(mask.sum(axis=1) - 1, 0)
        rows = np.arange(mask.shape[0])
        trades = rollout.get(("next", "info", "trades"))[..., 0].numpy()[rows, last].sum()
        wins = rollout.get(("next", "info", "wins"))[..., 0].numpy()[rows, last].sum()
        metrics["trades"] = float(trades)
        metrics["win_rate"] = float(wins / trades) if trades > 0 else float("nan")
        return Outcome(rewards, returns, metrics, book)

    def _table_metrics(self, tables: Ledger) -> dict[str, float]:
        d, trades = tables.decisions, tables.trades
        out = trade_stats(trades["pnl"].to_numpy(), trades["bars"].to_numpy())
        multiplier = float(self.cfg.env.contract.multiplier)
        ppy = self.periods_per_year
        out |= exposure_stats(
            d["position"], d["mark"], multiplier, d["equity"], periods_per_year=ppy
        )
        out["net_pnl"] = float((d.groupby("episode")["equity"].last() - self.capital).sum())
        out["costs"] = float(d.groupby("episode")["costs"].last().sum())
        return out


def with_range(data: MarketData, start: str | None, end: str | None) -> MarketData:
    """``data`` with a ``range`` split: the decisions whose time falls in ``[start, end]``."""
    tz = str(data.meta["timezone"])
    known = data.tactical.known_ns.numpy()
    first, last = int(data.meta["first_decision"]), int(data.meta["last_decision"])
    lo_ns = _ns(start, tz, "start") if start else int(known[first])
    hi_ns = _ns(end, tz, "end") if end else int(known[last])
    decisions = np.arange(first, last + 1)
    inside = decisions[(known[first : last + 1] >= lo_ns) & (known[first : last + 1] <= hi_ns)]
    if len(inside) < 2:
        covers = f"{stamp(known[first], tz)} to {stamp(known[last], tz)}"
        raise GrandModelError(
            f"start={start} end={end}: the range holds no tradable bars; the data covers {covers}"
        )
    return replace(data, splits={**data.splits, RANGE: (int(inside[0]), int(inside[-1]) + 1)})


def _ns(text: str, tz: str, key: str) -> int:
    try:
        when = pd.Timestamp(text)
    except ValueError:
        raise GrandModelError(
            f"{key}: {text!r} is not a date; expected a date or time like '2023-06-01'"
        ) from None
    return (when.tz_convert(tz) if when.tzinfo else when.tz_localize(tz)).value


def stamp(ns: int, tz: str) -> str:
    """A bar time in the data's zone, to the minute."""
    return str(pd.Timestamp(int(ns), tz="UTC").tz_convert(tz).strftime("%Y-%m-%d %H:%M"))

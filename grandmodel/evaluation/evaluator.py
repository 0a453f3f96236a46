"""Deterministic evaluation runs: the policy walks a split once, and its results become metrics."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from omegaconf import DictConfig
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from grandmodel.config.env import ROLES
from grandmodel.data.market_data import MarketData
from grandmodel.env import MarketEnv
from grandmodel.env.episodes import EpisodeSampler
from grandmodel.evaluation.metrics import max_drawdown, sharpe_ratio

# what an evaluation keeps of each step: not the observation windows (they dominate the memory)
HEAVY = ("observation", "hidden", "logits", "loc", "scale", "action_value", "state_value")


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


class MarketEvaluator:
    """Walks ``split`` in consecutive episodes of ``data.episode_length`` steps (one env each).

    Returns the mean episode reward per role, and Sharpe (annualised for the tactical bar), max
    drawdown, total return, trades and win rate of the equity returns over the whole walk.
    """

    def __init__(
        self, cfg: DictConfig, data: MarketData, split: str = "val", episodes: int = 0
    ) -> None:
        sampler = EpisodeSampler(data, int(cfg.data.episode_length), "random", 1)
        sampler.set_mode("eval", split)
        starts, ends = sampler.windows()
        n = len(starts) if episodes <= 0 else min(int(episodes), len(starts))
        self.split, self.steps = split, int((ends[:n] - starts[:n]).max())
        self.env = MarketEnv(data, cfg, n_envs=n, split=split, mode="eval")
        self.periods_per_year = float(data.meta["periods_per_year"]["tactical"])

    def rollout(self, policy: TensorDictModuleBase) -> tuple[TensorDictBase, torch.Tensor]:
        self.env.set_mode("eval", self.split)
        return run_policy(self.env, policy, self.steps)

    def __call__(self, policy: TensorDictModuleBase) -> dict[str, float]:
        rollout, alive = self.rollout(policy)
        mask = alive.numpy()
        totals = [
            (rollout.get(("next", r, "reward"))[..., 0].double().numpy() * mask).sum(axis=1)
            for r in ROLES
        ]
        self.last_episode_rewards = np.mean(totals, axis=0)
        self.last_returns = rollout.get(("next", "info", "terms"))[..., 0].numpy()[mask]
        return market_metrics(rollout, alive, self.periods_per_year)


def market_metrics(
    rollout: TensorDictBase, alive: torch.Tensor, periods_per_year: float
) -> dict[str, float]:
    """Metrics of a masked ``[episodes, steps]`` market rollout."""
    mask = alive.numpy()
    out: dict[str, float] = {}
    per_role = []
    for role in ROLES:
        reward = rollout.get(("next", role, "reward"))[..., 0].double().numpy()
        totals = (reward * mask).sum(axis=1)
        out[f"reward/{role}"] = float(totals.mean())
        per_role.append(totals.mean())
    out["mean_reward"] = float(np.mean(per_role))
    returns = rollout.get(("next", "info", "terms"))[..., 0].numpy()[mask]
    equity = np.concatenate(([1.0], np.cumprod(1.0 + returns)))
    # a walk that never moved equity has no risk and no return: report Sharpe 0 rather than NaN,
    # so checkpoint selection and sweeps can rank it
    flat = returns.size < 2 or float(np.std(returns)) == 0.0
    out["sharpe"] = 0.0 if flat else float(sharpe_ratio(returns, periods_per_year))
    out["max_drawdown"] = float(max_drawdown(equity))
    out["total_return"] = float(equity[-1] - 1.0)
    last = np.maximum(mask.sum(axis=1) - 1, 0)
    rows = np.arange(mask.shape[0])
    trades = rollout.get(("next", "info", "trades"))[..., 0].numpy()[rows, last]
    wins = rollout.get(("next", "info", "wins"))[..., 0].numpy()[rows, last]
    out["trades"] = float(trades.sum())
    out["win_rate"] = float(wins.sum() / trades.sum()) if trades.sum() > 0 else float("nan")
    return out


class EpisodeEvaluator:
    """Mean undiscounted return of ``episodes`` deterministic episodes on any TorchRL env (classic control)."""

    def __init__(
        self, make_env: Callable[[], EnvBase], episodes: int, max_steps: int, reward_key="reward"
    ) -> None:
        self.env, self.episodes, self.max_steps, self.reward_key = (
            make_env(),
            episodes,
            max_steps,
            reward_key,
        )

    def __call__(self, policy: TensorDictModuleBase) -> dict[str, float]:
        returns: list[float] = []
        while len(returns) < self.episodes:
            rollout, alive = run_policy(self.env, policy, self.max_steps)
            reward = rollout.get(("next", self.reward_key))[..., 0]
            rollout_returns = (reward * alive.view(*reward.shape)).sum(dim=-1).reshape(-1)
            returns.extend(rollout_returns.tolist())
        arr = np.asarray(returns[: self.episodes])
        return {"mean_return": float(arr.mean()), "std_return": float(arr.std())}

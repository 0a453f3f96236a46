"""Evaluators the training loop calls at every validation: a policy in, metrics out.

:class:`MarketEvaluator` is the walk that picks checkpoints; it is the same
:class:`~grandmodel.evaluation.walk.Walk` every report uses, reduced to the keys training logs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from omegaconf import DictConfig
from tensordict.nn import TensorDictModuleBase
from torchrl.envs import EnvBase

from grandmodel.config.training import VALIDATION_KEYS
from grandmodel.data.market_data import MarketData
from grandmodel.evaluation.walk import Walk, run_policy

# what training logs of each validation walk (as val/<key>), in this order; the checkpoint
# selection (``trainer.selection``) names one of them
TRAINING_KEYS = VALIDATION_KEYS


class MarketEvaluator:
    """Walks ``split`` in consecutive episodes of ``data.episode_length`` steps (the first
    ``episodes`` of them when > 0) and returns :data:`TRAINING_KEYS` of the walk's metrics.

    After a call, ``last_episode_rewards`` holds each episode's reward total averaged over roles
    (the curriculum's signal) and ``last_returns`` the walk's chained per-step equity returns.
    """

    def __init__(
        self, cfg: DictConfig, data: MarketData, split: str = "val", episodes: int = 0
    ) -> None:
        self.walk = Walk(cfg, data, split, episodes)
        self.last_episode_rewards = np.zeros(0)
        self.last_returns = np.zeros(0)

    def __call__(self, policy: TensorDictModuleBase) -> dict[str, float]:
        outcome = self.walk.run(policy)
        self.last_episode_rewards = outcome.mean_episode_rewards
        self.last_returns = outcome.returns
        return {key: outcome.metrics[key] for key in TRAINING_KEYS}


def make_evaluator(cfg: DictConfig, data: MarketData, split: str) -> MarketEvaluator:
    """The evaluator of ``split`` that training runs at every validation (``trainer.eval_episodes``)."""
    return MarketEvaluator(cfg, data, split, int(cfg.trainer.eval_episodes))


class EpisodeEvaluator:
    """Mean undiscounted return of ``episodes`` deterministic episodes on any TorchRL env (classic control)."""

    def __init__(
        self, make_env: Callable[[], EnvBase], episodes: int, max_steps: int, reward_key="reward"
    ) -> None:
        self.env, self.episodes, self.max_steps = make_env(), episodes, max_steps
        self.reward_key = reward_key

    def __call__(self, policy: TensorDictModuleBase) -> dict[str, float]:
        returns: list[float] = []
        while len(returns) < self.episodes:
            rollout, alive = run_policy(self.env, policy, self.max_steps)
            reward = rollout.get(("next", self.reward_key))[..., 0]
            rollout_returns = (reward * alive.view(*reward.shape)).sum(dim=-1).reshape(-1)
            returns.extend(rollout_returns.tolist())
        arr = np.asarray(returns[: self.episodes])
        return {"mean_return": float(arr.mean()), "std_return": float(arr.std())}

"""PettingZoo (all three roles) and Gymnasium (one role, the others by baseline) views of MarketEnv.

Both run one env (``n_envs=1``) and exchange numpy arrays, so any PettingZoo or Gymnasium learner
(e.g. Stable-Baselines3) can drive the same market, execution and rewards.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import Env, spaces
from pettingzoo import ParallelEnv
from tensordict import TensorDictBase

from grandmodel.config.env import ROLES
from grandmodel.data.market_data import MarketData
from grandmodel.env import build_env
from grandmodel.env.baselines import joint_baseline
from grandmodel.env.market_env import MarketEnv

INFO_KEYS = ("equity", "position", "costs", "trades", "t")


def role_spaces(env: MarketEnv) -> tuple[dict[str, spaces.Space], dict[str, spaces.Space]]:
    """Gymnasium observation and action spaces of each role (one env, no batch dimension)."""
    observation, action = {}, {}
    for role in ROLES:
        shape = tuple(env.observation_spec[role, "observation"].shape[1:])
        norm = env.data.norm.get(role)
        bound = norm.clip if norm is not None and env.data_cfg.normalize else np.inf
        observation[role] = spaces.Box(-bound, bound, shape, np.float32)
    action["strategic"] = spaces.Discrete(3)
    bounds = env.action_spec["tactical", "action"].space
    action["tactical"] = spaces.Box(bounds.low[0].numpy(), bounds.high[0].numpy(), (3,), np.float32)
    action["risk"] = spaces.Discrete(int(env.action_spec["risk", "action"].space.n))
    return observation, action


class _Driver:
    """Steps a one-env MarketEnv from numpy actions and reads numpy results."""

    def __init__(self, cfg: Any, data: MarketData | None, split: str, mode: str) -> None:
        self.env = build_env(cfg, data, n_envs=1, split=split, mode=mode)
        self.td: TensorDictBase | None = None

    def reset(self, seed: int | None) -> TensorDictBase:
        if seed is not None:
            self.env.set_seed(int(seed))
        self.td = self.env.reset()
        return self.td

    def step(self, actions: dict[str, Any]) -> TensorDictBase:
        assert self.td is not None, "call reset() first"
        td = self.td
        td.set(("strategic", "action"), torch.as_tensor([int(actions["strategic"])]))
        tactical = np.asarray(actions["tactical"], dtype=np.float32).reshape(1, 3)
        td.set(("tactical", "action"), torch.from_numpy(tactical.copy()))
        td.set(("risk", "action"), torch.as_tensor([int(actions["risk"])]))
        result = self.env.step(td)
        self.td = result.get("next").exclude("reward", *((r, "reward") for r in ROLES))
        return result.get("next")

    @staticmethod
    def observation(td: TensorDictBase, role: str) -> np.ndarray:
        return td.get((role, "observation"))[0].numpy().copy()

    @staticmethod
    def info(td: TensorDictBase) -> dict[str, Any]:
        info = {key: td.get(("info", key))[0, 0].item() for key in INFO_KEYS}
        info["strategic_decision"] = bool(td.get(("strategic", "decision"))[0, 0])
        return info


class MarketParallelEnv(ParallelEnv):
    """PettingZoo ParallelEnv: agents ``strategic``, ``tactical``, ``risk`` act simultaneously.

    The strategic action is used only when ``infos["strategic"]["strategic_decision"]`` is true.
    """

    metadata: ClassVar[dict[str, Any]] = {"name": "grandmodel_market_v0", "render_modes": []}

    def __init__(
        self,
        cfg: Any,
        data: MarketData | None = None,
        split: str = "train",
        mode: str = "train",
    ) -> None:
        self._driver = _Driver(cfg, data, split, mode)
        self.possible_agents = list(ROLES)
        self.agents: list[str] = []
        self.observation_spaces, self.action_spaces = role_spaces(self._driver.env)
        self.render_mode = None

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None):
        td = self._driver.reset(seed)
        self.agents = list(self.possible_agents)
        info = _Driver.info(td)
        return {a: _Driver.observation(td, a) for a in self.agents}, {
            a: dict(info) for a in self.agents
        }

    def step(self, actions: dict[str, Any]):
        td = self._driver.step(actions)
        observations = {a: _Driver.observation(td, a) for a in self.agents}
        rewards = {a: float(td.get((a, "reward"))[0, 0]) for a in self.agents}
        terminated, truncated = bool(td.get("terminated")[0, 0]), bool(td.get("truncated")[0, 0])
        info = _Driver.info(td)
        out = (
            observations,
            rewards,
            {a: terminated for a in self.agents},
            {a: truncated for a in self.agents},
            {a: dict(info) for a in self.agents},
        )
        if terminated or truncated:
            self.agents = []
        return out

    def render(self) -> None:
        return None

    def close(self) -> None:
        return None


class MarketRoleEnv(Env):
    """Gymnasium env where ``role`` acts and the other roles follow their baselines."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        cfg: Any,
        role: str,
        data: MarketData | None = None,
        split: str = "train",
        mode: str = "train",
        baselines: dict[str, str] | None = None,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {list(ROLES)}, got {role!r}")
        self.role = role
        self._driver = _Driver(cfg, data, split, mode)
        observation, action = role_spaces(self._driver.env)
        self.observation_space, self.action_space = observation[role], action[role]
        self._others = joint_baseline(self._driver.env.data.strategic.feature_names, baselines)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        td = self._driver.reset(seed)
        return _Driver.observation(td, self.role), _Driver.info(td)

    def step(self, action: Any):
        td = self._others(self._driver.td.clone())
        actions = {r: td.get((r, "action"))[0].numpy() for r in ROLES}
        actions[self.role] = action
        result = self._driver.step(actions)
        reward = float(result.get((self.role, "reward"))[0, 0])
        terminated, truncated = (
            bool(result.get("terminated")[0, 0]),
            bool(result.get("truncated")[0, 0]),
        )
        return (
            _Driver.observation(result, self.role),
            reward,
            terminated,
            truncated,
            _Driver.info(result),
        )

"""Decision-level Gymnasium views of MarketEnv: one step = one decision of one role.

The strategic agent decides only where ``("strategic", "decision")`` is set (a new 30-minute bar has
closed); tactical and risk decide every tactical bar. A view of ``role`` asks for an action only at
that role's decisions, plays the other roles by their baselines, and runs the base env (holding the
role's action) until the role's next decision or the episode's end. The reward is the role's reward
summed over those base steps and ``info["elapsed_steps"]`` counts them, so a learner can discount
per decision with ``gamma ** elapsed_steps``.

:class:`DecisionVectorEnv` is a ``gymnasium.vector.VectorEnv`` over one batched MarketEnv
(``n_envs`` rows in one TorchRL env, not one process each): sub-envs whose next decision comes sooner
are frozen (their state restored) while the others catch up. :class:`DecisionEnv` is the one-env
``gymnasium.Env``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import Env
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from tensordict import TensorDict, TensorDictBase

from grandmodel.config.env import ROLES
from grandmodel.data.market_data import MarketData
from grandmodel.env import build_env
from grandmodel.env.adapters import INFO_KEYS, role_spaces
from grandmodel.env.baselines import joint_baseline
from grandmodel.env.state import replace_rows

_KEPT = (
    *((r, "observation") for r in ROLES),
    ("strategic", "decision"),
    *(("info", key) for key in INFO_KEYS),
)


class DecisionVectorEnv(VectorEnv):
    """``num_envs`` sub-envs of one batched MarketEnv, each stepped one ``role`` decision at a time.

    ``autoreset_mode``: gymnasium's ``NEXT_STEP`` (default: the step after an episode's end resets
    that sub-env and returns its first observation with reward 0), ``SAME_STEP`` (reset at once; the
    last observation and info in ``info["final_obs"]`` / ``info["final_info"]``) or ``DISABLED``
    (reset with ``reset(options={"reset_mask": mask})``). ``baselines``: kinds of the other roles.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        cfg: Any,
        role: str,
        num_envs: int | None = None,
        data: MarketData | None = None,
        split: str = "train",
        mode: str = "train",
        baselines: dict[str, str] | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {list(ROLES)}, got {role!r}")
        self.role = role
        self.env = build_env(cfg, data, n_envs=num_envs, split=split, mode=mode)
        self.num_envs = self.env.n
        observation, action = role_spaces(self.env)
        self.single_observation_space, self.single_action_space = observation[role], action[role]
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.metadata = {"render_modes": [], "autoreset_mode": self.autoreset_mode}
        self._others = joint_baseline(self.env.data.strategic.feature_names, baselines)
        self._td: TensorDictBase | None = None
        self._autoreset = np.zeros(self.num_envs, dtype=np.bool_)

    # ---------------------------------------------------------------- gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env, or those in ``options["reset_mask"]``; ``seed`` seeds the draws."""
        super().reset(seed=seed)
        if seed is not None:
            self.env.set_seed(int(seed))
        mask = (options or {}).get("reset_mask")
        rows = np.ones(self.num_envs, np.bool_) if mask is None else np.asarray(mask, np.bool_)
        self._reset_rows(torch.from_numpy(rows.copy()))
        self._autoreset[rows] = False
        zeros = np.zeros(self.num_envs, np.int64)
        return self._observation(), self._info(self._td, zeros)

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        assert self._td is not None, "call reset() first"
        n = self.num_envs
        pending = torch.from_numpy(self._autoreset.copy())
        if self.autoreset_mode is AutoresetMode.NEXT_STEP and pending.any():
            self._reset_rows(pending)
        elif self.autoreset_mode is AutoresetMode.DISABLED:
            assert not pending.any(), "reset the finished sub-envs (options['reset_mask']) first"
        reward, elapsed, terminated, truncated, last = self._decide(self._action(actions), ~pending)
        done = terminated | truncated
        info = self._info(last, elapsed.numpy())
        if self.autoreset_mode is AutoresetMode.SAME_STEP and done.any():
            ended, last_obs = done.numpy(), self._observation()
            final_obs = np.full(n, None, dtype=object)
            for i in np.flatnonzero(ended):
                final_obs[i] = last_obs[i]
            final_info = {k: v for k, v in info.items() if not k.startswith("_")}
            final_info |= {f"_{k}": ended.copy() for k in list(final_info)}
            self._reset_rows(done)
            info = self._info(self._td, elapsed.numpy()) | {
                "final_obs": final_obs,
                "_final_obs": ended.copy(),
                "final_info": final_info,
                "_final_info": ended.copy(),
            }
        self._autoreset = (
            np.zeros(n, np.bool_)
            if self.autoreset_mode is AutoresetMode.SAME_STEP
            else done.numpy()
        )
        return (
            self._observation(),
            reward.numpy(),
            terminated.numpy(),
            truncated.numpy(),
            info,
        )

    def close_extras(self, **kwargs: Any) -> None:
        self._td = None

    # ---------------------------------------------------------------- stepping
    def _decide(
        self, action: torch.Tensor, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, TensorDictBase]:
        """Hold ``action`` in ``rows`` until each row's next decision or end of episode.

        Returns the role's summed reward, the base steps taken, terminated, truncated, and the
        last base step's output (its info columns)."""
        n = self.num_envs
        reward = torch.zeros(n, dtype=torch.float64)
        elapsed = torch.zeros(n, dtype=torch.int64)
        terminated = torch.zeros(n, dtype=torch.bool)
        truncated = torch.zeros(n, dtype=torch.bool)
        last = self._td
        moving = rows.clone()
        while moving.any():
            out = self._base_step(moving, action)
            r = out.get((self.role, "reward")).view(n).cpu().to(torch.float64)
            reward += torch.where(moving, r, 0.0)
            elapsed += moving.long()
            term, trunc = out.get("terminated").view(n).cpu(), out.get("truncated").view(n).cpu()
            terminated |= moving & term
            truncated |= moving & trunc
            last = _merge(moving, out, last)
            moving &= ~(term | trunc) & ~self._at_decision(out)
        return reward, elapsed, terminated, truncated, last

    def _base_step(self, moving: torch.Tensor, action: torch.Tensor | None) -> TensorDictBase:
        """One base step of the rows in ``moving``; the other rows keep their state."""
        td = self._others(self._td.select(*_KEPT))
        if action is not None:
            td.set((self.role, "action"), action)
        frozen = ~moving
        saved = {k: v.clone() for k, v in self.env.state.items()} if frozen.any() else None
        out = self.env.step(td).get("next")
        if saved is not None:
            self.env.state = replace_rows(self.env.state, frozen.to(self.env.device), saved)
        self._td = _merge(moving, out, self._td)
        return out

    def _reset_rows(self, rows: torch.Tensor) -> None:
        """Reset ``rows`` and play baselines until each of them reaches the role's first decision."""
        while rows.any():
            request = TensorDict(
                {"_reset": rows.view(-1, 1)}, batch_size=[self.num_envs], device=self.env.device
            )
            fresh = self.env.reset(request)
            self._td = _merge(rows, fresh, fresh if self._td is None else self._td)
            waiting = rows & ~self._at_decision(self._td)
            rows = torch.zeros_like(rows)
            while waiting.any():
                out = self._base_step(waiting, None)
                ended = waiting & (out.get("terminated") | out.get("truncated")).view(-1).cpu()
                rows |= ended  # an episode shorter than the wait: draw another
                waiting &= ~ended & ~self._at_decision(out)

    def _at_decision(self, td: TensorDictBase) -> torch.Tensor:
        if self.role == "strategic":
            return td.get(("strategic", "decision")).view(-1).cpu()
        return torch.ones(self.num_envs, dtype=torch.bool)

    # ---------------------------------------------------------------- numpy in and out
    def _action(self, actions: Any) -> torch.Tensor:
        if self.role == "tactical":
            array = np.asarray(actions, dtype=np.float32).reshape(self.num_envs, 3)
            return torch.from_numpy(array.copy())
        return torch.from_numpy(np.asarray(actions, dtype=np.int64).reshape(self.num_envs).copy())

    def _observation(self) -> np.ndarray:
        return self._td.get((self.role, "observation")).cpu().numpy().copy()

    def _info(self, td: TensorDictBase, elapsed: np.ndarray) -> dict[str, Any]:
        info: dict[str, Any] = {"elapsed_steps": elapsed.copy()}
        for key in INFO_KEYS:
            info[key] = td.get(("info", key)).view(-1).cpu().numpy().copy()
        info["strategic_decision"] = td.get(("strategic", "decision")).view(-1).cpu().numpy().copy()
        every = np.ones(self.num_envs, np.bool_)
        return info | {f"_{key}": every.copy() for key in list(info)}


class DecisionEnv(Env):
    """One sub-env of :class:`DecisionVectorEnv`: a ``gymnasium.Env`` for ``role``'s decisions."""

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
        self.vector = DecisionVectorEnv(
            cfg, role, 1, data, split, mode, baselines, AutoresetMode.DISABLED
        )
        self.role = role
        self.observation_space = self.vector.single_observation_space
        self.action_space = self.vector.single_action_space

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        observation, info = self.vector.reset(seed=seed)
        return observation[0], _first(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.vector.step(
            np.asarray(action)[None]
        )
        return (
            observation[0],
            float(reward[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            _first(info),
        )


def _first(info: dict[str, Any]) -> dict[str, Any]:
    """Row 0 of a vector info, as plain Python values."""
    return {k: v[0].item() for k, v in info.items() if not k.startswith("_")}


def _merge(rows: torch.Tensor, new: TensorDictBase, old: TensorDictBase) -> TensorDictBase:
    """The kept entries of ``new`` where ``rows`` is set, else of ``old``."""
    if bool(rows.all()):
        return new.select(*_KEPT)
    rows = rows.to(new.device)
    merged = {}
    for key in _KEPT:
        a = new.get(key)
        merged[key] = torch.where(rows.view(-1, *([1] * (a.dim() - 1))), a, old.get(key))
    return TensorDict(merged, batch_size=new.batch_size, device=new.device)

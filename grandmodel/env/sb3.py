"""Stable-Baselines3 ``VecEnv`` over :class:`~grandmodel.env.gym_views.DecisionVectorEnv`.

SB3 has its own vector API (``step_async`` / ``step_wait``, a list of info dicts, same-step
autoreset with ``info["terminal_observation"]``); this adapter maps the gymnasium vector env onto it,
so ``PPO("MlpPolicy", SB3VecEnv(venv))`` trains on ``num_envs`` markets of one batched env.
Importing this module needs ``stable-baselines3`` (the ``bench`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from grandmodel.env.gym_views import DecisionVectorEnv


class SB3VecEnv(VecEnv):
    """SB3's view of a same-step-autoreset :class:`DecisionVectorEnv` (one role's decisions)."""

    def __init__(self, venv: DecisionVectorEnv) -> None:
        if venv.autoreset_mode is not AutoresetMode.SAME_STEP:
            raise ValueError("SB3VecEnv needs a DecisionVectorEnv with autoreset_mode=SAME_STEP")
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]
        observation, info = self.venv.reset(seed=seed)
        self.reset_infos = _rows(info, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return observation

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        observation, reward, terminated, truncated, info = self.venv.step(self._actions)
        infos = _rows(info, self.num_envs)
        for i in np.flatnonzero(terminated | truncated):
            infos[i]["terminal_observation"] = info["final_obs"][i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return observation, reward.astype(np.float32), terminated | truncated, infos

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.venv, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **kwargs: Any
    ) -> list[Any]:
        result = getattr(self.venv, method_name)(*method_args, **kwargs)
        return [result] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        return [indices] if isinstance(indices, int) else list(indices)


def _rows(info: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Gymnasium's dict of arrays as SB3's list of per-env dicts (the scalar entries)."""
    keys = [k for k in info if not k.startswith("_") and k not in ("final_obs", "final_info")]
    return [{k: info[k][i].item() for k in keys} for i in range(n)]


def ppo_arguments(ppo: Any) -> dict[str, Any]:
    """``stable_baselines3.PPO`` keyword arguments with the hyper-parameters and layer sizes of our
    PPO learner's config (``agent.strategic``, a PPO section), for like-for-like comparisons. SB3
    gives policy and value separate trunks: each gets the shared layers, then its own head."""
    return {
        "learning_rate": float(ppo.lr),
        "batch_size": int(ppo.batch_size),
        "n_epochs": int(ppo.epochs_per_update),
        "gamma": float(ppo.gamma),
        "gae_lambda": float(ppo.gae_lambda),
        "clip_range": float(ppo.clip_range),
        "ent_coef": float(ppo.entropy_coeff),
        "vf_coef": float(ppo.value_loss_coeff),
        "max_grad_norm": float(ppo.max_grad_norm),
        "policy_kwargs": {
            "net_arch": {
                "pi": [*ppo.shared_layers, *ppo.policy_layers],
                "vf": [*ppo.shared_layers, *ppo.value_layers],
            },
            "activation_fn": torch.nn.ReLU,
        },
    }

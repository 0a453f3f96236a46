"""The inner loop: a fresh copy of the meta-initialisation adapts to one market by ordinary
learner updates (collect a batch with the joint policy, ``observe``, ``learn``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictSequential
from torch import nn
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType, set_exploration_type, step_mdp

from grandmodel.agents import Algorithm, GroupSpec, build_learner
from grandmodel.agents.ppo import PPO
from grandmodel.config.env import ROLES
from grandmodel.errors import GrandModelError


def weights(learner: nn.Module) -> dict[str, torch.Tensor]:
    """The learner's trainable parameters by name (detached copies)."""
    return {name: p.detach().clone() for name, p in learner.named_parameters()}


def fresh_copy(cfg: Any, group: GroupSpec, source: Algorithm) -> Algorithm:
    """A new learner (own optimiser, no trainer) holding ``source``'s weights."""
    learner = build_learner(cfg, group)
    learner.prepare_for_loading()
    learner.load_state_dict(source.state_dict())
    return learner


def joint_policy(
    role: str, learner: Algorithm, fixed: dict[str, nn.Module]
) -> TensorDictSequential:
    """The learner acts for ``role``; the other roles act by their fixed modules (baselines)."""
    return TensorDictSequential(
        *(learner.exploration_policy() if r == role else fixed[r] for r in ROLES)
    )


class Rollouts:
    """Consecutive batches of ``frames`` env steps, episodes carried across batches."""

    def __init__(self, env: EnvBase, frames: int) -> None:
        self.env, self.steps = env, max(1, frames // env.batch_size[0])
        self._carried: TensorDictBase | None = None

    @torch.no_grad()
    def collect(self, policy: TensorDictSequential, learner: Algorithm) -> TensorDictBase:
        learner.eval()  # act without dropout, as training's collector does
        try:
            with set_exploration_type(ExplorationType.RANDOM):
                batch = self.env.rollout(
                    self.steps,
                    policy,
                    auto_reset=self._carried is None,
                    tensordict=self._carried,
                    break_when_any_done=False,
                )
        finally:
            learner.train()
        self._carried = step_mdp(batch[..., -1])
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The env's state, the carried step and the torch RNG: what the next batch depends on
        (plain tensors and dicts, so a ``weights_only`` load takes them back)."""
        carried = None if self._carried is None else self._carried.to_dict()
        return {
            "env": self.env.env_state_dict(),  # type: ignore[attr-defined]
            "carried": carried,
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_env_state_dict(state["env"])  # type: ignore[attr-defined]
        carried = state["carried"]
        self._carried = (
            None if carried is None else TensorDict(carried, batch_size=self.env.batch_size)
        )
        torch.set_rng_state(state["torch_rng"])


def mean_reward(batch: TensorDictBase) -> float:
    """Team reward per env step of a batch (the roles share it)."""
    return float(batch.get(("next", ROLES[0], "reward")).double().mean())


def adapt(
    learner: Algorithm,
    role: str,
    fixed: dict[str, nn.Module],
    rollouts: Rollouts,
    updates: int,
    done: int = 0,
    after: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Collect-observe-learn rounds ``done + 1 … updates`` (``done`` > 0: a resumed adaptation);
    ``after(k, reward)`` runs once round ``k`` has been learned from. Returns each collected batch's
    mean reward."""
    policy = joint_policy(role, learner, fixed)
    rewards = []
    for k in range(done, updates):
        batch = rollouts.collect(policy, learner)
        rewards.append(mean_reward(batch))
        learner.observe(batch)
        learner.learn(k / max(updates, 1))
        if after is not None:
            after(k + 1, rewards[-1])
    return rewards


def query_gradient(
    learner: Algorithm, role: str, fixed: dict[str, nn.Module], rollouts: Rollouts
) -> dict[str, torch.Tensor]:
    """Gradient of the PPO loss on a fresh batch at the adapted weights (first-order MAML)."""
    if not isinstance(learner, PPO):
        raise GrandModelError(
            f"meta.algorithm=fomaml: the {role} learner is {type(learner).__name__}; expected PPO "
            "(use meta.algorithm=reptile for the others)"
        )
    batch = rollouts.collect(joint_policy(role, learner, fixed), learner)
    learner.observe(batch)
    samples = learner._samples
    names = [name for name, _ in learner.named_parameters()]
    params = [p for _, p in learner.named_parameters()]
    if samples is None or samples.numel() < 2:
        return {name: torch.zeros_like(p) for name, p in zip(names, params, strict=True)}
    losses = learner.loss(samples)
    loss = losses["loss_objective"] + losses["loss_critic"] + losses.get("loss_entropy", 0.0)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return {
        name: torch.zeros_like(p) if g is None else g
        for name, p, g in zip(names, params, grads, strict=True)
    }

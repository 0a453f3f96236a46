"""Which TensorDict keys and specs one learner reads and writes, for any TorchRL env.

The market env nests each role's entries (``("tactical", "observation")``); single-agent envs such
as CartPole keep them at the root (group ``"agent"`` with an empty prefix). Done flags are shared.
"""

from __future__ import annotations

from dataclasses import dataclass

from tensordict.nn import TensorDictModule
from tensordict.utils import NestedKey
from torchrl.data import Bounded, Categorical, OneHot, TensorSpec
from torchrl.envs import EnvBase
from torchrl.modules import ProbabilisticActor, TanhNormal

from grandmodel.config.env import ROLES


@dataclass(frozen=True)
class GroupSpec:
    """Keys and unbatched specs of one agent group, and how many envs one env step steps."""

    name: str
    prefix: tuple[str, ...]
    observation_spec: TensorSpec
    action_spec: TensorSpec
    decision_key: NestedKey | None = None  # set where the group acts only at some steps (semi-MDP)
    n_envs: int = 1  # envs in one vectorised step: a batch's env steps are its frames / n_envs

    def key(self, leaf: str) -> NestedKey:
        return (*self.prefix, leaf) if self.prefix else leaf

    @property
    def observation(self) -> NestedKey:
        return self.key("observation")

    @property
    def action(self) -> NestedKey:
        return self.key("action")

    @property
    def reward(self) -> NestedKey:
        return self.key("reward")

    @property
    def log_prob(self) -> NestedKey:
        return self.key("action_log_prob")

    @property
    def discrete(self) -> bool:
        return isinstance(self.action_spec, Categorical | OneHot)

    @property
    def n_actions(self) -> int:
        return int(self.action_spec.space.n) if self.discrete else int(self.action_spec.shape[-1])

    @property
    def bounds(self) -> tuple:
        if not isinstance(self.action_spec, Bounded):
            raise TypeError(f"group {self.name!r} has no bounded continuous action")
        return self.action_spec.space.low, self.action_spec.space.high

    def tanh_normal_actor(self, params: TensorDictModule) -> ProbabilisticActor:
        """The group's bounded action from ``params`` writing its ``loc`` and ``scale`` keys."""
        low, high = self.bounds
        return ProbabilisticActor(
            params,
            in_keys={"loc": self.key("loc"), "scale": self.key("scale")},
            out_keys=[self.action],
            distribution_class=TanhNormal,
            distribution_kwargs={"low": low, "high": high},
            return_log_prob=True,
            log_prob_key=self.log_prob,
            spec=self.action_spec,
        )


def group_specs(env: EnvBase) -> dict[str, GroupSpec]:
    """One :class:`GroupSpec` per agent group of ``env`` (the three roles, or a single ``agent``)."""
    observations = env.full_observation_spec_unbatched
    actions = env.full_action_spec_unbatched
    n_envs = env.batch_size.numel()
    if all(role in actions.keys() for role in ROLES):
        return {
            role: GroupSpec(
                role,
                (role,),
                observations[role, "observation"],
                actions[role, "action"],
                (role, "decision") if (role, "decision") in observations.keys(True) else None,
                n_envs,
            )
            for role in ROLES
        }
    obs_key = (
        "observation" if "observation" in observations.keys() else next(iter(observations.keys()))
    )
    return {
        "agent": GroupSpec("agent", (), observations[obs_key], actions["action"], n_envs=n_envs)
    }

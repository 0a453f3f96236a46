"""Learning phases (``agent.phases``): each learning role learns within its own window of one run.

Joint training of the roles from the first frame ends flat on the default market
(``experiments/learning_quality/README.md``, "marl (joint)"): while the tactical and risk learners
still act at random, the strategic agent's returns are mostly their noise, and every role learns
that not trading is safest. Phases train the roles in turn within one run, as ``make
train-staged`` does with one run per role, so one checkpoint, one MLflow run and one final table
hold the whole system. A role with window ``[start, end]`` (shares of ``trainer.total_frames``) is

- **waiting** before ``start``: it acts by its baseline (``agent.baselines``); its learner neither
  observes nor learns;
- **learning** from ``start`` to ``end``: it acts by its learner (exploring) and learns; the
  learner's schedules (learning rate, ε, β) see the progress through this window;
- **done** after ``end``: it acts greedily by its learner and learns no more.

A batch's state is the one at the frames collected before it (``CollectorSource.batch_starts``),
so the policy that collected a batch and the learning on it agree, also when Lightning fetches the
next batch before training on this one. A checkpoint records the roles still waiting
(``grandmodel.checkpoints.acting_learners``): restored, exported or frozen, they act by their
baselines, as they did when the checkpoint's validation ran.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from grandmodel.config.agent import AgentGroupConfig

WAITING, LEARNING, DONE = "waiting", "learning", "done"
THROUGHOUT = (0.0, 1.0)


class Phases:
    """The learning window of every learning role. ``clock`` returns the frames collected so far
    (set to the collector source's counter once it exists); ``collecting`` is true while the
    collector steps. A collection acts in the state of the frame it collects next; evaluations
    and checkpoints in the state of the last frame collected, so a role whose phase starts at the
    frame count of an evaluation is evaluated (and kept) by its baseline, not by its untrained
    learner."""

    def __init__(self, windows: dict[str, tuple[float, float]], total_frames: int) -> None:
        self.windows, self.total_frames = windows, max(int(total_frames), 1)
        self.clock: Callable[[], int] = lambda: 0
        self.collecting = False
        self.pinned: list[str] | None = None  # the waiting roles of loaded weights (see pin)

    @classmethod
    def from_config(cls, agent: AgentGroupConfig, total_frames: int) -> Phases:
        return cls({role: agent.phases.window(role) for role in agent.learn}, total_frames)

    def phased(self, role: str) -> bool:
        """Whether ``role`` learns in a window narrower than the whole run."""
        return self.windows.get(role, THROUGHOUT) != THROUGHOUT

    def state(self, role: str, frames: int | None = None) -> str:
        """``role``'s state at frame ``frames`` (default: the acting frame now, by the clock, or
        as pinned)."""
        if frames is None and self.pinned is not None:
            return WAITING if role in self.pinned else DONE
        done = frames if frames is not None else self.clock() - (0 if self.collecting else 1)
        start, end = self.windows.get(role, THROUGHOUT)
        if done < start * self.total_frames:
            return WAITING
        return LEARNING if end == 1.0 or done < end * self.total_frames else DONE

    def progress(self, role: str, progress: float) -> float:
        """The run's ``progress`` in [0, 1] as the share of ``role``'s window done."""
        start, end = self.windows.get(role, THROUGHOUT)
        return min(max((progress - start) / (end - start), 0.0), 1.0)

    def pin(self, waiting: list[str]) -> None:
        """Act as the checkpoint whose weights were loaded after training: ``waiting`` (its
        ``waiting`` roles) by their baselines, the others greedily by their learners."""
        self.pinned = list(waiting)

    def waiting(self) -> list[str]:
        """The roles that act by their baseline now."""
        return [role for role in self.windows if self.state(role) == WAITING]


class PhasedRole(TensorDictModuleBase):
    """A phased role's acting module: its baseline while waiting, its learner's policy while
    learning, the same greedily when done (``Phases.state`` by the clock).

    Every batch carries the keys the collector laid out from its first one, so while waiting the
    learner's other outputs (log-probabilities, action values) are written as zeros of the shapes
    its policy gave once, on a forked RNG: waiting costs the baseline only and draws no random
    numbers (a waiting role does not change what the learning ones draw). The learner's policy is
    registered under the system's learners, not here; only the baseline's buffers are this
    module's state."""

    def __init__(
        self,
        role: str,
        learner_policy: TensorDictModuleBase,
        baseline: TensorDictModuleBase,
        phases: Phases,
    ) -> None:
        super().__init__()
        self.role, self.baseline, self.phases = role, baseline, phases
        object.__setattr__(self, "learner_policy", learner_policy)
        self.in_keys = list(dict.fromkeys([*learner_policy.in_keys, *baseline.in_keys]))
        self.out_keys = list(dict.fromkeys([*learner_policy.out_keys, *baseline.out_keys]))
        self._shapes: dict[Any, tuple[tuple[int, ...], torch.dtype]] | None = None

    def acting(self) -> TensorDictModuleBase:
        """The module that decides the role's action now (what a deterministic walk runs)."""
        return self.baseline if self.phases.state(self.role) == WAITING else self.learner_policy

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        state = self.phases.state(self.role)
        if state == DONE:
            with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
                return self.learner_policy(tensordict)
        if state == LEARNING:
            return self.learner_policy(tensordict)
        batch = tuple(tensordict.batch_size)
        for key, (shape, dtype) in self._learner_outputs(tensordict).items():
            tensordict.set(key, torch.zeros(batch + shape, dtype=dtype, device=tensordict.device))
        return self.baseline(tensordict)

    def _learner_outputs(self, tensordict: TensorDictBase) -> dict[Any, Any]:
        """Per output key of the learner's policy that the baseline does not write: its shape
        after the batch dimensions and its dtype (from one call, on a forked RNG)."""
        if self._shapes is None:
            devices = (
                [tensordict.device]
                if tensordict.device and tensordict.device.type == "cuda"
                else []
            )
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                out = self.learner_policy(tensordict.clone())
            dims = len(tensordict.batch_size)
            self._shapes = {
                key: (tuple(out.get(key).shape[dims:]), out.get(key).dtype)
                for key in self.learner_policy.out_keys
                if key not in self.baseline.out_keys
            }
        return self._shapes

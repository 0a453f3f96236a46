"""Shared part of the replay-based learners (SAC, DQN): buffer, update schedule, checkpoint state."""

from __future__ import annotations

import abc
from collections import OrderedDict
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from grandmodel.agents.base import Algorithm
from grandmodel.agents.groups import GroupSpec
from grandmodel.agents.replay import WEIGHT_KEY, make_replay_buffer, set_beta
from grandmodel.config.agent import DQNConfig, SACConfig


class OffPolicy(Algorithm, abc.ABC):
    """Stores this group's transitions in a (prioritized) replay buffer and samples updates from it."""

    cfg: SACConfig | DQNConfig

    def __init__(self, cfg: SACConfig | DQNConfig, group: GroupSpec) -> None:
        super().__init__(cfg, group)
        replay = cfg.replay
        self.buffer = make_replay_buffer(
            replay.buffer_size,
            cfg.batch_size,
            prioritized=replay.prioritized,
            alpha=replay.alpha,
            beta=replay.beta,
            priority_key="td_error",
        )
        self._pending_steps = 0
        self._owed = 0.0  # the fraction of a gradient step carried to the next batch

    @abc.abstractmethod
    def update(self, sample: TensorDictBase) -> dict[str, float]:
        """One gradient step on ``sample`` (writes ``td_error`` for the priorities)."""

    def frames_to_updates(self, steps: int) -> int:
        """Gradient steps owed for ``steps`` vectorised env steps: ``gradient_steps`` per step (the
        update-to-data ratio; a fraction such as 0.25 is one update every 4 steps, the remainder
        carried to the next batch)."""
        owed = self._owed + self.cfg.gradient_steps * steps
        n = int(owed)
        self._owed = owed - n
        return n

    @torch.no_grad()
    def observe(self, batch: TensorDictBase) -> None:
        g = self.group
        nxt = batch.get("next")
        transitions = TensorDict(
            {
                g.observation: batch.get(g.observation),
                g.action: batch.get(g.action),
                "next": {
                    g.observation: nxt.get(g.observation),
                    g.reward: nxt.get(g.reward),
                    "done": nxt.get("done"),
                    "terminated": nxt.get("terminated"),
                },
            },
            batch_size=batch.shape,
        ).reshape(-1)
        self.buffer.extend(transitions.cpu())
        # vectorised env steps: frames / envs per step (a multi-process batch [workers · n, T /
        # workers] holds T of them, as a one-collector batch [n, T] does)
        self._pending_steps += max(1, batch.numel() // self.group.n_envs)
        self.batches += 1

    def learn(self, progress: float) -> dict[str, float]:
        steps, self._pending_steps = self._pending_steps, 0
        replay = self.cfg.replay
        if len(self.buffer) < max(replay.min_size_to_train, self.cfg.batch_size):
            return {"buffer_size": float(len(self.buffer))}
        if replay.prioritized:
            beta = replay.beta + (replay.beta_end - replay.beta) * min(progress, 1.0)
            set_beta(self.buffer, beta)
        totals: dict[str, float] = {}
        n = self.frames_to_updates(steps)
        for _ in range(n):
            sample = self.buffer.sample()
            # float64 priorities; the loss stays in the model's dtype
            if WEIGHT_KEY in sample.keys():
                sample.set(WEIGHT_KEY, sample.get(WEIGHT_KEY).float())
            sample = sample.to(self.device)
            metrics = self.update(sample)
            if replay.prioritized:
                self.buffer.update_tensordict_priority(sample.cpu())
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0.0) + value
        out = {k: v / max(n, 1) for k, v in totals.items()}
        out["buffer_size"] = float(len(self.buffer))
        return out

    def extra_state(self) -> dict[str, Any]:
        return {
            "buffer": plain(self.buffer.state_dict()),
            "pending_steps": self._pending_steps,
            "owed": self._owed,
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(unplain(state["buffer"]))
        self._pending_steps = int(state["pending_steps"])
        self._owed = float(state.get("owed", 0.0))


def plain(obj: Any) -> Any:
    """Checkpoint-safe copy of a buffer's ``state_dict``: TensorDicts and module-style state dicts
    (whose batch sizes live in ``_metadata``) become tagged dicts of tensors and lists, which
    ``torch.load(weights_only=True)`` reads."""
    if isinstance(obj, TensorDictBase):
        return {"__tensordict__": plain(obj.to_dict()), "batch_size": list(obj.batch_size)}
    metadata = getattr(obj, "_metadata", None)
    if isinstance(obj, OrderedDict) and metadata is not None:
        return {
            "__state_dict__": {k: plain(v) for k, v in obj.items()},
            "metadata": plain(dict(metadata)),
        }
    if isinstance(obj, torch.Size):
        return {"__size__": list(obj)}
    if isinstance(obj, torch.device):
        return {"__device__": str(obj)}
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(plain(v) for v in obj)
    return obj


def unplain(obj: Any) -> Any:
    """Inverse of :func:`plain`."""
    if isinstance(obj, dict) and "__tensordict__" in obj:
        return TensorDict(unplain(obj["__tensordict__"]), batch_size=obj["batch_size"])
    if isinstance(obj, dict) and "__state_dict__" in obj:
        out = OrderedDict((k, unplain(v)) for k, v in obj["__state_dict__"].items())
        out._metadata = OrderedDict(unplain(obj["metadata"]))  # type: ignore[attr-defined]
        return out
    if isinstance(obj, dict) and "__size__" in obj:
        return torch.Size(obj["__size__"])
    if isinstance(obj, dict) and "__device__" in obj:
        return torch.device(obj["__device__"])
    if isinstance(obj, dict):
        return {k: unplain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(unplain(v) for v in obj)
    return obj

"""The collector as Lightning's training data: an iterable of collected batches, one epoch per evaluation.

One TorchRL ``Collector`` steps the batched env with the joint policy; each yielded batch is a
``[n_envs, steps]`` TensorDict. The source keeps what exact resumption needs: frame counters, the
env's portfolio/episode state and RNG, running episode returns, and the global torch RNG.

Data-parallel (``trainer.strategy=ddp``): every process has its own source, collecting
``frames_per_batch`` frames per batch from its own env shard; ``frames`` counts the frames of all
``world_size`` processes (they collect equal batches in lockstep), so every process yields the same
number of batches and stops at the same global ``total_frames``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch.utils.data import IterableDataset
from torchrl.collectors import Collector, MultiAsyncCollector, MultiSyncCollector
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType

RewardKeys = dict[str, Any]


class CollectorSource(IterableDataset):
    """Yields ``batches_per_epoch`` collector batches per ``iter()`` until ``total_frames``."""

    def __init__(
        self,
        make_env: Callable[[], EnvBase],
        policy: TensorDictModuleBase,
        *,
        frames_per_batch: int,
        total_frames: int,
        batches_per_epoch: int,
        reward_keys: RewardKeys,
        policy_device: torch.device | str = "cpu",
        on_collect: Callable[[bool], None] | None = None,
        level: Any = None,
        kind: str = "single",
        make_shard: Callable[[int], EnvBase] | None = None,
        workers: int = 1,
        rank: int = 0,
        world_size: int = 1,
        rank_seed: int = 0,
    ) -> None:
        self.make_env, self.policy = make_env, policy
        self.frames_per_batch, self.total_frames = frames_per_batch, total_frames
        self.batches_per_epoch = batches_per_epoch
        self.reward_keys = (
            reward_keys  # name -> reward key, e.g. {"strategic": ("strategic", "reward")}
        )
        self.policy_device = torch.device(policy_device)
        self.on_collect = on_collect  # called with True before and False after each collection
        self.level = level  # the curriculum level the env draws its markets from (None: all)
        # multi_sync / multi_async: `workers` processes, worker i stepping `make_shard(i)` (picklable)
        self.kind, self.make_shard, self.workers = kind, make_shard, workers
        # data-parallel: this process's rank of world_size; a rank > 0 draws its actions (and
        # minibatches) from the torch RNG seeded with rank_seed, not rank 0's stream
        self.rank, self.world_size, self.rank_seed = rank, world_size, rank_seed
        self.frames = 0  # of all world_size processes
        self.batches = 0
        # frames collected before each batch not yet trained on (Lightning fetches one ahead)
        self.batch_starts: deque[int] = deque()
        self.collector: Collector | None = None
        self.env: EnvBase | None = None
        self._iterator: Iterator[TensorDictBase] | None = None
        self._running: torch.Tensor | None = (
            None  # [n_envs, rewards] returns of the episodes in progress
        )
        self._restore: dict[str, Any] | None = None
        self.finished_returns: list[torch.Tensor] = []
        self._by_trajectory: dict[int, torch.Tensor] = {}  # multi-process: returns in progress

    @property
    def done(self) -> bool:
        return self.frames >= self.total_frames

    def _start(self) -> None:
        if self.kind != "single":
            self._start_workers()
            return
        self.env = self.make_env()
        if self.level is not None and self.env.level != self.level:  # a resumed run's level
            self.env.set_level(self.level)
        self.collector = Collector(
            self.env,
            self.policy,
            frames_per_batch=self.frames_per_batch,
            total_frames=-1,
            policy_device=self.policy_device,
            env_device=self.env.device,
            storing_device=self.policy_device,
            exploration_type=ExplorationType.RANDOM,
            auto_register_policy_transforms=False,
        )
        self._iterator = iter(self.collector)
        self._running = torch.zeros(
            self.env.batch_size[0], len(self.reward_keys), dtype=torch.float64
        )
        if self._restore is not None:
            self._apply(self._restore)
            self._restore = None
        if self.rank > 0:  # after Lightning re-seeded every process alike (and after a restore)
            torch.manual_seed(self.rank_seed + self.batches)

    def _start_workers(self) -> None:
        """TorchRL's multi-process collectors; the policy's weights go to the workers before each
        batch (``update_at_each_batch``). Episode returns are tracked per worker's env rows."""
        assert self.make_shard is not None
        sync = self.kind == "multi_sync"
        cls = MultiSyncCollector if sync else MultiAsyncCollector
        if self.on_collect:  # the workers' copies act as collection does: without dropout
            self.on_collect(True)
        self.collector = cls(
            [partial(self.make_shard, i) for i in range(self.workers)],
            self.policy,
            frames_per_batch=self.frames_per_batch,
            total_frames=-1,
            policy_device=self.policy_device,
            storing_device=self.policy_device,
            exploration_type=ExplorationType.RANDOM,
            update_at_each_batch=True,
            auto_register_policy_transforms=False,
            **({"cat_results": 0} if sync else {}),
        )
        if self.on_collect:
            self.on_collect(False)
        self._iterator = iter(self.collector)
        if self._restore is not None:  # counters and finished returns only: see TrainerConfig
            torch.set_rng_state(self._restore["torch_rng"])
            self._restore = None

    def __iter__(self) -> Iterator[TensorDictBase]:
        for _ in range(self.batches_per_epoch):
            if self.done:
                return
            if self.collector is None:
                self._start()
            yield self._collect()

    def _collect(self) -> TensorDictBase:
        assert self._iterator is not None
        if self.on_collect:
            self.on_collect(True)
        try:
            batch = next(self._iterator)
        finally:
            if self.on_collect:
                self.on_collect(False)
        self.batch_starts.append(self.frames)
        self.batches += 1
        self.frames += batch.numel() * self.world_size
        self._track_episodes(batch)
        return batch

    def _track_episodes(self, batch: TensorDictBase) -> None:
        """Accumulate per-env rewards; completed episodes' returns go to ``finished_returns``.

        One collector: by env row (a tensor that exact resume restores). Multi-process collectors:
        by TorchRL's trajectory id, which names one worker's env episode whatever the batch order.
        """
        rewards = torch.stack(
            [batch.get(("next", *_tuple(k)))[..., 0].double() for k in self.reward_keys.values()],
            dim=-1,
        ).cpu()
        done = batch.get(("next", "done"))[..., 0].cpu()
        if self.kind != "single":
            self._track_trajectories(batch.get(("collector", "traj_ids")).cpu(), rewards, done)
            return
        assert self._running is not None
        for step in range(rewards.shape[1]):
            self._running += rewards[:, step]
            ended = done[:, step]
            if ended.any():
                self.finished_returns.extend(self._running[ended].clone())
                self._running[ended] = 0.0

    def _track_trajectories(
        self, traj_ids: torch.Tensor, rewards: torch.Tensor, done: torch.Tensor
    ) -> None:
        for row in range(rewards.shape[0]):
            for step in range(rewards.shape[1]):
                key = int(traj_ids[row, step])
                total = self._by_trajectory.get(key, 0.0) + rewards[row, step]
                if done[row, step]:
                    self.finished_returns.append(total)
                    self._by_trajectory.pop(key, None)
                else:
                    self._by_trajectory[key] = total

    def pop_finished(self) -> dict[str, float]:
        """Mean return of the episodes completed since the last call, per reward key."""
        if not self.finished_returns:
            return {}
        stacked = torch.stack(self.finished_returns)
        self.finished_returns = []
        out = {
            f"episode_reward/{name}": float(stacked[:, i].mean())
            for i, name in enumerate(self.reward_keys)
        }
        out["episodes"] = float(len(stacked))
        return out

    # ---- exact resume
    def state_dict(self) -> dict[str, Any]:
        env_state = (
            self.env.env_state_dict()
            if self.env is not None and hasattr(self.env, "env_state_dict")
            else None
        )
        return {
            "frames": self.frames,
            "batches": self.batches,
            "env": env_state,
            "running": None if self._running is None else self._running.clone(),
            "finished": [r.clone() for r in self.finished_returns],
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.frames, self.batches = int(state["frames"]), int(state["batches"])
        if self.rank > 0:  # rank 0's checkpoint: counters only; this shard's episodes restart
            return
        self.finished_returns = list(state["finished"])
        if self.collector is None:
            self._restore = state
        else:
            self._apply(state)

    def _apply(self, state: dict[str, Any]) -> None:
        """Put the env and the collector's carrier back where the checkpoint left them."""
        assert self.env is not None and self.collector is not None
        if state["env"] is not None:
            self.env.load_env_state_dict(state["env"])
            self.collector._carrier.update(self.env.current_observation())
        if state["running"] is not None:
            self._running = state["running"].clone()
        torch.set_rng_state(state["torch_rng"])

    def change_level(self, level: Any) -> None:
        """Draw from curriculum ``level``'s markets from now on: every env restarts its episode.
        (Before the first collection, as when a resumed run restores its level, the env takes it
        when the collector starts.)"""
        if level == self.level:
            return
        self.level = level
        if self.env is not None:
            self.env.set_level(level)
            self.restart_episodes()

    def restart_episodes(self) -> None:
        """Reset every env and the collector's carrier (after the market changed under them)."""
        if self.collector is not None:
            self.collector.reset()
            if self._running is not None:
                self._running.zero_()
            self._by_trajectory.clear()

    def shutdown(self) -> None:
        if self.collector is not None:
            self.collector.shutdown()
            self.collector = None


def _tuple(key: Any) -> tuple:
    return key if isinstance(key, tuple) else (key,)

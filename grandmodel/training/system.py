"""``MARLSystem``: the LightningModule that ``Trainer.fit`` runs — all learners on one collector.

Each training step takes one collected batch: every learning group observes it and runs its updates
(manual optimisation). Each validation step runs the injected evaluator (deterministic policy on the
evaluation split). Checkpoints carry the learners, optimisers (Lightning), replay buffers, the env's
portfolio state, RNGs and counters, so ``ckpt_path=`` resumes exactly.

Data-parallel (``trainer.strategy=ddp``): Lightning wraps the system in DistributedDataParallel; the
learners' ``manual_backward`` all-reduces (averages) the gradients, so every process steps to the same
weights. Only rank 0 runs the evaluation walk; its metrics are broadcast, so checkpointing, early
stopping and the curriculum decide alike on every process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn
from torch.utils.data import DataLoader

from grandmodel.agents.base import Algorithm
from grandmodel.errors import GrandModelError
from grandmodel.training.data_source import CollectorSource
from grandmodel.training.phases import LEARNING, Phases

Evaluator = Callable[[TensorDictModuleBase], dict[str, float]]
log = logging.getLogger(__name__)


class MARLSystem(pl.LightningModule):
    """Learners by group name, the joint acting policy, the collector source and an evaluator.

    ``fixed`` holds the modules of the roles that do not learn (so they move with the system);
    ``policy`` is the joint acting policy over all roles, made of those and the learners' policies.
    """

    def __init__(
        self,
        learners: dict[str, Algorithm],
        fixed: dict[str, nn.Module],
        policy: TensorDictModuleBase,
        source: CollectorSource,
        evaluator: Evaluator | None = None,
        config: dict[str, Any] | None = None,
        phases: Phases | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.learners = nn.ModuleDict(learners)
        # roles acting by baseline or frozen checkpoint, and the phased roles' switches (their baselines)
        self.fixed = nn.ModuleDict(fixed)
        object.__setattr__(
            self, "policy", policy
        )  # built from the modules above; not registered twice
        self.source = source
        self.evaluator = evaluator
        self.phases = phases  # learning windows of the roles (None: all learn throughout)
        self.config = config or {}
        self.model_info: dict[
            str, Any
        ] = {}  # what deployment needs with the weights (norm stats, frozen configs)
        self.history: list[
            dict[str, float]
        ] = []  # one row per logged batch / evaluation (for curves)
        self._started = time.perf_counter()
        self.last_episode_rewards: Any = []  # of the last evaluation (what the curriculum reads)
        self._states: dict[
            str, str
        ] = {}  # each phased role's state at the last batch (for the log)

    # ---- Lightning plumbing
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [opt for learner in self.learners.values() for opt in learner.make_optimizers()]

    def on_train_start(self) -> None:
        """Hand each learner Lightning's wrappers of its optimisers (precision plugins, step counts),
        and the trainer: their ``manual_backward`` goes through the strategy (DDP's all-reduce)."""
        for learner in self.learners.values():  # children of a ModuleDict: Lightning does not
            learner.trainer = self.trainer
        wrapped = self.optimizers()
        wrapped = wrapped if isinstance(wrapped, list) else [wrapped]
        offset = 0
        for learner in self.learners.values():
            n = len(learner.make_optimizers())
            learner.use_optimizers(wrapped[offset : offset + n])
            offset += n

    # Each ``iter(DataLoader)`` draws a base seed; their own generators keep that draw off the global
    # RNG, which exact resumption restores.
    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.source, batch_size=None, collate_fn=_identity, generator=torch.Generator()
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader([0], batch_size=None, collate_fn=_identity, generator=torch.Generator())

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        return batch.to(device) if isinstance(batch, TensorDictBase) else batch

    # ---- training and evaluation
    def training_step(self, batch: TensorDictBase, batch_idx: int) -> None:
        progress = min(self.source.frames / max(self.source.total_frames, 1), 1.0)
        started = self.source.batch_starts.popleft() if self.source.batch_starts else None
        row: dict[str, float] = {}
        for name, learner in self.learners.items():
            share = progress  # of the run, or of the role's learning phase
            if self.phases is not None and self.phases.phased(name):
                state = self.phases.state(name, started)
                if state != self._states.get(name):
                    log.info("%s agent: %s from %s frames", name, state, f"{started:,}")
                    self._states[name] = state
                if state != LEARNING:
                    continue
                share = self.phases.progress(name, progress)
            learner.observe(batch)
            for key, value in learner.learn(share).items():
                row[f"{name}/{key}"] = value
        row.update({f"train/{k}": v for k, v in self.source.pop_finished().items()})
        row["frames"] = float(self.source.frames)
        row["fps"] = self.source.frames / max(time.perf_counter() - self._started, 1e-9)
        self._record(row)
        self.log(
            "fps",
            row["fps"],
            prog_bar=True,
            on_step=True,
            on_epoch=False,
            batch_size=1,
            logger=False,
        )

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if self.evaluator is None:
            return
        parallel = self._trainer is not None and self.trainer.world_size > 1
        metrics, rewards = {}, []
        if not parallel or self.global_rank == 0:  # one walk, on rank 0
            metrics = {f"val/{k}": v for k, v in self.evaluator(self.policy).items()}
            rewards = getattr(self.evaluator, "last_episode_rewards", [])
        if parallel:
            metrics, rewards = self.trainer.strategy.broadcast((metrics, rewards), src=0)
        self.last_episode_rewards = rewards
        # for checkpointing and early stopping (the same values on every process)
        self.log_dict(metrics, batch_size=1, logger=False, sync_dist=parallel)
        key = next((k for k in metrics if k.endswith("sharpe")), next(iter(metrics)))
        self.log(
            key.split("/", 1)[1],
            metrics[key],
            prog_bar=True,
            batch_size=1,
            logger=False,
            sync_dist=parallel,
        )
        self._record({**metrics, "frames": float(self.source.frames)})
        if parallel and self.global_rank != 0:
            return
        shown = ("sharpe", "total_return", "max_drawdown", "trades", "mean_reward")
        log.info(
            "evaluation at %s frames (%.0f frames/s): %s",
            f"{self.source.frames:,}",
            self.source.frames / max(time.perf_counter() - self._started, 1e-9),
            ", ".join(f"{k} {metrics[f'val/{k}']:.4g}" for k in shown if f"val/{k}" in metrics),
        )

    def on_validation_end(self) -> None:
        """Data-parallel: a stop one process decided after an evaluation (a pruned sweep trial:
        only rank 0 reads its siblings) stops every process (after the callbacks' hooks)."""
        if self.trainer.world_size > 1:
            stop = self.trainer.strategy.reduce_boolean_decision(
                self.trainer.should_stop, all=False
            )
            self.trainer.should_stop = stop

    def on_train_end(self) -> None:
        """Data-parallel: check that every process ended with the same weights (averaged gradients,
        the same steps); a difference is a bug that would silently train different policies."""
        if self.trainer.world_size < 2:
            return
        digest = torch.cat(
            [p.detach().reshape(-1) for p in self.learners.parameters()]
            + [torch.zeros(1, device=self.device)]
        )
        gathered = [torch.zeros_like(digest) for _ in range(self.trainer.world_size)]
        torch.distributed.all_gather(gathered, digest)
        if not all(torch.equal(gathered[0], other) for other in gathered[1:]):
            raise GrandModelError(
                f"data-parallel: the {self.trainer.world_size} processes ended with different "
                "weights; expected identical weights after every all-reduced step"
            )
        if self.global_rank == 0:
            log.info(
                "data-parallel: weights identical on all %d processes", self.trainer.world_size
            )

    def _record(self, row: dict[str, float]) -> None:
        """Send a row to the run's loggers with frames as the step, and keep it for the curves.

        (Straight to the loggers: Lightning would re-log a step metric's last value on later steps.)
        """
        self.history.append(row)
        if self._trainer is not None:
            metrics = {k: v for k, v in row.items() if k != "frames"}
            for logger in self.loggers:
                logger.log_metrics(metrics, step=int(self.source.frames))

    # ---- checkpoints
    def act_as(self, checkpoint: dict[str, Any]) -> None:
        """Load ``checkpoint``'s weights and act as it did: roles that were still waiting for
        their learning phase then act by their baselines (after training: the final report)."""
        self.load_state_dict(checkpoint["state_dict"])
        if self.phases is not None:
            self.phases.pin(checkpoint["grandmodel"].get("waiting", []))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Full checkpoints also carry replay buffers, env state and RNGs; weights-only ones
        (the best policy) carry the config and history."""
        extra: dict[str, Any] = {"config": self.config, "history": self.history, **self.model_info}
        if (
            self.phases is not None
        ):  # learners that acted by their baseline (checkpoints.acting_learners)
            extra["waiting"] = self.phases.waiting()
        if "optimizer_states" in checkpoint:
            extra["source"] = self.source.state_dict()
            extra["learners"] = {
                name: learner.extra_state() for name, learner in self.learners.items()
            }
        checkpoint["grandmodel"] = extra

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        extra = checkpoint["grandmodel"]
        if "source" not in extra:
            raise GrandModelError(
                "this checkpoint holds weights only (a best-policy checkpoint); resume from last.ckpt"
            )
        for name, learner in self.learners.items():
            learner.prepare_for_loading()
            learner.load_extra_state(extra["learners"][name])
        self.source.load_state_dict(extra["source"])
        self.history = list(extra.get("history", []))


def _identity(item: Any) -> Any:
    return item

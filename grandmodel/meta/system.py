"""``MetaSystem``: meta-training of one role's learner as a LightningModule, and ``run_meta``.

Each training step is one meta-update: for each task of the meta-batch, a fresh copy of the
initialisation adapts to that market (``meta.inner_updates`` learner updates, see
:mod:`grandmodel.meta.inner`), then the initialisation moves (Reptile towards the adapted weights,
first-order MAML against the query gradient; :mod:`grandmodel.meta.updates`). Tasks and seeds
follow from the run's seed and the iteration counter (a buffer), so ``ckpt_path=`` resumes the
same sequence from ``checkpoints/last.ckpt`` (written atomically after every ``log_every`` updates).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from grandmodel.agents import build_learner, group_specs
from grandmodel.checkpoints import LAST, AtomicCheckpointIO, remove_partial
from grandmodel.config import validate
from grandmodel.config.meta import MetaAlgorithm, MetaConfig, MetaTrainConfig
from grandmodel.env import MarketEnv
from grandmodel.meta.family import MarketFamily
from grandmodel.meta.inner import Rollouts, adapt, fresh_copy, query_gradient, weights
from grandmodel.meta.updates import fomaml_step, reptile_step
from grandmodel.tracking import Tracker, flatten, git_commit, lightning_loggers, run_name
from grandmodel.training.policies import build_policies


class MetaSystem(pl.LightningModule):
    """The initialisation (``learner``), the other roles' fixed policies and the market family."""

    def __init__(self, cfg: DictConfig, meta: MetaConfig, family: MarketFamily, seed: int) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.meta, self.family, self.seed = meta, family, seed
        run_cfg, data = family.task(0)
        groups = group_specs(MarketEnv(data, run_cfg, split="train"))  # the tasks' n_envs
        self.role_cfg = OmegaConf.to_container(cfg.agent[meta.role], resolve=True)
        self.group = groups[meta.role]
        self.learner = build_learner(self.role_cfg, self.group)
        with_role = OmegaConf.merge(run_cfg, {"agent": {"learn": [meta.role]}})
        _, fixed, _, _ = build_policies(with_role, groups, data.strategic.feature_names)
        self.fixed = nn.ModuleDict(fixed)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.int64))
        self.config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # the meta-update is computed in closed form; this SGD (lr 1, gradient = θ − θ_new) applies
        # it, so Lightning counts meta-updates as optimiser steps (checkpoints, loggers)
        return torch.optim.SGD(self.learner.parameters(), lr=1.0)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(range(self.meta.log_every), batch_size=None)

    def _task_seed(self, iteration: int, slot: int) -> int:
        return (self.seed * 1_000_003 + iteration * 101 + slot) % (2**31 - 1)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        it = int(self.iteration)
        if it >= self.meta.iterations:
            return
        theta = weights(self.learner)
        adapted, before, after = [], [], []
        for slot in range(self.meta.meta_batch):
            task_seed = self._task_seed(it, slot)
            torch.manual_seed(task_seed)
            index = int(np.random.default_rng(task_seed).integers(len(self.family)))
            run_cfg, data = self.family.task(index)
            env = MarketEnv(data, run_cfg, split="train", mode="train", seed=task_seed)
            rollouts = Rollouts(env, self.meta.frames_per_update)
            fast = fresh_copy(self.role_cfg, self.group, self.learner)
            rewards = adapt(
                fast, self.meta.role, dict(self.fixed), rollouts, self.meta.inner_updates
            )
            before.append(rewards[0])
            after.append(rewards[-1])
            if self.meta.algorithm == MetaAlgorithm.reptile:
                adapted.append(weights(fast))
            else:
                adapted.append(query_gradient(fast, self.meta.role, dict(self.fixed), rollouts))
        step = reptile_step if self.meta.algorithm == MetaAlgorithm.reptile else fomaml_step
        new = step(theta, adapted, self.meta.meta_lr)
        optimizer = self.optimizers()
        optimizer.zero_grad()
        for name, p in self.learner.named_parameters():
            p.grad = theta[name] - new[name]
        optimizer.step()
        self.iteration += 1
        shift = math.sqrt(sum(float((new[n] - theta[n]).pow(2).sum()) for n in theta))
        row = {
            "meta/reward_first_update": float(np.mean(before)),
            "meta/reward_last_update": float(np.mean(after)),
            "meta/step_norm": shift,
        }
        for logger in self.loggers:
            logger.log_metrics(row, step=int(self.iteration))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["grandmodel"] = {"config": self.config, "meta_role": self.meta.role}


def run_meta(cfg: DictConfig) -> dict[str, Any]:
    """Meta-train as ``cfg.meta`` says (resuming from ``ckpt_path``); returns the run folder,
    the tracked run id and the last logged metrics."""
    rc: MetaTrainConfig = validate(cfg)
    pl.seed_everything(rc.seed, workers=False, verbose=False)
    if rc.trainer.num_threads > 0:
        torch.set_num_threads(rc.trainer.num_threads)
    if rc.ckpt_path and Path(rc.ckpt_path).parent.name == "checkpoints":
        cfg.paths.output_dir = str(Path(rc.ckpt_path).resolve().parent.parent)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    family = MarketFamily(cfg, rc.meta.family, rc.seed)
    system = MetaSystem(cfg, rc.meta, family, rc.seed)
    tags = {"kind": "meta", "meta": rc.meta.algorithm.value, "role": rc.meta.role,
            "agent": rc.agent.name, "seed": rc.seed, "git_commit": git_commit(),
            "output_dir": str(output_dir.resolve())}  # fmt: skip
    tracker = Tracker.open(
        rc.logger, output_dir, name=rc.logger.run_name or run_name(output_dir, False),
        tags=tags, params=flatten(cfg),
    )  # fmt: skip
    OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)
    folder = output_dir / "checkpoints"
    if folder.is_dir():
        remove_partial(folder)
    last = ModelCheckpoint(
        dirpath=folder, filename=LAST.removesuffix(".ckpt"), monitor=None, save_top_k=1,
        enable_version_counter=False, every_n_epochs=1,
    )  # fmt: skip
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=math.ceil(rc.meta.iterations / rc.meta.log_every),
        logger=lightning_loggers(rc.logger, tracker, output_dir),
        callbacks=[last],
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=rc.trainer.enable_progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=str(output_dir),
        inference_mode=False,
    )
    try:
        trainer.fit(system, ckpt_path=rc.ckpt_path, weights_only=True)
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish("FINISHED")
    return {"output_dir": output_dir, "run_id": tracker.run_id, "iterations": int(system.iteration)}

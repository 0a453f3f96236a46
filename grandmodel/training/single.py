"""Train one learner on any TorchRL env with the same Lightning machinery (classic control, benches)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping
from torchrl.envs import EnvBase

from grandmodel.agents import build_learner, group_specs
from grandmodel.training.data_source import CollectorSource
from grandmodel.training.system import Evaluator, MARLSystem


def fit_agent(
    make_env: Callable[[], EnvBase],
    algo_cfg: Any,
    *,
    total_frames: int,
    frames_per_batch: int,
    eval_every_frames: int,
    evaluator: Evaluator | None = None,
    target: tuple[str, float] | None = None,
    seed: int = 0,
) -> MARLSystem:
    """Fit ``algo_cfg`` (a PPO/SAC/DQN config) on ``make_env()``; stop early when ``target``
    (``("val/mean_return", 475.0)``) is reached. Returns the system (``history`` holds the curve)."""
    pl.seed_everything(seed, workers=False, verbose=False)
    env = make_env()
    env.set_seed(seed)
    (group,) = group_specs(env).values()
    learner = build_learner(algo_cfg, group)
    policy = learner.exploration_policy()
    batches = max(1, eval_every_frames // frames_per_batch)

    def collecting(active: bool) -> None:
        learner.train(not active)

    source = CollectorSource(
        lambda: env,
        policy,
        frames_per_batch=frames_per_batch,
        total_frames=total_frames,
        batches_per_epoch=batches,
        reward_keys={group.name: group.reward},
        on_collect=collecting,
    )
    system = MARLSystem({group.name: learner}, {}, policy, source, evaluator)
    callbacks: list[pl.Callback] = []
    if evaluator is not None and target is not None:
        callbacks.append(
            EarlyStopping(target[0], mode="max", stopping_threshold=target[1], patience=10**9)
        )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=math.ceil(total_frames / (batches * frames_per_batch)),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1 if evaluator else 0,
        callbacks=callbacks,
        inference_mode=False,
    )
    try:
        trainer.fit(system)
    finally:
        source.shutdown()
    return system

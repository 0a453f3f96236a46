"""Build and run one training job from the composed config (what ``python -m grandmodel.train`` does)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from grandmodel.agents import group_specs
from grandmodel.config.env import ROLES
from grandmodel.data.market_data import MarketData
from grandmodel.data.normalise import save_norm
from grandmodel.data.pipeline import prepare_data
from grandmodel.env import MarketEnv
from grandmodel.training.callbacks import NonFiniteGuard
from grandmodel.training.curriculum import Curriculum
from grandmodel.training.data_source import CollectorSource
from grandmodel.training.policies import build_policies
from grandmodel.training.pruning import SiblingMedianPruning
from grandmodel.training.system import Evaluator, MARLSystem
from grandmodel.training.tracking import Tracking, git_commit, start_tracking

MakeEvaluator = Callable[[DictConfig, MarketData, str], Evaluator]


@dataclass
class TrainingRun:
    """What a finished (or stopped) run leaves behind."""

    system: MARLSystem
    trainer: pl.Trainer
    tracking: Tracking
    data: MarketData
    output_dir: Path
    best_checkpoint: str | None
    last_checkpoint: str | None
    best_score: float | None
    extras: dict[str, Any] = field(default_factory=dict)


def configure_torch(cfg: DictConfig) -> None:
    pl.seed_everything(int(cfg.seed), workers=False, verbose=False)
    if int(cfg.trainer.num_threads) > 0:
        torch.set_num_threads(int(cfg.trainer.num_threads))
    if cfg.trainer.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def build_system(cfg: DictConfig, data: MarketData, evaluator: Evaluator | None) -> MARLSystem:
    """Env, learners, joint policy, collector source and the LightningModule around them."""
    env = MarketEnv(data, cfg, split="train", mode="train", seed=int(cfg.seed))
    groups = group_specs(env)
    learners, fixed, policy, frozen = build_policies(cfg, groups, data.strategic.feature_names)
    trainer = cfg.trainer
    frames_per_batch = max(env.n, (int(trainer.frames_per_batch) // env.n) * env.n)
    batches_per_epoch = max(1, int(trainer.eval_every_frames) // frames_per_batch)

    def collecting(active: bool) -> None:  # act without dropout; learn with it
        for learner in learners.values():
            learner.train(not active)

    source = CollectorSource(
        lambda: env,
        policy,
        frames_per_batch=frames_per_batch,
        total_frames=int(trainer.total_frames),
        batches_per_epoch=batches_per_epoch,
        reward_keys={role: (role, "reward") for role in ROLES},
        policy_device=_device(cfg),
        on_collect=collecting,
        inject_nan_at_batch=cfg.callbacks.inject_nan_at_batch,
    )
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    system = MARLSystem(learners, fixed, policy, source, evaluator, config=config)  # type: ignore[arg-type]
    system.model_info = {"norm": {k: v.to_dict() for k, v in data.norm.items()}, "frozen": frozen}
    return system


def _device(cfg: DictConfig) -> torch.device:
    accelerator = str(cfg.trainer.accelerator)
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def run_training(
    cfg: DictConfig, make_evaluator: MakeEvaluator | None, parent_run_id: str | None = None
) -> TrainingRun:
    """Prepare data, build the system, fit it with Lightning (resuming from ``ckpt_path``)."""
    configure_torch(cfg)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    data = prepare_data(cfg)
    evaluator = make_evaluator(cfg, data, str(cfg.trainer.eval_split)) if make_evaluator else None
    system = build_system(cfg, data, evaluator)
    tags = {
        "git_commit": git_commit(),
        "data_hash": data.meta.get("key", "unknown"),
        "data": str(cfg.data.name),
        "agent": str(cfg.agent.name),
        "seed": int(cfg.seed),
        "task": str(cfg.task_name),
        "kind": "training",
        "output_dir": str(output_dir.resolve()),
        **{f"tag.{t}": "1" for t in cfg.tags},
    }
    tracking = start_tracking(cfg, output_dir, tags, parent_run_id)
    if tracking.run_id:
        (output_dir / "mlflow_run_id").write_text(tracking.run_id)
    OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)
    save_norm(data.norm, output_dir / "norm_stats.json")
    mode = "min" if str(cfg.optimized_metric).endswith(("drawdown", "loss")) else "max"
    folder = output_dir / "checkpoints"
    # full state every N evaluations (replay buffers, env, RNGs: what `ckpt_path=` resumes from)
    latest = ModelCheckpoint(
        dirpath=folder,
        filename="epoch{epoch:03d}",
        auto_insert_metric_name=False,
        monitor=None,
        save_top_k=1,
        save_last="link",
        every_n_epochs=int(cfg.callbacks.checkpoint.every_n_evals),
    )
    callbacks: list[pl.Callback] = [latest]
    best = None
    if evaluator:  # the best policy by the optimised metric, weights only (what export/frozen use)
        best = ModelCheckpoint(
            dirpath=folder,
            filename="best-epoch{epoch:03d}",
            auto_insert_metric_name=False,
            monitor=str(cfg.optimized_metric),
            mode=mode,
            save_top_k=int(cfg.callbacks.checkpoint.save_top_k),
            save_weights_only=True,
        )
        callbacks.append(best)
    pruning = cfg.callbacks.pruning
    if parent_run_id and tracking.client is not None and evaluator and pruning.enabled:
        callbacks.append(
            SiblingMedianPruning(
                tracking.client, tracking.run_id, parent_run_id, str(cfg.optimized_metric), mode, output_dir,
                int(pruning.min_siblings), int(pruning.warmup_evals),
            )
        )  # fmt: skip
    if cfg.get("curriculum") is not None:
        callbacks.append(Curriculum(cfg.curriculum, system.source, evaluator))
    if cfg.callbacks.nan_guard:
        callbacks.append(NonFiniteGuard())
    stopping = cfg.callbacks.early_stopping
    if evaluator and stopping.enabled:
        callbacks.append(
            EarlyStopping(
                str(cfg.optimized_metric),
                min_delta=float(stopping.min_improvement),
                patience=int(stopping.patience),
                mode=mode,
            )
        )
    stop_at = int(cfg.trainer.stop_after_frames or cfg.trainer.total_frames)
    epochs = math.ceil(
        min(stop_at, int(cfg.trainer.total_frames))
        / (system.source.batches_per_epoch * system.source.frames_per_batch)
    )
    trainer = pl.Trainer(
        accelerator=str(cfg.trainer.accelerator),
        devices=int(cfg.trainer.devices),
        precision=str(cfg.trainer.precision),
        max_epochs=epochs,
        logger=tracking.logger,
        callbacks=callbacks,
        enable_progress_bar=bool(cfg.trainer.enable_progress_bar),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1 if evaluator else 0,
        log_every_n_steps=int(cfg.trainer.log_every_n_batches),
        default_root_dir=str(output_dir),
        inference_mode=False,
        use_distributed_sampler=False,
    )
    ckpt_path = str(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    try:
        trainer.fit(system, ckpt_path=ckpt_path, weights_only=True)
    finally:
        system.source.shutdown()
    return TrainingRun(
        system=system,
        trainer=trainer,
        tracking=tracking,
        data=data,
        output_dir=output_dir,
        best_checkpoint=(best.best_model_path or None) if best else None,
        last_checkpoint=latest.last_model_path or None,
        best_score=float(best.best_model_score)
        if best and best.best_model_score is not None
        else None,
    )

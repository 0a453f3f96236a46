"""Build and run one training job from the composed config (what ``python -m grandmodel.train`` does).

A run lives in one folder (``paths.output_dir``) and one tracked run; resuming (``ckpt_path=`` or
``resume=``) continues both: Lightning restores the learners, optimisers, loops and every callback's
state (best checkpoint and score, early stopping, curriculum level) from ``checkpoints/last.ckpt``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from grandmodel.agents import group_specs
from grandmodel.checkpoints import (
    LAST,
    AtomicCheckpointIO,
    check_architecture,
    load_checkpoint,
    remove_partial,
)
from grandmodel.config import validate
from grandmodel.config.env import ROLES
from grandmodel.config.root import RootConfig
from grandmodel.data.fit import check_training_fits
from grandmodel.data.market_data import MarketData
from grandmodel.data.normalise import save_norm
from grandmodel.data.pipeline import prepare_data
from grandmodel.env import MarketEnv
from grandmodel.tracking import Tracker, flatten, git_commit, lightning_loggers, run_name
from grandmodel.training.callbacks import (
    SELECTION_KEY,
    FaultInjection,
    NonFiniteGuard,
    SelectionScore,
    StopOnSignal,
)
from grandmodel.training.curriculum import Curriculum
from grandmodel.training.data_source import CollectorSource
from grandmodel.training.policies import build_policies
from grandmodel.training.pruning import SiblingMedianPruning
from grandmodel.training.system import Evaluator, MARLSystem

MakeEvaluator = Callable[[DictConfig, MarketData, str], Evaluator]
log = logging.getLogger(__name__)


@dataclass
class TrainingRun:
    """What a finished (or stopped) run leaves behind."""

    system: MARLSystem
    trainer: pl.Trainer
    tracker: Tracker
    data: MarketData
    output_dir: Path
    best_checkpoint: str | None
    best_score: float | None


def configure_torch(rc: RootConfig) -> None:
    pl.seed_everything(rc.seed, workers=False, verbose=False)
    if rc.trainer.num_threads > 0:
        torch.set_num_threads(rc.trainer.num_threads)
    if rc.trainer.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def build_system(
    cfg: DictConfig, rc: RootConfig, data: MarketData, evaluator: Evaluator | None
) -> MARLSystem:
    """Env, learners, joint policy, collector source and the LightningModule around them."""
    curriculum = rc.curriculum
    level = curriculum.levels[curriculum.start_level] if curriculum else None
    env = MarketEnv(data, cfg, split="train", mode="train", seed=rc.seed, level=level)
    groups = group_specs(env)
    learners, fixed, policy, frozen = build_policies(cfg, groups, data.strategic.feature_names)
    workers = rc.trainer.collector_workers
    per_batch = env.n * workers  # every worker steps all its envs the same number of times
    frames_per_batch = max(per_batch, (rc.trainer.frames_per_batch // per_batch) * per_batch)
    batches_per_epoch = max(1, rc.trainer.eval_every_frames // frames_per_batch)

    def collecting(active: bool) -> None:  # act without dropout; learn with it
        for learner in learners.values():
            learner.train(not active)

    source = CollectorSource(
        lambda: env,
        policy,
        frames_per_batch=frames_per_batch,
        total_frames=rc.trainer.total_frames,
        batches_per_epoch=batches_per_epoch,
        reward_keys={role: (role, "reward") for role in ROLES},
        policy_device=_device(rc),
        on_collect=collecting,
        level=level,
        kind=rc.trainer.collector,
        make_shard=partial(market_shard, data, cfg, level, rc.seed),
        workers=workers,
    )
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    system = MARLSystem(learners, fixed, policy, source, evaluator, config=config)  # type: ignore[arg-type]
    system.model_info = {"norm": {k: v.to_dict() for k, v in data.norm.items()}, "frozen": frozen}
    return system


def market_shard(
    data: MarketData, cfg: DictConfig, level: Any, seed: int, worker: int
) -> MarketEnv:
    """Worker ``worker``'s env of a multi-process collector: its own shard (seed) of the market."""
    return MarketEnv(
        data, cfg, split="train", mode="train", seed=seed + 1_000_003 * (worker + 1), level=level
    )


def _device(rc: RootConfig) -> torch.device:
    accelerator = rc.trainer.accelerator
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def open_tracking(
    cfg: DictConfig, rc: RootConfig, data: MarketData, output_dir: Path, parent: str | None
) -> Tracker:
    """The run's tracker (the same MLflow run again when resuming in the same folder)."""
    tags = {
        "git_commit": git_commit(),
        "data_hash": data.meta.get("key", "unknown"),
        "data": rc.data.name,
        "agent": rc.agent.name,
        "seed": rc.seed,
        "task": rc.task_name,
        "kind": "training",
        "output_dir": str(output_dir.resolve()),
        **{f"tag.{t}": "1" for t in rc.tags},
    }
    name = rc.logger.run_name or run_name(output_dir, parent is not None)
    tracker = Tracker.open(
        rc.logger, output_dir, name=name, tags=tags, params=flatten(cfg), parent_run_id=parent
    )
    tracker.log_dataset(
        {
            "name": rc.data.name,
            "digest": str(data.meta.get("key", "unknown")),
            "source": str(data.meta.get("source", rc.data.name)),
            "profile": _span(data),
        }
    )
    return tracker


def _span(data: MarketData) -> str:
    """``first to last bar (n bars)`` of the prepared data, in its timezone."""
    import pandas as pd

    stamps = data.base.open_ns[[0, -1]].tolist()
    first, last = (pd.Timestamp(s, tz="UTC").tz_convert(data.meta["timezone"]) for s in stamps)
    return f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} ({len(data.base.open_ns):,} bars)"


def run_training(
    cfg: DictConfig, make_evaluator: MakeEvaluator | None, parent_run_id: str | None = None
) -> TrainingRun:
    """Prepare data, build the system, fit it with Lightning (resuming from ``ckpt_path``)."""
    rc: RootConfig = validate(cfg)
    configure_torch(rc)
    output_dir = Path(rc.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    data = prepare_data(cfg)
    check_training_fits(rc, data)
    evaluator = make_evaluator(cfg, data, rc.trainer.eval_split) if make_evaluator else None
    system = build_system(cfg, rc, data, evaluator)
    if rc.ckpt_path:  # before any work: a checkpoint of other networks is refused in one line
        check_architecture(
            rc.ckpt_path, load_checkpoint(rc.ckpt_path), system.state_dict(), system.config
        )
    tracker = open_tracking(cfg, rc, data, output_dir, parent_run_id)
    OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)
    save_norm(data.norm, output_dir / "norm_stats.json")
    mode = "min" if rc.optimized_metric.endswith(("drawdown", "loss")) else "max"
    folder = output_dir / "checkpoints"
    if folder.is_dir():  # what a killed writer left half-written is never read
        remove_partial(folder)
    stop = StopOnSignal()
    callbacks: list[pl.Callback] = [stop]
    best = None
    selection = rc.trainer.selection
    if evaluator:  # the best policy by trainer.selection, weights only (what export/frozen use)
        callbacks.append(SelectionScore(selection.metric, selection.min_trades))
        best = ModelCheckpoint(
            dirpath=folder,
            filename="best-epoch{epoch:03d}",
            auto_insert_metric_name=False,
            monitor=SELECTION_KEY,
            mode=selection.mode,
            save_top_k=rc.callbacks.checkpoint.save_top_k,
            save_weights_only=True,
        )
        callbacks.append(best)
    # after `best`, so last.ckpt holds the best's updated state: full state every N evaluations
    # (replay buffers, env, RNGs, callbacks: what `ckpt_path=` resumes from), written atomically
    callbacks.append(
        ModelCheckpoint(
            dirpath=folder,
            filename=LAST.removesuffix(".ckpt"),
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
            every_n_epochs=rc.callbacks.checkpoint.every_n_evals,
        )
    )
    pruning = rc.callbacks.pruning
    if parent_run_id and tracker.uri and evaluator and pruning.enabled:
        callbacks.append(
            SiblingMedianPruning(
                tracker, parent_run_id, rc.optimized_metric, mode, output_dir,
                pruning.min_siblings, pruning.warmup_evals,
            )
        )  # fmt: skip
    if rc.curriculum is not None and evaluator is not None:
        callbacks.append(
            Curriculum(rc.curriculum, system.source, lambda: evaluator.last_episode_rewards)
        )
    if rc.callbacks.nan_guard:
        callbacks.append(NonFiniteGuard())
    faults = rc.faults
    if faults.nan_at_batch is not None or faults.kill_at_batch is not None:
        callbacks.append(FaultInjection(faults.nan_at_batch, faults.kill_at_batch))
    stopping = rc.callbacks.early_stopping
    if evaluator and stopping.enabled:
        callbacks.append(
            EarlyStopping(
                SELECTION_KEY,
                min_delta=stopping.min_improvement,
                patience=stopping.patience,
                mode=selection.mode,
                check_finite=False,  # an ineligible evaluation (nan) is no progress, not a failure
            )
        )
    trainer_cfg = rc.trainer
    stop_at = min(
        trainer_cfg.stop_after_frames or trainer_cfg.total_frames, trainer_cfg.total_frames
    )
    epochs = math.ceil(stop_at / (system.source.batches_per_epoch * system.source.frames_per_batch))
    trainer = pl.Trainer(
        accelerator=trainer_cfg.accelerator,
        devices=trainer_cfg.devices,
        precision=trainer_cfg.precision,  # type: ignore[arg-type]
        max_epochs=epochs,
        logger=lightning_loggers(rc.logger, tracker, output_dir),
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO(kill_during_save=faults.kill_during_save)],
        enable_progress_bar=trainer_cfg.enable_progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1 if evaluator else 0,
        log_every_n_steps=trainer_cfg.log_every_n_batches,
        default_root_dir=str(output_dir),
        inference_mode=False,
        use_distributed_sampler=False,
    )
    log.info(
        "training agent=%s on data=%s: %s frames in %d evaluations, %s; outputs in %s",
        rc.agent.name, rc.data.name, f"{trainer_cfg.total_frames:,}", epochs,
        f"tracked in {tracker.uri} (run {tracker.run_id})" if tracker.uri else "no tracking store",
        output_dir,
    )  # fmt: skip
    stop.install()
    try:
        trainer.fit(system, ckpt_path=rc.ckpt_path, weights_only=True)
    finally:
        stop.uninstall()
        system.source.shutdown()
    # the best checkpoint's optimised metric, when that is what selected it (else the report's)
    plain = selection.metric == rc.optimized_metric and selection.min_trades == 0
    score = best.best_model_score if best and plain else None
    return TrainingRun(
        system=system,
        trainer=trainer,
        tracker=tracker,
        data=data,
        output_dir=output_dir,
        best_checkpoint=(best.best_model_path or None) if best else None,
        best_score=float(score) if score is not None else None,
    )

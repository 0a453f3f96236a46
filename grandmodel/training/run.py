"""Build and run one training job from the composed config (what ``python -m grandmodel.train`` does).

A run lives in one folder (``paths.output_dir``) and one tracked run; resuming (``ckpt_path=`` or
``resume=``) continues both: Lightning restores the learners, optimisers, loops and every callback's
state (best checkpoint and score, early stopping, curriculum level) from ``checkpoints/last.ckpt``.

``trainer.strategy=ddp`` (``trainer.devices`` × ``trainer.num_nodes`` processes) is Lightning's
DDP strategy: its launcher runs this same command again for ranks 1.. (with Hydra, in the same run
folder), or a cluster launcher (torchrun, SLURM) starts every rank. Each rank collects from its own
env shard (seed) into its own replay buffers; gradients are averaged; rank 0 alone prepares the run
folder, evaluates, writes checkpoints and tracks the one run; the other ranks leave after ``fit``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.strategies import DDPStrategy, Strategy

from grandmodel.agents import group_specs
from grandmodel.checkpoints import (
    LAST,
    AtomicCheckpointIO,
    check_architecture,
    load_checkpoint,
    remove_partial,
)
from grandmodel.config import validate
from grandmodel.config.base import ConfigError
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
    Interrupted,
    NonFiniteGuard,
    SelectionScore,
    StopOnSignal,
)
from grandmodel.training.curriculum import Curriculum
from grandmodel.training.data_source import CollectorSource
from grandmodel.training.phases import Phases
from grandmodel.training.policies import build_policies
from grandmodel.training.pruning import SiblingMedianPruning
from grandmodel.training.system import Evaluator, MARLSystem

MakeEvaluator = Callable[[DictConfig, MarketData, str], Evaluator]
log = logging.getLogger(__name__)
RANK_SEED_STRIDE = 7_919_993  # rank r's env and action seeds: seed + r × this (rank 0: seed itself)


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
    cfg: DictConfig,
    rc: RootConfig,
    data: MarketData,
    evaluator: Evaluator | None,
    rank: int = 0,
    world_size: int = 1,
) -> MARLSystem:
    """Env, learners, joint policy, collector source and the LightningModule around them.

    Data-parallel rank ``rank`` of ``world_size``: the same initial weights everywhere (and DDP
    broadcasts rank 0's), its own env shard, and ``1 / world_size`` of every global batch.
    """
    curriculum = rc.curriculum
    level = curriculum.levels[curriculum.start_level] if curriculum else None
    rank_seed = rc.seed + RANK_SEED_STRIDE * rank
    env = MarketEnv(data, cfg, split="train", mode="train", seed=rank_seed, level=level)
    groups = group_specs(env)
    phases = Phases.from_config(rc.agent, rc.trainer.total_frames)
    learners, fixed, policy, frozen = build_policies(
        cfg, groups, data.strategic.feature_names, phases
    )
    workers = rc.trainer.collector_workers
    per_batch = env.n * workers  # every worker steps all its envs the same number of times
    share = rc.trainer.frames_per_batch // world_size  # this process's part of a global batch
    frames_per_batch = max(per_batch, (share // per_batch) * per_batch)
    batches_per_epoch = max(1, rc.trainer.eval_every_frames // (frames_per_batch * world_size))

    def collecting(active: bool) -> None:  # act without dropout; learn with it
        phases.collecting = active
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
        rank=rank,
        world_size=world_size,
        rank_seed=rank_seed,
    )
    phases.clock = lambda: source.frames
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    system = MARLSystem(
        learners,
        fixed,  # type: ignore[arg-type]
        policy,
        source,
        evaluator,
        config=config,
        phases=phases if any(phases.phased(r) for r in learners) else None,
    )
    system.model_info = {"norm": {k: v.to_dict() for k, v in data.norm.items()}, "frozen": frozen}
    return system


def market_shard(
    data: MarketData, cfg: DictConfig, level: Any, seed: int, worker: int
) -> MarketEnv:
    """Worker ``worker``'s env of a multi-process collector: its own shard (seed) of the market."""
    return MarketEnv(
        data, cfg, split="train", mode="train", seed=seed + 1_000_003 * (worker + 1), level=level
    )


def strategy(rc: RootConfig) -> str | Strategy:
    """Lightning's strategy: DDP keeps ``find_unused_parameters`` on, since each learner's backward
    reaches only its own parameters (Lightning picks gloo on CPU and NCCL on GPUs)."""
    if rc.trainer.strategy != "ddp":
        return "auto"
    # SAC's twin critics are stacked parameters: DDP copies their gradients through a bucket of
    # other strides (a little slower, the same numbers); said once per process, not worth reading
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return DDPStrategy(find_unused_parameters=True)


def check_launch(rc: RootConfig, parent_run_id: str | None) -> None:
    """DDP's launcher runs this process's command line again for every other rank: that command
    must be one ``python -m grandmodel.train`` run, not a sweep (each trial would start the whole
    sweep again) nor another tool training several times (walk-forward folds)."""
    if rc.trainer.strategy != "ddp":
        return
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    import __main__

    main = getattr(getattr(__main__, "__spec__", None), "name", None)
    sweep = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    if main != "grandmodel.train" or sweep or parent_run_id is not None:
        where = "a --multirun sweep" if sweep or parent_run_id else f"{main or 'this program'}"
        raise ConfigError(
            f"trainer.strategy: ddp runs the command again for every process, not in {where}; "
            "expected one run of python -m grandmodel.train (or torchrun -m grandmodel.train)"
        )


def world(rc: RootConfig) -> tuple[int, int]:
    """This process's global rank and the number of processes, as Lightning's DDP strategy sees
    them (its own launcher's children, torchrun, SLURM...), before any process group exists.
    On GPUs the process's own GPU becomes the current one, so ``cuda`` envs and collectors built
    before ``fit`` land on it."""
    if rc.trainer.strategy != "ddp":
        return 0, 1
    from pytorch_lightning.trainer.connectors.accelerator_connector import _AcceleratorConnector

    connector = _AcceleratorConnector(
        devices=rc.trainer.devices,
        num_nodes=rc.trainer.num_nodes,
        accelerator=rc.trainer.accelerator,
        strategy=strategy(rc),
    )
    ddp = connector.strategy
    if ddp.root_device.type == "cuda":
        torch.cuda.set_device(ddp.root_device)
    return ddp.global_rank, ddp.world_size


def follow_parent() -> None:
    """A process started for a local rank > 0 (by Lightning's launcher: rank 0 itself, or torchrun)
    ends when its parent is gone (SIGKILL, out of memory), instead of waiting in a collective."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(2.0)
        os._exit(1)

    threading.Thread(target=watch, name="follow-parent", daemon=True).start()


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
    """Prepare data, build the system, fit it with Lightning (resuming from ``ckpt_path``).

    A data-parallel rank > 0 neither tracks nor writes into the run folder, and leaves the process
    (exit status 0) once ``fit`` returns: rank 0 alone writes the final report."""
    rc: RootConfig = validate(cfg)
    check_launch(rc, parent_run_id)
    configure_torch(rc)
    rank, world_size = world(rc)
    if int(os.environ.get("LOCAL_RANK", "0")) > 0:
        follow_parent()
    if world_size > 1 and rc.trainer.num_threads > 0:  # else Lightning's launcher sets its own
        os.environ["OMP_NUM_THREADS"] = str(rc.trainer.num_threads)
    output_dir = Path(rc.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    data = prepare_data(cfg)
    check_training_fits(rc, data)
    evaluator = make_evaluator(cfg, data, rc.trainer.eval_split) if make_evaluator else None
    system = build_system(cfg, rc, data, evaluator, rank, world_size)
    if rc.ckpt_path:  # before any work: a checkpoint of other networks is refused in one line
        check_architecture(
            rc.ckpt_path, load_checkpoint(rc.ckpt_path), system.state_dict(), system.config
        )
    mode = "min" if rc.optimized_metric.endswith(("drawdown", "loss")) else "max"
    folder = output_dir / "checkpoints"
    if rank == 0:
        tracker = open_tracking(cfg, rc, data, output_dir, parent_run_id)
        OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)
        save_norm(data.norm, output_dir / "norm_stats.json")
        if folder.is_dir():  # what a killed writer left half-written is never read
            remove_partial(folder)
    else:  # no store, no record written: its loggers are rank-zero only
        tracker = Tracker(output_dir, None, quiet=True)
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
            Curriculum(rc.curriculum, system.source, lambda: system.last_episode_rewards)
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
    source = system.source
    epoch_frames = source.batches_per_epoch * source.frames_per_batch * source.world_size
    epochs = math.ceil(stop_at / epoch_frames)
    trainer = pl.Trainer(
        accelerator=trainer_cfg.accelerator,
        devices=trainer_cfg.devices,
        num_nodes=trainer_cfg.num_nodes,
        strategy=strategy(rc),
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
    if rank == 0:
        log.info(
            "training agent=%s on data=%s: %s frames in %d evaluations%s, %s; outputs in %s",
            rc.agent.name, rc.data.name, f"{trainer_cfg.total_frames:,}", epochs,
            f" on {world_size} data-parallel processes" if world_size > 1 else "",
            f"tracked in {tracker.uri} (run {tracker.run_id})" if tracker.uri else "no tracking store",
            output_dir,
        )  # fmt: skip
    stop.install()
    try:
        trainer.fit(system, ckpt_path=rc.ckpt_path, weights_only=True)
    except Interrupted as exc:
        if trainer.global_rank > 0:  # rank 0 says so, marks the run KILLED and prints how to resume
            raise SystemExit(exc.exit_code) from None
        raise
    finally:
        stop.uninstall()
        system.source.shutdown()
    if trainer.global_rank > 0:  # rank 0 reports, tracks and ends the run
        sys.exit(0)
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

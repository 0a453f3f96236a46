"""Training callbacks: the checkpoint selection score, the non-finite guard, clean stops on
SIGTERM/SIGINT and fault injection (checkpoints, early stopping and the progress bar are
Lightning's own, configured in ``run.py``)."""

from __future__ import annotations

import logging
import math
import os
import signal
from typing import Any

import pytorch_lightning as pl
import torch

from grandmodel.agents.base import NonFiniteError
from grandmodel.errors import GrandModelError

SELECTION_KEY = "val/selection"  # what ModelCheckpoint and EarlyStopping compare
log = logging.getLogger(__name__)


class SelectionScore(pl.Callback):
    """Logs :data:`SELECTION_KEY` at every validation (``trainer.selection``): the validation
    walk's ``metric`` when the walk closed at least ``min_trades`` round trips (``val/trades``),
    else nan. ModelCheckpoint ranks nan below every score and EarlyStopping (``check_finite=False``)
    counts it as no improvement. Lightning's only: the walk's metrics are what the run tracks."""

    def __init__(self, metric: str, min_trades: int) -> None:
        self.metric, self.min_trades = metric, min_trades

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        if self.metric not in metrics:  # nothing was evaluated
            return
        eligible = self.min_trades == 0 or float(metrics["val/trades"]) >= self.min_trades
        score = float(metrics[self.metric]) if eligible else math.nan
        parallel = trainer.world_size > 1  # the same broadcast metrics on every process
        pl_module.log(SELECTION_KEY, score, batch_size=1, logger=False, sync_dist=parallel)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        for checkpoint in trainer.checkpoint_callbacks:
            score = getattr(checkpoint, "best_model_score", None)
            if getattr(checkpoint, "monitor", None) == SELECTION_KEY and not _finite(score):
                log.warning(
                    "no validation walk closed trainer.selection.min_trades=%d round trips; the "
                    "kept best checkpoint is the first evaluation's, not a selected one",
                    self.min_trades,
                )


def _finite(score: torch.Tensor | None) -> bool:
    return score is None or bool(torch.isfinite(score))


class NonFiniteGuard(pl.Callback):
    """Stop as soon as a learner's parameters stop being finite (losses are checked before stepping).

    No checkpoint is written after that point, so the last good one stays the newest.
    """

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        for name, learner in pl_module.learners.items():
            for key, value in learner.named_parameters():
                if not torch.isfinite(value).all():
                    raise NonFiniteError(
                        f"{name}: parameter {key} is no longer finite after batch {batch_idx}"
                    )


class FaultInjection(pl.Callback):
    """Drills (``faults.*``, ``conf/debug/``): a NaN into the rewards of collected batch
    ``nan_at_batch``, or SIGKILL after collected batch ``kill_at_batch`` has been learned from.

    Batches are counted (from 1) over the whole run, resumed sessions included, as Lightning's
    fit loop counts them (the collector runs one batch ahead of learning).
    """

    def __init__(self, nan_at_batch: int | None, kill_at_batch: int | None) -> None:
        self.nan_at_batch, self.kill_at_batch = nan_at_batch, kill_at_batch

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.fit_loop.total_batch_idx + 1 == self.nan_at_batch:
            for key in pl_module.source.reward_keys.values():
                key = key if isinstance(key, tuple) else (key,)
                batch.get(("next", *key))[..., 0, 0] = float("nan")

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if trainer.fit_loop.total_batch_idx + 1 == self.kill_at_batch:
            os.kill(os.getpid(), signal.SIGKILL)


class Interrupted(GrandModelError):
    """Training stopped by SIGTERM or SIGINT (exit status 128 + the signal's number)."""

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message or f"training interrupted by {signal.Signals(signum).name}")
        self.signum, self.exit_code = signum, 128 + signum


class StopOnSignal(pl.Callback):
    """SIGTERM and SIGINT stop training at the next batch or evaluation boundary (seconds, not an
    epoch). No checkpoint is written then: ``last.ckpt`` (written atomically at every evaluation)
    stays the exact resume point, so a resumed run still ends as an uninterrupted one would."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> StopOnSignal:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._note)
        return self

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _note(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def _check(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        self._check()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        self._check()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check()

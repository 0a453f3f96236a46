"""Training callbacks: the non-finite guard (checkpoints, early stopping and the progress bar are
Lightning's own, configured in ``run.py``)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from grandmodel.agents.base import NonFiniteError


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

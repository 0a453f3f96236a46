"""Median pruning across a sweep's trials (Optuna's MedianPruner), driven from the trial itself.

hydra-optuna-sweeper never hands a job its Optuna trial, so each trial reads its finished siblings'
evaluation histories from the tracking store and stops when it falls below their median at the
same point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl

from grandmodel.tracking import Tracker, sibling_values


class SiblingMedianPruning(pl.Callback):
    """Stop a trial whose ``metric`` is worse than the median of its finished siblings at the same
    number of frames (after ``warmup_evals`` evaluations, once ``min_siblings`` have finished)."""

    def __init__(
        self,
        tracker: Tracker,
        parent_run_id: str,
        metric: str,
        mode: str,
        output_dir: Path,
        min_siblings: int = 3,
        warmup_evals: int = 1,
    ) -> None:
        self.tracker, self.parent = tracker, parent_run_id
        self.metric, self.mode, self.output_dir = metric, mode, output_dir
        self.min_siblings, self.warmup = min_siblings, warmup_evals
        self.evals = 0
        self.pruned = False

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.evals += 1
        current = trainer.callback_metrics.get(self.metric)
        if current is None or self.evals < self.warmup or not self.tracker.run_id:
            return
        frames = int(pl_module.source.frames)
        siblings = sibling_values(
            str(self.tracker.uri), self.tracker.run_id, self.parent, self.metric, frames
        )
        if len(siblings) < self.min_siblings:
            return
        median = float(np.median(siblings))
        worse = float(current) < median if self.mode == "max" else float(current) > median
        if worse:
            self.pruned = True
            trainer.should_stop = True
            self.tracker.set_tags({"pruned": "true", "pruned_at_frames": str(frames)})
            (self.output_dir / "pruned").write_text(
                f"{self.metric}={float(current)} < median {median} of {len(siblings)} siblings\n"
            )

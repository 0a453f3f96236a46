"""Median pruning across a sweep's trials (the seed's MedianPruner), driven from the trial itself.

hydra-optuna-sweeper never hands a job its Optuna trial, so each trial reads its finished siblings'
evaluation histories from MLflow and stops when it falls below their median at the same point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl


class SiblingMedianPruning(pl.Callback):
    """Stop a trial whose ``metric`` is worse than the median of its finished siblings at the same
    number of frames (after ``warmup_evals`` evaluations, once ``min_siblings`` have finished)."""

    def __init__(
        self,
        client,
        run_id: str,
        parent_run_id: str,
        metric: str,
        mode: str,
        output_dir: Path,
        min_siblings: int = 3,
        warmup_evals: int = 1,
    ) -> None:
        self.client, self.run_id, self.parent = client, run_id, parent_run_id
        self.metric, self.mode, self.output_dir = metric, mode, output_dir
        self.min_siblings, self.warmup = min_siblings, warmup_evals
        self.evals = 0
        self.pruned = False

    def sibling_values(self, frames: int) -> list[float]:
        """Each finished sibling's metric at the last evaluation at or before ``frames``."""
        experiment = self.client.get_run(self.run_id).info.experiment_id
        runs = self.client.search_runs(
            [experiment],
            filter_string=f"tags.mlflow.parentRunId = '{self.parent}' and attributes.status = 'FINISHED'",
        )
        values = []
        for run in runs:
            history = [
                m
                for m in self.client.get_metric_history(run.info.run_id, self.metric)
                if m.step <= frames
            ]
            if history:
                values.append(max(history, key=lambda m: m.step).value)
        return values

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.evals += 1
        current = trainer.callback_metrics.get(self.metric)
        if current is None or self.evals < self.warmup:
            return
        siblings = self.sibling_values(int(pl_module.source.frames))
        if len(siblings) < self.min_siblings:
            return
        median = float(np.median(siblings))
        worse = float(current) < median if self.mode == "max" else float(current) > median
        if worse:
            self.pruned = True
            trainer.should_stop = True
            self.client.set_tag(self.run_id, "pruned", "true")
            self.client.set_tag(self.run_id, "pruned_at_frames", str(int(pl_module.source.frames)))
            (self.output_dir / "pruned").write_text(
                f"{self.metric}={float(current)} < median {median} of {len(siblings)} siblings\n"
            )

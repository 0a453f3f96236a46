"""Lightning loggers of a training run: the tracker (MLflow + local record), and Lightning's own
TensorBoard and CSV loggers when ``logger.tensorboard`` / ``logger.csv`` ask for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from grandmodel.tracking.tracker import Tracker


class TrackerLogger(Logger):
    """Lightning's view of a :class:`Tracker` (metrics with frames as the step)."""

    def __init__(self, tracker: Tracker) -> None:
        super().__init__()
        self.tracker = tracker

    @property
    def name(self) -> str:
        return "grandmodel"

    @property
    def version(self) -> str:
        return self.tracker.run_id or "local"

    @property
    def experiment(self) -> Tracker:
        return self.tracker

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.tracker.log_metrics(metrics, step or 0)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """The flattened config is logged when the tracker opens the run."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.tracker.flush()


def lightning_loggers(logger: Any, tracker: Tracker, run_dir: str | Path) -> list[Logger]:
    """The tracker's logger, plus TensorBoard (``<run>/tensorboard``) and CSV (``<run>/metrics``)."""
    out: list[Logger] = [TrackerLogger(tracker)]
    if logger.tensorboard:
        out.append(
            TensorBoardLogger(str(run_dir), name="tensorboard", version="", default_hp_metric=False)
        )
    if logger.csv:
        out.append(CSVLogger(str(run_dir), name="metrics", version=""))
    return out

"""Curriculum learning (four levels, ``conf/curriculum/``): the collector's markets follow the
current level, and the level advances once recent evaluation episodes are good and stable enough."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import pytorch_lightning as pl

from grandmodel.training.data_source import CollectorSource


class Curriculum(pl.Callback):
    """Level ``start_level`` first; advance when the mean of the last ``window`` evaluation episode
    rewards exceeds ``advancement_threshold`` and their std is below ``stability_threshold``.

    ``levels`` are the config's curriculum levels; ``episode_rewards`` returns the last evaluation's
    per-episode rewards. The level reaches the collector's env through ``source.change_level``.
    """

    def __init__(self, cfg: Any, source: CollectorSource, episode_rewards: Any) -> None:
        self.levels = list(cfg.levels)
        self.level = int(cfg.start_level)
        self.auto = bool(cfg.auto_advance)
        self.threshold = float(cfg.advancement_threshold)
        self.stability = float(cfg.stability_threshold)
        self.recent: deque[float] = deque(maxlen=int(cfg.window))
        self.source, self.episode_rewards = source, episode_rewards
        self.changes: list[tuple[float, int]] = []  # (frames, level) for the record

    def ready(self) -> bool:
        """A full window of recent rewards, high mean, low spread."""
        if len(self.recent) < (self.recent.maxlen or 0):
            return False
        values = np.asarray(self.recent)
        return float(values.mean()) > self.threshold and float(values.std()) < self.stability

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.source.change_level(self.levels[self.level])  # a resumed run's restored level
        self._log(trainer)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.recent.extend(float(r) for r in self.episode_rewards())
        if self.auto and self.level < len(self.levels) - 1 and self.ready():
            self.level += 1
            self.recent.clear()
            self.source.change_level(self.levels[self.level])
        self.changes.append((float(self.source.frames), self.level))
        pl_module.log("level", float(self.level), prog_bar=True, logger=False)
        self._log(trainer)

    def _log(self, trainer: pl.Trainer) -> None:
        for logger in trainer.loggers:
            logger.log_metrics(
                {"curriculum/level": float(self.level)}, step=int(self.source.frames)
            )

    def state_dict(self) -> dict[str, Any]:
        return {"level": self.level, "recent": list(self.recent), "changes": list(self.changes)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.level = int(state_dict["level"])
        self.recent.clear()
        self.recent.extend(state_dict["recent"])
        self.changes = [tuple(c) for c in state_dict["changes"]]

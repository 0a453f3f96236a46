"""Curriculum learning (the seed's four levels): the env's scenario follows the current level, and
the level advances once recent evaluation episodes are good and stable enough."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig
from torchrl.envs import EnvBase

from grandmodel.training.data_source import CollectorSource


class Curriculum(pl.Callback):
    """Level ``start_level`` first; advance when the mean of the last ``window`` evaluation episode
    rewards exceeds ``advancement_threshold`` and their std is below ``stability_threshold``."""

    def __init__(self, cfg: DictConfig, source: CollectorSource, evaluator: Any) -> None:
        self.levels = list(cfg.levels)
        self.level = int(cfg.start_level)
        self.auto = bool(cfg.auto_advance)
        self.threshold, self.stability = (
            float(cfg.advancement_threshold),
            float(cfg.stability_threshold),
        )
        self.recent: deque[float] = deque(maxlen=int(cfg.window))
        self.source, self.evaluator = source, evaluator
        self.changes: list[tuple[float, int]] = []  # (frames, level) for the record
        source.configure_env = self._configure

    def _scenario(self) -> dict[str, Any]:
        level = self.levels[self.level]
        return {
            "market_conditions": list(level.market_conditions),
            "volatility_range": list(level.volatility_range),
            "noise_level": float(level.noise_level),
            "episode_length": int(level.episode_length),
        }

    def _configure(self, env: EnvBase) -> None:
        env.set_scenario(**self._scenario())
        if self.evaluator is not None and hasattr(self.evaluator, "load_data"):
            self.evaluator.load_data(env.data)

    def ready(self) -> bool:
        """The seed's rule: a full window of recent rewards, high mean, low spread."""
        if len(self.recent) < (self.recent.maxlen or 0):
            return False
        values = np.asarray(self.recent)
        return float(values.mean()) > self.threshold and float(values.std()) < self.stability

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.logger is not None:
            trainer.logger.log_metrics(
                {"curriculum/level": float(self.level)}, step=int(self.source.frames)
            )

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        rewards = getattr(self.evaluator, "last_episode_rewards", np.zeros(0))
        self.recent.extend(float(r) for r in rewards)
        advanced = self.auto and self.level < len(self.levels) - 1 and self.ready()
        if advanced:
            self.level += 1
            self.recent.clear()
            if self.source.env is not None:
                self._configure(self.source.env)
                self.source.restart_episodes()
        self.changes.append((float(self.source.frames), self.level))
        pl_module.log("level", float(self.level), prog_bar=True, logger=False)
        if trainer.logger is not None:
            trainer.logger.log_metrics(
                {"curriculum/level": float(self.level)}, step=int(self.source.frames)
            )

    def state_dict(self) -> dict[str, Any]:
        return {"level": self.level, "recent": list(self.recent), "changes": list(self.changes)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.level = int(state_dict["level"])
        self.recent.clear()
        self.recent.extend(state_dict["recent"])
        self.changes = [tuple(c) for c in state_dict["changes"]]

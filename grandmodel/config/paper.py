"""Schemas of the paper-trading and monitor entry points (``conf/paper.yaml``, ``conf/monitor.yaml``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import MISSING

from grandmodel.config.base import Problem, check
from grandmodel.config.env import EnvConfig, RewardConfig
from grandmodel.config.instrument import InstrumentConfig
from grandmodel.config.paths import PathsConfig
from grandmodel.config.training import LoggerConfig

SPEED = re.compile(r"^(max|\d+(\.\d+)?x)$")
CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class FeedKind(StrEnum):
    replay = "replay"  # a finished CSV or Parquet file, at a chosen speed
    tail = "tail"  # a CSV another process appends bars to


@dataclass
class FeedConfig:
    kind: FeedKind = FeedKind.replay
    path: str = MISSING
    speed: str = "max"  # replay: max, or a multiple of real time such as 1x or 60x
    poll_seconds: float = 0.2  # tail: how often the file is read for new lines
    idle_exit_seconds: float = 0.0  # tail: end the session after this long without a bar (0 never)

    def problems(self) -> list[Problem]:
        out = check(
            bool(SPEED.match(self.speed)), "speed", f"expected max or <n>x, got {self.speed!r}"
        )
        out += check(self.poll_seconds > 0, "poll_seconds", f"must be > 0, got {self.poll_seconds}")
        return out + check(self.idle_exit_seconds >= 0, "idle_exit_seconds", "must be >= 0")


@dataclass
class RiskGateConfig:
    """Limits of the risk gate (ACTIVE / REDUCING / HALTED); see grandmodel/deploy/paper/gate.py."""

    max_position: int = 5  # |contracts| the gate lets the model hold
    daily_loss_limit: float = 0.02  # fraction of the trading day's opening equity: HALTED, flat
    reduce_at: float = 0.5  # fraction of the limit from which only reducing orders pass
    stale_seconds: float = 300.0  # tail feed: no new bar this long -> HALTED until bars return
    kill_file: str = "KILL"  # in the session folder (or an absolute path): flatten and halt
    session_close: str = "16:00"  # local time (data.timezone) the trading day ends
    day_start: str = "17:00"  # local time the next trading day starts
    flatten_minutes: int = 5  # flatten this long before session_close (0: never)

    def problems(self) -> list[Problem]:
        out = check(
            self.max_position >= 0, "max_position", f"must be >= 0, got {self.max_position}"
        )
        out += check(0 < self.daily_loss_limit < 1, "daily_loss_limit", "must be in (0, 1)")
        out += check(0 < self.reduce_at <= 1, "reduce_at", "must be in (0, 1]")
        out += check(self.stale_seconds > 0, "stale_seconds", "must be > 0")
        for name in ("session_close", "day_start"):
            out += check(bool(CLOCK.match(getattr(self, name))), name, "expected HH:MM")
        return out + check(self.flatten_minutes >= 0, "flatten_minutes", "must be >= 0")


@dataclass
class PaperSettings:
    session: str = "default"  # outputs/paper/<session>/journal.sqlite; the same name continues it
    start: str | None = None  # first decision time (bars before only warm up the features)
    latency_bars: int = 0  # base bars between a decision and its fill
    quiet: bool = False
    monitor_every: int = 0  # run the monitor every N decisions (0: never in the loop)
    monitor_window: int = 288  # decisions per monitor window
    reference: str | None = None  # training run: feature drift in the loop's monitor checks
    kill_at_bar: int = 0  # drill: SIGKILL this process while bar N is half-written (0: off)
    risk: RiskGateConfig = field(default_factory=RiskGateConfig)

    def problems(self) -> list[Problem]:
        out = check(bool(re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", self.session)), "session",
                    f"expected letters, digits, '.', '_' or '-', got {self.session!r}")  # fmt: skip
        out += check(self.latency_bars >= 0, "latency_bars", "must be >= 0")
        out += check(self.monitor_window >= 10, "monitor_window", "must be >= 10")
        return out + check(self.monitor_every >= 0, "monitor_every", "must be >= 0")


@dataclass
class PaperConfig:
    """``python -m grandmodel.paper bundle=<export dir | models:/name@alias> feed=replay|tail``."""

    task_name: str = "paper"
    bundle: str = MISSING
    feed: FeedConfig = field(default_factory=FeedConfig)
    paper: PaperSettings = field(default_factory=PaperSettings)
    instrument: InstrumentConfig = field(default_factory=InstrumentConfig)  # trading time per year
    env: EnvConfig = MISSING
    reward: RewardConfig = MISSING
    paths: PathsConfig = MISSING
    logger: LoggerConfig = MISSING


@dataclass
class MonitorThresholds:
    """The alert table: a metric below its threshold raises the alert."""

    win_rate: float = 0.45
    sharpe: float = 0.5
    consistency: float = 0.7
    confidence: float = 0.6
    recommend_win_rate: float = 0.5


@dataclass
class MonitorConfig:
    """``python -m grandmodel.monitor session=<journal | session name> [reference=<run>]``."""

    task_name: str = "monitor"
    session: str = MISSING
    reference: str | None = None  # training run folder: drift against its training split
    window: int = 288  # decisions per rolling window (a day of 5-minute bars)
    drift_alpha: float = 0.05  # false-alarm rate of the bootstrap-calibrated drift thresholds
    bootstrap: int = 200
    seed: int = 0
    thresholds: MonitorThresholds = field(default_factory=MonitorThresholds)
    paths: PathsConfig = MISSING
    logger: LoggerConfig = MISSING

    def problems(self) -> list[Problem]:
        out = check(self.window >= 10, "window", f"must be >= 10, got {self.window}")
        out += check(0 < self.drift_alpha < 1, "drift_alpha", "must be in (0, 1)")
        return out + check(self.bootstrap >= 20, "bootstrap", "must be >= 20")


def register_paper(cs: Any) -> None:
    """Store the paper, monitor and feed schemas in Hydra's ConfigStore."""
    cs.store(name="paper_schema", node=PaperConfig)
    cs.store(name="monitor_schema", node=MonitorConfig)
    cs.store(group="feed", name="feed_schema", node=FeedConfig)

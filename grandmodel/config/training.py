"""Schemas of the ``trainer``, ``logger`` and ``callbacks`` groups (package ``grandmodel.training``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from grandmodel.config.base import Problem, check
from grandmodel.config.env import ROLES

COLLECTORS = ("single", "multi_sync", "multi_async")
STRATEGIES = ("auto", "ddp")
PRECISIONS = ("32-true", "64-true", "bf16-mixed", "16-mixed", "bf16-true")
# what training logs of each market validation walk (as val/<key>, grandmodel.evaluation.evaluator)
VALIDATION_KEYS = (
    *(f"reward/{role}" for role in ROLES),
    "mean_reward", "sharpe", "sharpe_lcb", "max_drawdown", "total_return", "trades", "win_rate",
)  # fmt: skip


@dataclass
class SelectionConfig:
    """What makes a checkpoint the best and counts as progress for early stopping: the validation
    walk's ``metric``, when the walk closed at least ``min_trades`` round trips; a walk with fewer
    is ineligible (never the best, no progress), so a near-flat policy cannot win on a few lucky
    trades. ``val/sharpe_lcb`` is the one-sided 95% lower bound of the Sharpe ratio."""

    metric: str = "val/sharpe_lcb"
    min_trades: int = 30

    @property
    def mode(self) -> str:
        """``min`` for a drawdown or a loss, else ``max``."""
        return "min" if self.metric.endswith(("drawdown", "loss")) else "max"

    def problems(self) -> list[Problem]:
        known = [f"val/{key}" for key in VALIDATION_KEYS]
        out = check(
            self.metric in known,
            "metric",
            f"{self.metric!r} is not logged at validation; expected one of {known}",
        )
        return out + check(
            self.min_trades >= 0,
            "min_trades",
            f"{self.min_trades} is negative; expected a number of round trips >= 0",
        )


@dataclass
class TrainerConfig:
    """Frames to collect and how; device and precision for Lightning."""

    accelerator: str = "cpu"
    devices: int = 1
    precision: str = "32-true"
    total_frames: int = 400_000
    stop_after_frames: int | None = (
        None  # end this session early (schedules still span total_frames)
    )
    frames_per_batch: int = 2048
    eval_every_frames: int = 40_960
    eval_split: str = "val"
    eval_episodes: int = 0  # 0 = every window of the split once
    num_threads: int = 0  # torch intra-op threads; 0 = torch's default
    deterministic: bool = True
    enable_progress_bar: bool = True
    log_every_n_batches: int = 1
    # single: one TorchRL Collector in this process; multi_sync / multi_async: TorchRL's
    # MultiSyncCollector / MultiaSyncCollector over `collector_workers` processes, each with its own
    # env shard and seed. Resuming a multi-process run restores learners, optimisers, buffers and
    # counters but restarts the workers' episodes: it is not bit-identical to an uninterrupted run.
    collector: str = "single"
    collector_workers: int = 1
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    # auto: one process; ddp: Lightning's DistributedDataParallel over devices × num_nodes processes,
    # each collecting from its own env shard (seed) into its own replay buffers, gradients averaged.
    # total_frames, frames_per_batch and eval_every_frames stay global (split across the processes).
    strategy: str = "auto"
    num_nodes: int = 1

    def problems(self) -> list[Problem]:
        out = check(
            self.collector in COLLECTORS,
            "collector",
            f"expected one of {list(COLLECTORS)}, got {self.collector!r}",
        )
        out += check(
            self.collector_workers >= 1
            and (self.collector != "single" or self.collector_workers == 1),
            "collector_workers",
            f"must be 1 with collector=single and >= 1 otherwise, got {self.collector_workers}",
        )
        out += self._strategy_problems()
        out += check(
            self.precision in PRECISIONS,
            "precision",
            f"expected one of {list(PRECISIONS)}, got {self.precision!r}",
        )
        out += check(
            self.total_frames >= 1, "total_frames", f"must be >= 1, got {self.total_frames}"
        )
        out += check(
            self.frames_per_batch >= 1,
            "frames_per_batch",
            f"must be >= 1, got {self.frames_per_batch}",
        )
        if self.stop_after_frames is not None:
            out += check(
                self.stop_after_frames >= 1,
                "stop_after_frames",
                f"must be >= 1, got {self.stop_after_frames}",
            )
        out += check(
            self.eval_every_frames >= self.frames_per_batch,
            "eval_every_frames",
            f"must be >= frames_per_batch ({self.frames_per_batch}), got {self.eval_every_frames}",
        )
        out += check(
            self.eval_split in ("train", "val", "test"),
            "eval_split",
            f"expected train, val or test, got {self.eval_split!r}",
        )
        out += check(
            self.eval_episodes >= 0, "eval_episodes", f"must be >= 0, got {self.eval_episodes}"
        )
        return out

    def _strategy_problems(self) -> list[Problem]:
        if self.strategy not in STRATEGIES:
            return check(
                False, "strategy", f"expected one of {list(STRATEGIES)}, got {self.strategy!r}"
            )
        out = check(self.devices >= 1, "devices", f"must be >= 1, got {self.devices}")
        out += check(self.num_nodes >= 1, "num_nodes", f"must be >= 1, got {self.num_nodes}")
        if self.strategy == "ddp":
            return out + check(
                self.collector == "single",
                "strategy",
                f"ddp runs one collector per process, not collector={self.collector}; "
                "expected trainer.collector=single with strategy=ddp",
            )
        return out + check(
            self.devices == 1 and self.num_nodes == 1,
            "strategy",
            f"auto runs one process, not devices={self.devices} × num_nodes={self.num_nodes}; "
            "expected trainer.strategy=ddp for several processes",
        )


@dataclass
class LoggerConfig:
    """Where a run is tracked: ``kind=mlflow`` (SQLite under outputs/ by default, any tracking URI)
    or ``kind=csv`` (no store). Every run also keeps a local record in its folder
    (``tracking/record.jsonl``) that a store outage never interrupts; ``tensorboard`` and ``csv``
    add Lightning's TensorBoard and CSV loggers (``logger=[mlflow,tensorboard]``)."""

    kind: str = "csv"
    tracking_uri: str = "sqlite:///outputs/mlflow.db"
    experiment_name: str = "grandmodel"
    run_name: str | None = None
    artifact_location: str | None = None
    log_checkpoints: bool = True
    connect_timeout: float = 5.0
    retry_seconds: float = 10.0  # after a store failure, try it again at most this often
    tensorboard: bool = False
    csv: bool = False

    def problems(self) -> list[Problem]:
        out = check(
            self.kind in ("mlflow", "csv"), "kind", f"expected mlflow or csv, got {self.kind!r}"
        )
        return out + check(
            self.retry_seconds > 0, "retry_seconds", f"must be > 0, got {self.retry_seconds}"
        )


@dataclass
class EarlyStoppingConfig:
    """Early stopping counted in evaluations (10 = 1000 episodes at one evaluation per 100)."""

    enabled: bool = True
    patience: int = 10
    min_improvement: float = 0.01

    def problems(self) -> list[Problem]:
        return check(self.patience >= 1, "patience", f"must be >= 1, got {self.patience}")


@dataclass
class CheckpointConfig:
    """Checkpoint every ``every_n_evals`` evaluations, plus the best (by the optimised metric) and last."""

    every_n_evals: int = 1
    save_top_k: int = 1

    def problems(self) -> list[Problem]:
        return check(
            self.every_n_evals >= 1, "every_n_evals", f"must be >= 1, got {self.every_n_evals}"
        )


@dataclass
class PruningConfig:
    """Sweeps: stop a trial below the median of its finished siblings at the same point (MLflow)."""

    enabled: bool = True
    min_siblings: int = 3
    warmup_evals: int = 1

    def problems(self) -> list[Problem]:
        out = check(
            self.min_siblings >= 1, "min_siblings", f"must be >= 1, got {self.min_siblings}"
        )
        return out + check(
            self.warmup_evals >= 1, "warmup_evals", f"must be >= 1, got {self.warmup_evals}"
        )


@dataclass
class CallbacksConfig:
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    nan_guard: bool = True


@dataclass
class FaultsConfig:
    """Fault injection for tests and drills (``debug=nan_batch``, ``debug=kill``): a NaN in a batch's
    rewards, or SIGKILL of the process after a batch or halfway through writing a checkpoint."""

    nan_at_batch: int | None = None
    kill_at_batch: int | None = None
    kill_during_save: int | None = None  # the N-th checkpoint write of this session

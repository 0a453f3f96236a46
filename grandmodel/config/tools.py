"""Schemas of the evaluation and backtest entry points (``conf/evaluate.yaml``, ``conf/backtest.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from omegaconf import MISSING

from grandmodel.config.base import Problem, check, date_problems
from grandmodel.config.data import DataConfig
from grandmodel.config.paths import PathsConfig
from grandmodel.config.training import LoggerConfig


class PolicyRuntime(StrEnum):
    """How the trained policy acts in an evaluation or backtest: ``torch`` (the lean walk of the
    run's networks), ``onnx`` (its graphs on ONNX Runtime: ``bundle``'s, else exported for the pass),
    ``auto`` (the fastest available: ``onnx`` where the run exports, else ``torch``)."""

    auto = "auto"
    torch = "torch"
    onnx = "onnx"


def _runtime_problems(policy: PolicyRuntime, bundle: str | None) -> list[Problem]:
    return check(
        not bundle or policy != PolicyRuntime.torch,
        "bundle",
        "runs on ONNX Runtime; expected policy=onnx or policy=auto with a bundle",
    )


@dataclass
class EvaluateConfig:
    """``python -m grandmodel.evaluate run=<run dir | MLflow run id | checkpoint> split=test episodes=N``."""

    task_name: str = "evaluate"
    run: str = MISSING
    split: str = "test"
    episodes: int = 0  # 0 = every window of the split
    trials: int = (
        0  # configurations tried (Deflated Sharpe); 0 = count the runs in the MLflow experiment
    )
    counterfactual: bool = True
    seed: int = 0
    policy: PolicyRuntime = PolicyRuntime.auto
    bundle: str | None = None  # export bundle folder (grandmodel.export), for policy=onnx
    data: DataConfig | None = None  # another data source than the model's (features must match)
    paths: PathsConfig = MISSING
    logger: LoggerConfig = MISSING

    def problems(self) -> list[Problem]:
        out = check(
            self.split in ("train", "val", "test"),
            "split",
            f"expected train, val or test, got {self.split!r}",
        )
        out += check(self.episodes >= 0, "episodes", f"must be >= 0, got {self.episodes}")
        out += check(self.trials >= 0, "trials", f"must be >= 0, got {self.trials}")
        return out + _runtime_problems(self.policy, self.bundle)


@dataclass
class WalkForwardConfig:
    """Rolling out-of-sample test: ``folds`` test windows, each after an expanding training window."""

    folds: int = 0  # 0 = no walk-forward, a single backtest
    runs: list[str] = field(
        default_factory=list
    )  # one trained run per fold to load instead of training
    total_frames: int | None = (
        None  # training budget per fold (default: the run's trainer.total_frames)
    )

    def problems(self) -> list[Problem]:
        out = check(
            self.folds == 0 or self.folds >= 2, "folds", f"must be 0 or >= 2, got {self.folds}"
        )
        out += check(
            not self.runs or len(self.runs) == self.folds,
            "runs",
            f"expected one run per fold ({self.folds}), got {len(self.runs)}",
        )
        if self.total_frames is not None:
            out += check(
                self.total_frames >= 1, "total_frames", f"must be >= 1, got {self.total_frames}"
            )
        return out


class BacktestRange(StrEnum):
    """What a backtest walks when ``start``/``end`` are not given: one split, or ``all`` of the data
    (training period included: in-sample, with a warning)."""

    train = "train"
    val = "val"
    test = "test"
    all = "all"


@dataclass
class BacktestConfig:
    """``python -m grandmodel.backtest run=... [data=...] start=... end=... initial_capital=100000``."""

    task_name: str = "backtest"
    run: str = MISSING
    range: BacktestRange = BacktestRange.test  # start/end, when given, choose the range instead
    start: str | None = None
    end: str | None = None
    initial_capital: float | None = None  # default: the run's env.initial_capital
    seed: int = 0
    policy: PolicyRuntime = PolicyRuntime.auto
    bundle: str | None = None  # export bundle folder (grandmodel.export), for policy=onnx
    data: DataConfig | None = None
    walk_forward: WalkForwardConfig = field(default_factory=WalkForwardConfig)
    paths: PathsConfig = MISSING
    logger: LoggerConfig = MISSING

    def problems(self) -> list[Problem]:
        out = check(
            self.initial_capital is None or self.initial_capital > 0,
            "initial_capital",
            f"must be > 0, got {self.initial_capital}",
        )
        return (
            out
            + date_problems(self, ("start", "end"))
            + _runtime_problems(self.policy, self.bundle)
        )


@dataclass
class ParetoConfig:
    """``python -m grandmodel.pareto mlflow_experiment=<MLflow experiment> metrics=[...] directions=[...]``."""

    task_name: str = "pareto"
    mlflow_experiment: str = "grandmodel"
    metrics: list[str] = field(
        default_factory=lambda: ["final/val/sharpe", "final/val/max_drawdown"]
    )
    directions: list[str] = field(default_factory=lambda: ["max", "min"])
    sweep: str | None = None  # a sweep's parent run id: only its trials
    paths: PathsConfig = MISSING
    logger: LoggerConfig = MISSING

    def problems(self) -> list[Problem]:
        out = check(
            len(self.metrics) in (2, 3),
            "metrics",
            f"expected two or three metrics, got {list(self.metrics)}",
        )
        out += check(
            len(self.directions) == len(self.metrics)
            and all(d in ("max", "min") for d in self.directions),
            "directions",
            f"expected one of max/min per metric ({len(self.metrics)}), got {list(self.directions)}",
        )
        return out

"""Schema of the export entry point (``conf/export.yaml``, package ``grandmodel.deploy``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from omegaconf import MISSING

from grandmodel.config.base import Problem, check
from grandmodel.config.paths import PathsConfig
from grandmodel.config.training import LoggerConfig

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class ParityConfig:
    """Torch vs ONNX Runtime on recorded observations, written to ``parity.json``."""

    observations: int = 1024  # per role, walked on the test split first (then val, train)
    tolerance: float = 1e-5  # max |torch - onnx| of the continuous (tactical) action
    latency_calls: int = 2000  # timed batch-1 calls per role

    def problems(self) -> list[Problem]:
        out = check(
            self.observations >= 1, "observations", f"must be >= 1, got {self.observations}"
        )
        out += check(self.tolerance >= 0, "tolerance", f"must be >= 0, got {self.tolerance}")
        out += check(
            self.latency_calls >= 1, "latency_calls", f"must be >= 1, got {self.latency_calls}"
        )
        return out


@dataclass
class ExportSettings:
    """How the bundle is built and where MLflow registers it."""

    registered_name: str = "grandmodel"
    alias: str = "candidate"
    register: bool = True  # log to MLflow and register (when logger.kind is mlflow)
    opset: int = 18
    parity: ParityConfig = field(default_factory=ParityConfig)

    def problems(self) -> list[Problem]:
        out = check(
            bool(NAME.match(self.registered_name)),
            "registered_name",
            f"expected letters, digits, '.', '_' or '-', got {self.registered_name!r}",
        )
        out += check(
            bool(re.match(r"^[A-Za-z][A-Za-z0-9_-]*$", self.alias)),
            "alias",
            f"expected a letter then letters, digits, '_' or '-', got {self.alias!r}",
        )
        out += check(18 <= self.opset <= 23, "opset", f"must be in [18, 23], got {self.opset}")
        return out


@dataclass
class ExportConfig:
    """``python -m grandmodel.export run=<run dir | MLflow run id | checkpoint> [out=...] [name=...]``."""

    task_name: str = "export"
    run: str = MISSING
    name: str | None = None  # default: the run folder's name
    out: str | None = None  # default: <paths.outputs_dir>/exports/<name>
    overwrite: bool = False
    export: ExportSettings = field(default_factory=ExportSettings)
    paths: PathsConfig = MISSING
    logger: LoggerConfig = MISSING

    def problems(self) -> list[Problem]:
        return check(
            self.name is None or bool(NAME.match(self.name)),
            "name",
            f"expected letters, digits, '.', '_' or '-' (a folder name), got {self.name!r}",
        )

"""Schema of the composed config (``conf/train.yaml``) and its registration in Hydra's ConfigStore."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from grandmodel.config.agent import AgentGroupConfig
from grandmodel.config.base import Problem, check
from grandmodel.config.curriculum import CurriculumConfig
from grandmodel.config.data import DataConfig
from grandmodel.config.deploy import ExportConfig
from grandmodel.config.env import ROLES, EnvConfig, RewardConfig
from grandmodel.config.instrument import InstrumentConfig
from grandmodel.config.paths import PathsConfig
from grandmodel.config.tools import BacktestConfig, EvaluateConfig, ParetoConfig
from grandmodel.config.training import (
    CallbacksConfig,
    FaultsConfig,
    LoggerConfig,
    TrainerConfig,
)


@dataclass
class RootConfig:
    """Top-level keys; every group below is typed, so a misspelt key fails at composition."""

    task_name: str = "train"
    seed: int = 0
    tags: list[str] = field(default_factory=list)
    optimized_metric: str = "val/sharpe"
    objectives: list[str] | None = (
        None  # multi-objective sweeps: main returns these (final val metrics)
    )
    ckpt_path: str | None = None
    resume: str | None = None  # a run folder or MLflow run id: continue that run
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    agent: AgentGroupConfig = MISSING
    instrument: InstrumentConfig = field(default_factory=InstrumentConfig)
    data: DataConfig = MISSING
    env: EnvConfig = MISSING
    reward: RewardConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    callbacks: CallbacksConfig = MISSING
    paths: PathsConfig = MISSING
    curriculum: CurriculumConfig | None = None

    def problems(self) -> list[Problem]:
        out = check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        phased = any(self.agent.phases.phased(r) for r in self.agent.learn if r in ROLES)
        out += check(
            not phased or self.trainer.collector == "single",
            "agent.phases",
            "learning phases switch the acting policy in this process, which the worker processes "
            f"of trainer.collector={self.trainer.collector} do not see; expected trainer.collector=single",
        )
        return out


PROJECT_ROOT = Path(__file__).resolve().parents[2]

GROUP_SCHEMAS: dict[str, type] = {
    "agent": AgentGroupConfig,
    "trainer": TrainerConfig,
    "logger": LoggerConfig,
    "callbacks": CallbacksConfig,
    "instrument": InstrumentConfig,
    "data": DataConfig,
    "env": EnvConfig,
    "reward": RewardConfig,
    "paths": PathsConfig,
    "curriculum": CurriculumConfig,
}


def register_configs() -> None:
    """Store ``<group>_schema`` for every group and ``root_schema`` for the top level (idempotent)."""
    if not OmegaConf.has_resolver("gm.root"):
        OmegaConf.register_new_resolver("gm.root", lambda: str(PROJECT_ROOT))
    cs = ConfigStore.instance()
    cs.store(name="root_schema", node=RootConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="backtest_schema", node=BacktestConfig)
    cs.store(name="pareto_schema", node=ParetoConfig)
    cs.store(name="export_schema", node=ExportConfig)
    for group, schema in GROUP_SCHEMAS.items():
        cs.store(group=group, name=f"{group}_schema", node=schema)
    from grandmodel.config.meta import register_meta  # imports RootConfig: not at module level

    register_meta(cs)
    from grandmodel.config.paper import register_paper

    register_paper(cs)

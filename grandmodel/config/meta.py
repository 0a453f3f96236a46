"""Schemas of meta-learning (group ``meta``; ``python -m grandmodel.meta``), adaptation to a new
market (``python -m grandmodel.adapt``) and fitting the GAN scenario generator
(``python -m grandmodel.data.fit_generator``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from grandmodel.config.base import Problem, check
from grandmodel.config.data import DataConfig
from grandmodel.config.env import ROLES
from grandmodel.config.paths import PathsConfig
from grandmodel.config.root import RootConfig
from grandmodel.config.training import FaultsConfig, LoggerConfig


class MetaAlgorithm(StrEnum):
    reptile = "reptile"
    fomaml = "fomaml"  # first-order MAML


def _range_problems(obj: object, names: tuple[str, ...], low: float) -> list[Problem]:
    out: list[Problem] = []
    for name in names:
        pair = getattr(obj, name)
        out += check(
            len(pair) == 2 and low <= pair[0] <= pair[1],
            name,
            f"expected [low, high] with {low:g} <= low <= high, got {pair}",
        )
    return out


@dataclass
class MarketFamilyConfig:
    """Synthetic markets meta-training draws from: each task samples its generator (``regime`` or
    ``jump``), trend drift, volatility, regime persistence and jump intensity in these ranges."""

    tasks: int = 8  # distinct markets, drawn once from the seed; iterations cycle through them
    days: int = 20
    generators: list[str] = field(default_factory=lambda: ["regime", "jump"])
    trend_drift: list[float] = field(default_factory=lambda: [1.0, 6.0])  # annual, ± for up/down
    annual_vol: list[float] = field(default_factory=lambda: [0.08, 0.35])
    mean_minutes: list[float] = field(default_factory=lambda: [240.0, 1440.0])
    jumps_per_day: list[float] = field(default_factory=lambda: [0.0, 6.0])

    def problems(self) -> list[Problem]:
        out = check(self.tasks >= 1, "tasks", f"must be >= 1, got {self.tasks}")
        out += check(self.days >= 2, "days", f"must be >= 2, got {self.days}")
        bad = [g for g in self.generators if g not in ("regime", "jump")]
        out += check(
            bool(self.generators) and not bad,
            "generators",
            f"expected a non-empty list of regime and jump, got {self.generators}",
        )
        out += _range_problems(self, ("trend_drift", "jumps_per_day"), 0.0)
        out += _range_problems(self, ("annual_vol",), 1e-6)
        out += _range_problems(self, ("mean_minutes",), 1.0)
        return out


@dataclass
class MetaConfig:
    """Reptile (default) or first-order MAML over a family of markets, for one role's learner."""

    name: str = "reptile"
    algorithm: MetaAlgorithm = MetaAlgorithm.reptile
    role: str = "strategic"
    iterations: int = 200  # meta-updates
    meta_batch: int = 2  # tasks per meta-update
    inner_updates: int = 4  # learner updates on each task before the meta-update
    frames_per_update: int = 512  # env steps collected for each inner update
    meta_lr: float = 0.5  # Reptile: step towards the adapted weights; FOMAML: SGD step size
    log_every: int = 5
    family: MarketFamilyConfig = field(default_factory=MarketFamilyConfig)

    def problems(self) -> list[Problem]:
        out = check(self.role in ROLES, "role", f"expected one of {list(ROLES)}, got {self.role!r}")
        for name in ("iterations", "meta_batch", "inner_updates", "frames_per_update", "log_every"):
            value = getattr(self, name)
            out += check(value >= 1, name, f"must be >= 1, got {value}")
        out += check(self.meta_lr > 0, "meta_lr", f"must be > 0, got {self.meta_lr}")
        return out


@dataclass
class MetaTrainConfig(RootConfig):
    """``conf/meta_train.yaml``: the training config plus the ``meta`` group."""

    meta: MetaConfig = MISSING


@dataclass
class AdaptSettings:
    """``adapt.steps`` updates on the new market's training split, then a walk of ``split``."""

    steps: int = 10
    frames_per_update: int | None = None  # default: the meta run's meta.frames_per_update
    lr: float | None = None  # default: the learner's own
    split: str = "test"
    episodes: int = 0  # 0 = every window of the split

    def problems(self) -> list[Problem]:
        out = check(self.steps >= 0, "steps", f"must be >= 0, got {self.steps}")
        out += check(
            self.split in ("val", "test"), "split", f"expected val or test, got {self.split!r}"
        )
        if self.frames_per_update is not None:
            out += check(self.frames_per_update >= 1, "frames_per_update", "must be >= 1")
        if self.lr is not None:
            out += check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        return out


@dataclass
class AdaptConfig:
    """``python -m grandmodel.adapt run=<meta run> data=<new market> adapt.steps=K``;
    ``resume=<adapt run folder>`` (or ``ckpt_path=<adapt run>/checkpoints/last.ckpt``) continues an
    interrupted one. Of ``faults`` only ``kill_at_batch`` applies (SIGKILL after that update)."""

    task_name: str = "adapt"
    run: str = MISSING
    seed: int = 0
    data: DataConfig | None = None
    adapt: AdaptSettings = field(default_factory=AdaptSettings)
    resume: str | None = None  # rewritten to ckpt_path= by the entry point (training/resume.py)
    ckpt_path: str | None = None
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    paths: PathsConfig = MISSING
    logger: LoggerConfig = MISSING

    def problems(self) -> list[Problem]:
        out = check(
            self.data is not None,
            "data",
            "expected the new market, e.g. data=synthetic data.synthetic.seed=99 or data=csv data.path=…",
        )
        for name in ("nan_at_batch", "kill_during_save"):
            out += check(
                getattr(self.faults, name) is None,
                f"faults.{name}",
                "adapt injects no such fault; expected faults.kill_at_batch (an update number)",
            )
        return out


@dataclass
class GanConfig:
    """QuantGAN generator and critic (temporal convolutional networks) and their WGAN-GP training."""

    window: int = 128  # returns per training window (>= the receptive field, 2**(layers+1) - 1)
    noise_channels: int = 3
    hidden: int = 16
    layers: int = 5  # dilations 1, 2, ..., 2**(layers-1)
    conditional: bool = False  # condition on regime labels (the data's, or ``regime_labels``)
    intraday_profile: bool = True  # learn returns over their minute-of-day volatility profile
    daily_level: bool = True  # ... and over each session's level (an AR(1) when sampling)
    steps: int = 1000  # generator updates
    max_minutes: float = 10.0  # wall-time budget; training stops at whichever comes first
    critic_steps: int = 3
    batch_size: int = 32
    lr: float = 1e-4
    gradient_penalty: float = 10.0

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        for name in ("noise_channels", "hidden", "layers", "steps", "critic_steps", "batch_size"):
            value = getattr(self, name)
            out += check(value >= 1, name, f"must be >= 1, got {value}")
        rf = 2 ** (self.layers + 1) - 1
        out += check(
            self.window >= rf,
            "window",
            f"must be >= the receptive field {rf} of {self.layers} layers, got {self.window}",
        )
        out += check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        out += check(self.max_minutes > 0, "max_minutes", f"must be > 0, got {self.max_minutes}")
        return out


@dataclass
class FitGeneratorConfig:
    """``python -m grandmodel.data.fit_generator data=csv data.path=… [gan.steps=…]``."""

    task_name: str = "fit_generator"
    seed: int = 0
    fit_share: float = 0.7  # fit on this first (chronological) share of the returns only
    output: str | None = None  # default: <run folder>/generator.pt
    gan: GanConfig = field(default_factory=GanConfig)
    data: DataConfig = MISSING
    paths: PathsConfig = MISSING
    logger: LoggerConfig = MISSING

    def problems(self) -> list[Problem]:
        return check(
            0 < self.fit_share <= 1, "fit_share", f"must be in (0, 1], got {self.fit_share}"
        )


def register_meta(cs: ConfigStore) -> None:
    """Store the ``meta`` group's schema and the three entry points' schemas."""
    cs.store(group="meta", name="meta_schema", node=MetaConfig)
    cs.store(name="meta_train_schema", node=MetaTrainConfig)
    cs.store(name="adapt_schema", node=AdaptConfig)
    cs.store(name="fit_generator_schema", node=FitGeneratorConfig)

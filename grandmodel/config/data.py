"""Schema of the ``data`` config group (package ``grandmodel.data``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from grandmodel.config.base import Problem, check, date_problems, timedelta_of, timestamp_of


class Source(StrEnum):
    synthetic = "synthetic"
    file = "file"


class FileFormat(StrEnum):
    """What a data file holds: OHLCV bars, or trades aggregated to base bars (``data/ticks.py``)."""

    bars = "bars"
    ticks = "ticks"


class BarStamp(StrEnum):
    open = "open"
    close = "close"


class DuplicatePolicy(StrEnum):
    error = "error"
    keep_first = "keep_first"
    keep_last = "keep_last"


class UnsortedPolicy(StrEnum):
    error = "error"
    sort = "sort"


class InvalidRowPolicy(StrEnum):
    error = "error"
    drop = "drop"


class EpisodeSampling(StrEnum):
    random = "random"
    overlap = "overlap"


class Generator(StrEnum):
    monte_carlo = "monte_carlo"
    garch = "garch"
    regime = "regime"
    jump = "jump"
    stress = "stress"
    gan = "gan"  # a fitted QuantGAN (python -m grandmodel.data.fit_generator), at gan_path


MARKET_CONDITIONS = ("all", "strong_trend", "trend", "sideways", "volatile")


@dataclass
class TimeframesConfig:
    """Bar sizes: tactical must be a multiple of base, strategic a multiple of tactical."""

    base: str = "1min"
    tactical: str = "5min"
    strategic: str = "30min"

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        sizes = {
            name: timedelta_of(getattr(self, name)) for name in ("base", "tactical", "strategic")
        }
        for name, size in sizes.items():
            out += check(
                size is not None,
                name,
                f"expected a bar size like '5min' or '1h', got {getattr(self, name)!r}",
            )
        if out:
            return out
        out += check(
            sizes["tactical"].value % sizes["base"].value == 0,
            "tactical",
            f"must be a whole multiple of base ({self.base}), got {self.tactical}",
        )
        out += check(
            sizes["strategic"].value % sizes["tactical"].value == 0,
            "strategic",
            f"must be a whole multiple of tactical ({self.tactical}), got {self.strategic}",
        )
        return out


@dataclass
class WindowConfig:
    """Observation windows in bars of each timeframe (48 strategic, 60 tactical by default)."""

    strategic: int = 48
    tactical: int = 60

    def problems(self) -> list[Problem]:
        return check(
            self.strategic >= 1, "strategic", f"must be >= 1, got {self.strategic}"
        ) + check(self.tactical >= 1, "tactical", f"must be >= 1, got {self.tactical}")


@dataclass
class FeatureListsConfig:
    """Observation features per role, by name (README feature table); ``null``: the default 13
    strategic and 7 tactical. Observation shapes follow the lists. Order-book and economic-calendar
    features need ``data.book`` / ``data.events``."""

    strategic: list[str] | None = None
    tactical: list[str] | None = None


@dataclass
class RegimeFitConfig:
    """The Gaussian HMM behind the ``regime_*`` features (``data/hmm.py``), fitted on the training
    split when a role observes one: ``states`` regimes, the most likely of ``restarts`` EM runs."""

    states: int = 5
    restarts: int = 5

    def problems(self) -> list[Problem]:
        return check(self.states >= 2, "states", f"must be >= 2, got {self.states}") + check(
            self.restarts >= 1, "restarts", f"must be >= 1, got {self.restarts}"
        )


@dataclass
class SplitConfig:
    """Chronological fractions of the decision points; the embargo defaults to the longest look-back."""

    train: float = 0.7
    val: float = 0.15
    test: float = 0.15
    embargo: str | None = None

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        for name in ("train", "val", "test"):
            value = getattr(self, name)
            out += check(0.0 < value < 1.0, name, f"must be in (0, 1), got {value}")
        total = self.train + self.val + self.test
        out += check(
            abs(total - 1.0) < 1e-9, "test", f"train + val + test must be 1, got {total:g}"
        )
        if self.embargo is not None:
            out += check(
                timedelta_of(self.embargo) is not None,
                "embargo",
                f"expected a duration like '2h' or null, got {self.embargo!r}",
            )
        return out


@dataclass
class RegimeSpec:
    """One state of the Markov-switching generator: annualised drift and volatility, mean duration."""

    name: str = "sideways"
    drift: float = 0.0
    vol: float = 0.15
    mean_minutes: float = 240.0

    def problems(self) -> list[Problem]:
        return check(self.vol > 0, "vol", f"must be > 0, got {self.vol}") + check(
            self.mean_minutes >= 1, "mean_minutes", f"must be >= 1, got {self.mean_minutes}"
        )


def _default_regimes() -> list[RegimeSpec]:
    return [
        RegimeSpec("trend_up", drift=4.0, vol=0.14, mean_minutes=720.0),
        RegimeSpec("trend_down", drift=-4.0, vol=0.16, mean_minutes=720.0),
        RegimeSpec("sideways", drift=0.0, vol=0.10, mean_minutes=600.0),
        RegimeSpec("volatile", drift=0.0, vol=0.35, mean_minutes=240.0),
    ]


@dataclass
class GarchSpec:
    """GARCH(1,1) on one-minute returns; omega follows from the target annual volatility."""

    alpha: float = 0.05
    beta: float = 0.94

    def problems(self) -> list[Problem]:
        out = check(self.alpha >= 0, "alpha", f"must be >= 0, got {self.alpha}")
        out += check(self.beta >= 0, "beta", f"must be >= 0, got {self.beta}")
        out += check(
            self.alpha + self.beta < 1,
            "beta",
            f"alpha + beta must be < 1 for a stationary GARCH, got {self.alpha + self.beta:g}",
        )
        return out


@dataclass
class JumpSpec:
    """Merton jumps: Poisson arrivals per trading day, normal log-jump sizes."""

    per_day: float = 2.0
    mean: float = -0.002
    std: float = 0.006

    def problems(self) -> list[Problem]:
        return check(self.per_day >= 0, "per_day", f"must be >= 0, got {self.per_day}") + check(
            self.std >= 0, "std", f"must be >= 0, got {self.std}"
        )


@dataclass
class StressSpec:
    """Events injected into a regime path: counts over the whole sample and their sizes."""

    flash_crashes: int = 2
    crash_size: float = 0.05
    crash_minutes: int = 15
    gaps: int = 3
    gap_size: float = 0.02
    vol_spikes: int = 3
    spike_multiplier: float = 4.0
    spike_minutes: int = 120

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        for name in ("flash_crashes", "gaps", "vol_spikes"):
            out += check(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        out += check(
            0 < self.crash_size < 1, "crash_size", f"must be in (0, 1), got {self.crash_size}"
        )
        out += check(0 <= self.gap_size < 1, "gap_size", f"must be in [0, 1), got {self.gap_size}")
        out += check(
            self.spike_multiplier >= 1,
            "spike_multiplier",
            f"must be >= 1, got {self.spike_multiplier}",
        )
        return out


@dataclass
class SyntheticConfig:
    """Seeded one-minute OHLCV on the ES session calendar (Sun–Fri 17:00–16:00 CT, daily halt)."""

    generator: Generator = Generator.regime
    seed: int = 7
    start: str = "2023-01-02"
    days: int = 60
    initial_price: float = 4000.0
    tick_size: float = 0.25
    annual_vol: float = 0.18
    annual_drift: float = 0.0
    base_volume: float = 400.0
    conditions: list[str] = field(default_factory=lambda: ["all"])
    volatility_range: list[float] | None = None
    noise_level: float = 0.0
    regimes: list[RegimeSpec] = field(default_factory=_default_regimes)
    garch: GarchSpec = field(default_factory=GarchSpec)
    jump: JumpSpec = field(default_factory=JumpSpec)
    stress: StressSpec = field(default_factory=StressSpec)
    gan_path: str | None = None  # generator file of generator=gan

    def problems(self) -> list[Problem]:
        out = check(self.days >= 1, "days", f"must be >= 1, got {self.days}")
        out += check(
            self.initial_price > 0, "initial_price", f"must be > 0, got {self.initial_price}"
        )
        out += check(self.tick_size > 0, "tick_size", f"must be > 0, got {self.tick_size}")
        out += check(self.annual_vol > 0, "annual_vol", f"must be > 0, got {self.annual_vol}")
        out += check(self.base_volume > 0, "base_volume", f"must be > 0, got {self.base_volume}")
        out += check(self.noise_level >= 0, "noise_level", f"must be >= 0, got {self.noise_level}")
        bad = [c for c in self.conditions if c not in MARKET_CONDITIONS]
        out += check(
            bool(self.conditions) and not bad,
            "conditions",
            f"expected a non-empty list of {list(MARKET_CONDITIONS)}, got {self.conditions}",
        )
        if self.volatility_range is not None:
            vr = self.volatility_range
            out += check(
                len(vr) == 2 and 0 < vr[0] <= vr[1],
                "volatility_range",
                f"expected [low, high] with 0 < low <= high, got {vr}",
            )
        out += check(bool(self.regimes), "regimes", "expected at least one regime")
        out += check(
            self.generator != Generator.gan or bool(self.gan_path),
            "gan_path",
            "expected the file python -m grandmodel.data.fit_generator wrote (generator=gan)",
        )
        if timestamp_of(self.start) is None:
            out += [("start", f"expected a date like '2023-01-02', got {self.start!r}")]
        return out


@dataclass
class DataConfig:
    """Where bars come from, how they are checked, resampled, split and cut into episodes.

    ``session_hours`` x ``trading_days`` is the instrument's trading time per year (ES: ~23 h x 252),
    which sets the annualisation factor of every per-bar statistic (never 252 for intraday bars).
    """

    name: str = "synthetic"
    source: Source = Source.synthetic
    path: str | None = None
    format: FileFormat = FileFormat.bars  # ticks: timestamp, price, size[, side] -> base bars
    book: str | None = None  # order-book snapshots (data/book.py) for the book features
    events: str | None = None  # an economic calendar (data/economic.py) for the event features
    event_names: list[str] | None = None  # only these indicators of the calendar
    features: FeatureListsConfig = field(default_factory=FeatureListsConfig)
    regime_fit: RegimeFitConfig = field(default_factory=RegimeFitConfig)
    start: str | None = None  # keep bars opening at or after this time (data timezone)
    end: str | None = None  # ... and before this one
    timezone: str = "America/Chicago"
    bar_stamp: BarStamp = BarStamp.open
    on_duplicate: DuplicatePolicy = DuplicatePolicy.error
    on_unsorted: UnsortedPolicy = UnsortedPolicy.error
    on_invalid_row: InvalidRowPolicy = InvalidRowPolicy.error
    timeframes: TimeframesConfig = field(default_factory=TimeframesConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    splits: SplitConfig = field(default_factory=SplitConfig)
    session_hours: float = 23.0
    trading_days: int = 252
    episode_length: int = 2000
    episode_sampling: EpisodeSampling = EpisodeSampling.random
    normalize: bool = True
    cache: bool = True
    export: str | None = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def problems(self) -> list[Problem]:
        out = check(
            self.episode_length >= 2, "episode_length", f"must be >= 2, got {self.episode_length}"
        )
        if self.source == Source.file:
            out += check(
                bool(self.path),
                "path",
                "expected the path of an OHLCV CSV or Parquet file (data.path=...)",
            )
        for name, what in (("path", "an OHLCV CSV or Parquet file"), ("export", "a .parquet file")):
            value = getattr(self, name)
            out += check(
                not value or not Path(value).is_dir(),
                name,
                f"{value} is a folder; expected {what}",
            )
        out += date_problems(self, ("start", "end"))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            out += [
                (
                    "timezone",
                    f"expected an IANA time zone like 'America/Chicago', got {self.timezone!r}",
                )
            ]
        return out

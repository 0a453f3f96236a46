"""Schema of the ``curriculum`` config group (appended with ``+curriculum=level0..level3|auto``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from grandmodel.config.base import Problem, check
from grandmodel.config.data import MARKET_CONDITIONS


@dataclass
class CurriculumLevel:
    """One difficulty level: which markets, how volatile, how noisy, how long the episodes."""

    market_conditions: list[str] = field(default_factory=lambda: ["all"])
    volatility_range: list[float] = field(default_factory=lambda: [0.05, 1.0])
    noise_level: float = 0.4
    episode_length: int = 2000

    def problems(self) -> list[Problem]:
        bad = [c for c in self.market_conditions if c not in MARKET_CONDITIONS]
        vr = self.volatility_range
        out = check(
            bool(self.market_conditions) and not bad,
            "market_conditions",
            f"expected values in {list(MARKET_CONDITIONS)}, got {self.market_conditions}",
        )
        out += check(
            len(vr) == 2 and 0 < vr[0] <= vr[1],
            "volatility_range",
            f"expected [low, high] with 0 < low <= high, got {vr}",
        )
        out += check(self.noise_level >= 0, "noise_level", f"must be >= 0, got {self.noise_level}")
        out += check(
            self.episode_length >= 2, "episode_length", f"must be >= 2, got {self.episode_length}"
        )
        return out


def default_levels() -> list[CurriculumLevel]:
    """The four default levels: trending → mixed → complex → full market complexity."""
    return [
        CurriculumLevel(["strong_trend"], [0.1, 0.3], 0.1, 500),
        CurriculumLevel(["trend", "sideways"], [0.2, 0.5], 0.2, 1000),
        CurriculumLevel(["trend", "sideways", "volatile"], [0.1, 0.8], 0.3, 1500),
        CurriculumLevel(["all"], [0.05, 1.0], 0.4, 2000),
    ]


@dataclass
class CurriculumConfig:
    """Start level, and the advancement rule: over the last ``window`` evaluation episode rewards,
    mean above ``advancement_threshold`` and std below ``stability_threshold``."""

    start_level: int = 0
    auto_advance: bool = True
    advancement_threshold: float = 0.7
    stability_threshold: float = 0.2
    window: int = 100
    levels: list[CurriculumLevel] = field(default_factory=default_levels)

    def problems(self) -> list[Problem]:
        out = check(bool(self.levels), "levels", "expected at least one level")
        out += check(
            0 <= self.start_level < max(len(self.levels), 1),
            "start_level",
            f"must be in [0, {len(self.levels) - 1}], got {self.start_level}",
        )
        out += check(self.window >= 1, "window", f"must be >= 1, got {self.window}")
        out += check(
            self.stability_threshold > 0,
            "stability_threshold",
            f"must be > 0, got {self.stability_threshold}",
        )
        return out

"""Training settings that only the prepared data can check (episode lengths against the train
split), verified right after the data is prepared and before any training or tracking starts."""

from __future__ import annotations

from grandmodel.config.root import RootConfig
from grandmodel.data.market_data import MarketData
from grandmodel.errors import DataError


def check_training_fits(rc: RootConfig, data: MarketData) -> None:
    """Every curriculum level the run can reach (its start level, and the later ones when it
    advances) has episodes that fit in the train split; ``data.episode_length`` is checked when
    the data is assembled. Raises one-line :class:`DataError` naming the key."""
    curriculum = rc.curriculum
    if curriculum is None:
        return
    steps = data.split_steps("train")
    bar = data.meta["timeframes"]["tactical"]
    last = len(curriculum.levels) if curriculum.auto_advance else curriculum.start_level + 1
    for index in range(curriculum.start_level, last):
        length = curriculum.levels[index].episode_length
        if length > steps:
            raise DataError(
                f"curriculum.levels.{index}.episode_length: {length} steps is longer than the train "
                f"split ({steps} decision steps of {bar} bars); expected at most {steps}: set "
                f"curriculum.levels.{index}.episode_length lower or use more data"
            )

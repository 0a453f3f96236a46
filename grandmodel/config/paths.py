"""Schema of the ``paths`` config group."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PathsConfig:
    """Project-relative locations; ``output_dir`` is the run's Hydra output directory."""

    root_dir: str = "."
    data_dir: str = "data"
    outputs_dir: str = "outputs"
    cache_dir: str = "outputs/cache"
    output_dir: str = "outputs/runs/api"

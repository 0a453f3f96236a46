"""Shared by the paper tests: the smoke market's base bars as a CSV and its batch tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from grandmodel.config import load_config, typed
from grandmodel.config.data import DataConfig
from grandmodel.data.pipeline import Tables, load_tables


@pytest.fixture(scope="session")
def smoke_tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tables, Path]:
    """The smoke config's synthetic market (batch pipeline tables) and its base bars as a CSV."""
    folder = tmp_path_factory.mktemp("paper_market")
    cfg = load_config(["experiment=smoke", f"paths.outputs_dir={folder}"])
    tables = load_tables(typed(cfg.data, DataConfig), folder / "cache")
    base = tables.frames["base"][["open", "high", "low", "close", "volume"]]
    path = folder / "bars.csv"
    base.rename_axis("timestamp").to_csv(path)
    return tables, path

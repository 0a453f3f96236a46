"""Shared by the paper tests: the smoke market's base bars as a CSV and its batch tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from grandmodel.config import load_config, typed
from grandmodel.config.data import DataConfig
from grandmodel.data.features import OBSERVATION
from grandmodel.data.pipeline import Tables, load_tables
from tests.deploy.helpers import run_module


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


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One smoke training run (PPO strategic, baseline tactical and risk: it trades) tracked in an
    MLflow SQLite store under its outputs folder, and its bundle. The strategic agent observes
    opt-in features beside the defaults (among them the HMM fitted on the training split, which the
    bundle carries), so the paper loop must compute those live too."""
    outputs = tmp_path_factory.mktemp("paper_bundle")
    run_dir = outputs / "runs" / "smoke"
    paths = [f"paths.outputs_dir={outputs}"]
    strategic = ",".join(
        (*OBSERVATION["strategic"], "momentum_12", "realized_vol_4", "regime_edge")
    )
    trained = run_module(
        "grandmodel.train", "experiment=smoke", "agent=ppo", *paths, f"paths.output_dir={run_dir}",
        f"data.features.strategic=[{strategic}]",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    export = run_module("grandmodel.export", f"run={run_dir}", "name=smoke", *paths)
    assert export.returncode == 0, export.stderr[-3000:]
    return run_dir, outputs / "exports" / "smoke"


@pytest.fixture(scope="session")
def bundle(trained: tuple[Path, Path]) -> Path:
    return trained[1]

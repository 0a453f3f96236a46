"""Shared fixtures: small ES-format files, an isolated outputs folder, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two test processes side by side (pytest-xdist): one torch thread each, and
    # in the commands they start, since a second intra-op thread on a shared core only costs
    # hand-offs (experiments/scale/README.md). Set before torch is imported.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# `make test` hands whole work units to its two processes (pytest-xdist). A unit is a test file, or
# a folder whose files share an expensive session fixture (one training run and its export), so that
# fixture is built once, not once per process. Units start in this order, the longest first (seconds
# of one process, `--durations=0` on 2 quiet cores, 2026-12-01), so that the two processes finish
# together instead of one running a long file alone at the end; the rest follow in file order.
SHARED_FIXTURE_FOLDERS = ("tests/deploy/", "tests/paper/")
LONGEST_FIRST = (
    "tests/training/test_train_cli.py",  # 300 s
    "tests/evaluation/test_evaluate_backtest.py",  # 260 s
    "tests/paper/",  # 220 s
    "tests/training/test_sweeps.py",  # 195 s
    "tests/tracking/test_tracking.py",  # 165 s
    "tests/deploy/",  # 150 s
    "tests/training/test_resume.py",  # 110 s
    "tests/training/test_cluster_sweep.py",  # 90 s
    "tests/ui/test_mlflow_ui.py",  # 80 s
    "tests/training/test_scale.py",  # 70 s
    "tests/training/test_phases.py",  # 60 s
    "tests/meta/test_meta_cli.py",  # 55 s (measured alone)
    "tests/markets/test_real_markets.py",  # 50 s
    "tests/evaluation/test_lean.py",
    "tests/training/test_ddp.py",  # 40 s
    "tests/training/test_leak_check.py",
    "tests/test_bad_input_corpus.py",  # 30 s
    "tests/env/test_lean_step.py",
    "tests/agents/test_learners.py",
    "tests/training/test_selection.py",  # 25 s
    "tests/training/test_stop.py",
)


def work_unit(nodeid: str) -> str:
    """The unit (see ``LONGEST_FIRST``) that the test ``nodeid`` (relative to the repo) belongs to."""
    path = nodeid.split("::", 1)[0]
    return next((f for f in SHARED_FIXTURE_FOLDERS if path.startswith(f)), path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {unit: i for i, unit in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(work_unit(item.nodeid), len(rank)))  # stable


@pytest.hookimpl(optionalhook=True)  # absent under -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """pytest-xdist's file-by-file scheduling over :func:`work_unit`s, in collection order (its
    ``xdist_group`` marks do not group under pytest 9, whose node ids ignore them)."""
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False
    return WorkUnits(config, log)


def es_bars(
    days: int = 12, seed: int = 0, start: str = "2023-01-02", vol: float = 3e-4
) -> pd.DataFrame:
    """One-minute ES-like bars (Sun–Fri 17:00–16:00 CT sessions), tick-rounded, seeded."""
    sessions, day = [], pd.Timestamp(start)
    while len(sessions) < days:
        if day.weekday() < 5:
            open_ = (day - pd.Timedelta(days=1)).replace(hour=17)
            sessions.append(pd.date_range(open_, periods=1380, freq="1min", tz="America/Chicago"))
        day += pd.Timedelta(days=1)
    index = sessions[0].append(sessions[1:]) if len(sessions) > 1 else sessions[0]
    rng = np.random.default_rng(seed)
    n = len(index)
    close = np.round(4000 * np.exp(np.cumsum(rng.normal(0, vol, n))) * 4) / 4
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) + 0.25 * rng.integers(0, 3, n)
    low = np.minimum(open_, close) - 0.25 * rng.integers(0, 3, n)
    volume = rng.integers(1, 500, n).astype(float)
    frame = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )
    frame.index.name = "timestamp"
    return frame


def write_csv(frame: pd.DataFrame, path: Path, stamp_format: str = "%Y-%m-%d %H:%M:%S") -> Path:
    out = frame.reset_index()
    out["timestamp"] = out["timestamp"].dt.strftime(stamp_format)
    out.to_csv(path, index=False)
    return path


@pytest.fixture
def es_csv(tmp_path: Path) -> Path:
    """A small valid ES one-minute CSV (12 trading days)."""
    return write_csv(es_bars(), tmp_path / "es.csv")


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    """An empty outputs folder for one test (runs, caches, MLflow store)."""
    folder = tmp_path / "outputs"
    folder.mkdir()
    return folder


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


CliRunner = Callable[..., CliResult]


@pytest.fixture
def cli(outputs: Path) -> CliRunner:
    """Run ``python -m <module> <overrides>`` as a user would, with outputs under the test's folder."""

    def run(
        module: str, *overrides: str, timeout: int = 600, extra: Sequence[str] = ()
    ) -> CliResult:
        args = [sys.executable, "-m", module, f"paths.outputs_dir={outputs}", *overrides, *extra]
        env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
        proc = subprocess.run(
            args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run

"""Helpers of the deploy tests: running the CLIs as a user does, and the shared exported run."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_module(module: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` from the repository root, as a user runs it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@dataclass
class Exported:
    outputs: Path  # holds mlflow.db, runs/, exports/
    run_dir: Path
    run_id: str
    bundle: Path
    stdout: str

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.outputs}/mlflow.db"

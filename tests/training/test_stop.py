"""SIGTERM stops a training run promptly and cleanly: one line saying how to resume, a non-zero exit,
the tracked run KILLED, and last.ckpt whole (the exact resume point)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from grandmodel.checkpoints import load_checkpoint
from tests.conftest import ROOT


def test_sigterm_stops_training_cleanly(outputs: Path) -> None:
    run_dir = outputs / "runs" / "stopped"
    args = [sys.executable, "-m", "grandmodel.train", "experiment=smoke", "agent=dqn"]
    args += [f"paths.outputs_dir={outputs}", f"hydra.run.dir={run_dir}"]
    args += ["trainer.total_frames=10000000"]  # hours: only a signal ends it in this test
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        last = run_dir / "checkpoints" / "last.ckpt"
        deadline = time.monotonic() + 600
        while not last.is_file():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no evaluation within 10 minutes"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, stderr = proc.communicate(timeout=600)
        waited = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "SIGTERM" in lines[0], stderr[-2000:]
    assert f"python -m grandmodel.train resume={run_dir}" in lines[0]
    assert "Traceback" not in stderr
    assert waited < 120, f"took {waited:.0f} s to stop"  # a whole run would take hours
    checkpoint = load_checkpoint(last)
    assert checkpoint["grandmodel"]["source"]["frames"] > 0
    client = MlflowClient(f"sqlite:///{outputs}/mlflow.db")
    run = client.get_run((run_dir / "mlflow_run_id").read_text())
    assert run.info.status == "KILLED"

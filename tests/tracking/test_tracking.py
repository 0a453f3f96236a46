"""The tracking seam: a store that dies mid-run never stops training; the local record keeps every
metric and ``tracking sync`` replays it; TensorBoard holds the same metrics; only
``grandmodel/tracking`` imports mlflow."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from grandmodel.tracking import LocalRecord
from tests.conftest import ROOT

DEADLINE = 240.0  # generous: the machine may be busy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(condition, what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _server(db: Path, artifacts: Path, port: int) -> subprocess.Popen:
    mlflow = Path(sys.executable).parent / "mlflow"
    args = [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{db}", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--workers", "1", "--artifacts-destination", str(artifacts)]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )

    def up() -> bool:
        assert proc.poll() is None, "mlflow server exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    _wait(up, "the mlflow server")
    _wait(lambda: _answers(f"http://127.0.0.1:{port}"), "the mlflow server to answer")
    return proc


def _stop(server: subprocess.Popen) -> None:
    """Kill the server and its workers (``mlflow server`` runs them as children)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def _answers(uri: str) -> bool:
    try:
        MlflowClient(uri).search_experiments(max_results=1)
        return True
    except Exception:
        return False


def test_a_server_killed_mid_run_leaves_training_whole_and_sync_replays(
    outputs: Path, tmp_path: Path
) -> None:
    db, artifacts, port = tmp_path / "store.db", tmp_path / "artifacts", _free_port()
    uri = f"http://127.0.0.1:{port}"
    server = _server(db, artifacts, port)
    run_dir = outputs / "runs" / "outage"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    args = [sys.executable, "-m", "grandmodel.train", "experiment=smoke", "agent=dqn"]
    args += [f"paths.outputs_dir={outputs}", f"hydra.run.dir={run_dir}"]
    args += [f"logger.tracking_uri={uri}", "logger.retry_seconds=1", "trainer.total_frames=1024"]
    training = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        # the run exists in the store as soon as training opens it: then the server goes away
        _wait(lambda: (run_dir / "mlflow_run_id").is_file(), "the run to reach the store")
        _stop(server)
        _, stderr = training.communicate(timeout=900)
    finally:
        training.kill()
        _stop(server)
    assert training.returncode == 0, stderr[-3000:]
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert warnings and uri in warnings[0] and "record.jsonl" in warnings[0], stderr[-2000:]
    assert len([w for w in warnings if "training goes on" in w]) == 1, (
        "one warning, not one per call"
    )
    assert "Traceback" not in stderr

    record = LocalRecord(run_dir)
    keys = {p["key"] for p in record.metrics()}
    assert {"val/sharpe", "final/val/sharpe", "final/test/sharpe", "risk/loss"} <= keys
    run_id = (run_dir / "mlflow_run_id").read_text()

    server = _server(db, artifacts, port)  # the store is back
    try:
        client = MlflowClient(uri)
        assert client.get_run(run_id).info.status == "RUNNING"
        assert "final/val/sharpe" not in client.get_run(run_id).data.metrics
        sync = subprocess.run(
            [sys.executable, "-m", "grandmodel.tracking", "sync", f"run={run_dir}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert sync.returncode == 0, sync.stderr[-2000:]
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        stored = {(m, p.step, p.value) for m in keys for p in client.get_metric_history(run_id, m)}
        local = {
            (p["key"], p["step"], p["value"]) for p in record.metrics() if p["value"] == p["value"]
        }
        assert local <= stored, sorted(local - stored)[:5]
        assert {"evaluation.md", "config.yaml"} <= {a.path for a in client.list_artifacts(run_id)}
        again = subprocess.run(
            [sys.executable, "-m", "grandmodel.tracking", "sync", f"run={run_dir}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert again.returncode == 0 and "(0 of" in again.stdout, "a second sync has nothing to do"
    finally:
        _stop(server)


def test_tensorboard_beside_mlflow_holds_the_same_metrics(cli, outputs: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = cli("grandmodel.train", "experiment=smoke", "agent=ppo", "logger=[mlflow,tensorboard]")
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (outputs / "runs").iterdir()
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    client = MlflowClient(f"sqlite:///{outputs}/mlflow.db")
    run_id = (run_dir / "mlflow_run_id").read_text()
    for key in ("val/sharpe", "strategic/loss_objective", "train/episode_reward/strategic"):
        board = sorted((e.step, e.value) for e in events.Scalars(key))  # float32 in TensorBoard
        store = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        assert board and [s for s, _ in board] == [s for s, _ in store], key
        assert [v for _, v in board] == pytest.approx([v for _, v in store], rel=1e-6), key


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ([], "command"),
        (["sync"], "run"),
        (["sync", "run=/no/such/folder"], "run=/no/such/folder"),
        (["push", "run=x"], "command"),
    ],
)
def test_sync_bad_input_is_one_line(args: list[str], named: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "grandmodel.tracking", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {named}"), result.stderr


def test_only_the_tracking_package_imports_mlflow() -> None:
    offenders = []
    for path in (ROOT / "grandmodel").rglob("*.py"):
        if path.parts[len(ROOT.parts) + 1] == "tracking":
            continue
        text = path.read_text()
        if "import mlflow" in text or "from mlflow" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []

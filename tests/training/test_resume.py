"""Resume keeps the run's promises: killed with SIGKILL at several points (one of them halfway
through writing a checkpoint) and resumed each time, a seeded run ends exactly as the
uninterrupted one — same final weights, same best checkpoint, same printed and tracked final
metrics, same returned metric — in one run folder and one MLflow run, FINISHED."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import torch
from mlflow.tracking import MlflowClient

from grandmodel.checkpoints import load_checkpoint

COMMON = ("experiment=smoke", "agent=marl", "trainer.total_frames=1024")


def _returned(stdout: str) -> str:
    """The optimised metric as the run prints (and returns) it."""
    return re.search(r"val/sharpe = (\S+);", stdout).group(1)


def _final_metrics(client: MlflowClient, run_id: str) -> dict[str, float]:
    metrics = client.get_run(run_id).data.metrics
    return {k: v for k, v in metrics.items() if k.startswith("final/")}


def test_sigkill_at_three_points_then_resume_equals_uninterrupted(cli, outputs: Path) -> None:
    straight_dir, killed_dir = outputs / "runs" / "straight", outputs / "runs" / "killed"
    straight = cli("grandmodel.train", *COMMON, f"hydra.run.dir={straight_dir}")
    assert straight.returncode == 0, straight.stderr[-3000:]

    # 1: killed after the 3rd batch (mid-epoch, one checkpoint written)
    first = cli(
        "grandmodel.train", *COMMON, f"hydra.run.dir={killed_dir}", "faults.kill_at_batch=3"
    )
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    assert (killed_dir / "checkpoints" / "last.ckpt").is_file()
    # 2: resumed, killed halfway through its first checkpoint write
    second = cli("grandmodel.train", f"resume={killed_dir}", "faults.kill_during_save=1")
    assert second.returncode == -signal.SIGKILL, second.stderr[-2000:]
    assert list((killed_dir / "checkpoints").glob(".*.tmp")), "the drill left a half-written file"
    load_checkpoint(killed_dir / "checkpoints" / "last.ckpt")  # last.ckpt is still whole
    # 3: resumed, killed after the 6th batch
    third = cli("grandmodel.train", f"resume={killed_dir}", "faults.kill_at_batch=6")
    assert third.returncode == -signal.SIGKILL, third.stderr[-2000:]
    # resumed to the end
    last = cli("grandmodel.train", f"resume={killed_dir}")
    assert last.returncode == 0, last.stderr[-3000:]
    assert not list((killed_dir / "checkpoints").glob(".*.tmp"))
    assert sorted(p.name for p in (outputs / "runs").iterdir()) == ["killed", "straight"]

    a = load_checkpoint(straight_dir / "checkpoints" / "last.ckpt")
    b = load_checkpoint(killed_dir / "checkpoints" / "last.ckpt")
    assert a["grandmodel"]["source"]["frames"] == b["grandmodel"]["source"]["frames"] == 1024
    learned = [k for k in a["state_dict"] if k.startswith("learners.")]
    assert {k.split(".")[1] for k in learned} == {"strategic", "tactical", "risk"}
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key

    best_a = sorted(p.name for p in (straight_dir / "checkpoints").glob("best-*.ckpt"))
    best_b = sorted(p.name for p in (killed_dir / "checkpoints").glob("best-*.ckpt"))
    assert best_a == best_b and len(best_a) == 1
    wa = load_checkpoint(straight_dir / "checkpoints" / best_a[0])["state_dict"]
    wb = load_checkpoint(killed_dir / "checkpoints" / best_b[0])["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)

    table = lambda out: out[out.index("Evaluation of the") : out.index("val/sharpe =")]  # noqa: E731
    assert table(straight.stdout) == table(last.stdout)
    assert _returned(straight.stdout) == _returned(last.stdout)

    client = MlflowClient(f"sqlite:///{outputs}/mlflow.db")
    runs = {
        r.info.run_name: r
        for r in client.search_runs([client.get_experiment_by_name("grandmodel").experiment_id])
    }
    assert sorted(runs) == ["killed", "straight"], "the resumed sessions continued one MLflow run"
    assert runs["killed"].info.status == "FINISHED"
    assert (killed_dir / "mlflow_run_id").read_text() == runs["killed"].info.run_id
    final_a = _final_metrics(client, runs["straight"].info.run_id)
    final_b = _final_metrics(client, runs["killed"].info.run_id)
    assert final_a and final_a == final_b


def test_resuming_from_a_weights_only_checkpoint_is_refused(cli, outputs: Path) -> None:
    run = cli("grandmodel.train", "experiment=smoke", "agent=dqn", "logger=csv")
    assert run.returncode == 0, run.stderr[-3000:]
    best = next(outputs.glob("runs/*/checkpoints/best-*.ckpt"))
    again = cli("grandmodel.train", "experiment=smoke", "agent=dqn", f"ckpt_path={best}")
    assert again.returncode == 2
    lines = again.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: ckpt_path={best}: holds weights only"), again.stderr[
        -2000:
    ]
    assert "Traceback" not in again.stderr

"""Multi-process collection on TorchRL's collectors: a run with two workers trains, and resumes
(learners, optimisers, buffers and counters; the workers' episodes restart, as documented)."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from grandmodel.checkpoints import load_checkpoint

MULTI = ("experiment=smoke", "trainer.collector=multi_sync", "trainer.collector_workers=2")


def test_multi_sync_with_two_workers_trains_and_resumes(cli, outputs: Path) -> None:
    run_dir = outputs / "runs" / "multi"
    first = cli(
        "grandmodel.train", *MULTI, f"hydra.run.dir={run_dir}", "trainer.stop_after_frames=256"
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert (
        load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["grandmodel"]["source"]["frames"]
        == 256
    )
    again = cli("grandmodel.train", f"resume={run_dir}")
    assert again.returncode == 0, again.stderr[-3000:]
    last = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert last["grandmodel"]["source"]["frames"] == 512
    client = MlflowClient(f"sqlite:///{outputs}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("grandmodel").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["trainer.collector"] == "multi_sync"
    frames = [m.step for m in client.get_metric_history(run.info.run_id, "val/sharpe")]
    assert frames == [256, 512]

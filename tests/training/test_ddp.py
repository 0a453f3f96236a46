"""Data-parallel training on Lightning's DDP strategy (gloo on CPU): two processes, each collecting
from its own env shard, train one run in one folder, tracked once, with the global frame budget;
a bad strategy is one line before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from grandmodel.checkpoints import load_checkpoint

DDP = ("experiment=smoke", "trainer.strategy=ddp", "trainer.devices=2")


def test_two_ddp_processes_train_one_run(cli, outputs: Path) -> None:
    run_dir = outputs / "runs" / "ddp"
    result = cli("grandmodel.train", *DDP, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout + result.stderr
    assert "on 2 data-parallel processes" in said
    assert "weights identical on all 2 processes" in said  # the gradients were averaged

    # one run folder (rank 1 ran in it, writing only its log), one MLflow run, FINISHED
    assert [p.name for p in (outputs / "runs").iterdir()] == ["ddp"]
    client = MlflowClient(f"sqlite:///{outputs}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("grandmodel").experiment_id])
    assert run.info.status == "FINISHED"
    assert (
        run.data.params["trainer.strategy"] == "ddp" and run.data.params["trainer.devices"] == "2"
    )
    record = [json.loads(line) for line in (run_dir / "tracking" / "record.jsonl").open()]
    assert [op["op"] for op in record].count("start") == 1

    # total_frames is the global budget: 2 ranks × 4 batches × 64 frames = 512, evaluated twice
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert len(names) == 2 and names[0].startswith("best-epoch") and names[1] == "last.ckpt"
    source = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["grandmodel"]["source"]
    assert (source["frames"], source["batches"]) == (512, 4)
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/sharpe")]
    assert steps == [256, 512]
    assert "final/test/sharpe" in run.data.metrics


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ("trainer.strategy=ddp", "trainer.collector=multi_sync", "trainer.collector_workers=2"),
            "error: trainer.strategy: ddp runs one collector per process, not collector=multi_sync;"
            " expected trainer.collector=single with strategy=ddp",
        ),
        (
            ("trainer.devices=2",),
            "error: trainer.strategy: auto runs one process, not devices=2 × num_nodes=1; "
            "expected trainer.strategy=ddp for several processes",
        ),
    ],
)
def test_a_bad_strategy_is_one_line_before_any_work(
    cli, outputs: Path, overrides: tuple[str, ...], message: str
) -> None:
    result = cli("grandmodel.train", "experiment=smoke", *overrides)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [message]
    assert not list(outputs.iterdir())

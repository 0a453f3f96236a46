"""``python -m grandmodel.train`` as a user runs it: every agent, CSV data, MLflow contents, guards."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import es_bars, write_csv


def _runs(outputs: Path):
    client = MlflowClient(f"sqlite:///{outputs}/mlflow.db")
    experiment = client.get_experiment_by_name("grandmodel")
    return client, client.search_runs([experiment.experiment_id]) if experiment else []


@pytest.mark.parametrize("agent", ["marl", "ppo", "sac", "dqn"])
def test_smoke_training_for_each_agent_is_tracked_in_mlflow(cli, outputs: Path, agent: str) -> None:
    result = cli("grandmodel.train", "experiment=smoke", f"agent={agent}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Evaluation of the" in result.stdout and "MLflow run" in result.stdout
    client, runs = _runs(outputs)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    (folder,) = (outputs / "runs").iterdir()
    assert run.info.run_name == folder.name, "runs are named after their folder, not randomly"
    assert run.data.params["agent.name"] == agent and run.data.params["seed"] == "0"
    assert {"git_commit", "data_hash", "seed"} <= set(run.data.tags)
    learners = {
        "marl": ["strategic", "tactical", "risk"],
        "ppo": ["strategic"],
        "sac": ["tactical"],
        "dqn": ["risk"],
    }[agent]
    metrics = set(run.data.metrics)
    for role in learners:
        assert any(k.startswith(f"{role}/") for k in metrics), (role, sorted(metrics))
    assert {"val/sharpe", "val/max_drawdown", "val/mean_reward", "final/test/sharpe"} <= metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "config.yaml",
        "learning_curves.png",
        "norm_stats.json",
        "evaluation.md",
        "checkpoints",
    } <= artifacts
    assert run.info.run_id in result.stdout


def test_training_on_a_csv_file(cli, outputs: Path, tmp_path: Path) -> None:
    path = write_csv(es_bars(days=14, vol=5e-4), tmp_path / "es_bars.csv")
    result = cli(
        "grandmodel.train", "experiment=smoke", "data=csv", f"data.path={path}", "agent=dqn"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _, runs = _runs(outputs)
    assert runs[0].data.params["data.path"] == str(path) and "val/sharpe" in runs[0].data.metrics


def test_a_nan_in_a_batch_stops_cleanly_and_keeps_the_last_good_checkpoint(
    cli, outputs: Path
) -> None:
    result = cli("grandmodel.train", "experiment=smoke", "debug=nan_batch")
    assert result.returncode == 3, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "training stopped" in lines[0] and "non-finite" in lines[0], (
        result.stderr[-2000:]
    )
    assert "Traceback" not in result.stderr
    last = Path(lines[0].split("last good checkpoint: ", 1)[1].strip())
    assert last.is_file()
    _, runs = _runs(outputs)
    assert runs[0].info.status == "FAILED"


def test_unreachable_tracking_store_falls_back_to_a_local_record(cli, outputs: Path) -> None:
    result = cli(
        "grandmodel.train",
        "experiment=smoke",
        "agent=dqn",
        "logger.tracking_uri=http://127.0.0.1:9",
        "logger.connect_timeout=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "http://127.0.0.1:9" in warnings[0], result.stderr[-2000:]
    (record,) = outputs.glob("runs/*/tracking/record.jsonl")
    assert '"final/test/sharpe"' in record.read_text()


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_tampered_checkpoint_is_refused_without_running_code(cli, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = marker
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(pickle.dumps({"state_dict": exploit}))
    result = cli("grandmodel.train", "experiment=smoke", f"ckpt_path={bad}")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: {bad}: not a loadable GrandModel checkpoint")
    )
    assert not marker.exists()


def test_a_frozen_checkpoint_or_run_folder_drives_a_role_that_does_not_learn(
    cli, outputs: Path
) -> None:
    """``agent.frozen.<role>`` takes a checkpoint file or a run folder (its best checkpoint, as
    ``run=`` does: the stages of a staged training chain by folder); both drive the role alike."""
    first = cli(
        "grandmodel.train",
        "experiment=smoke",
        "agent=ppo",
        "hydra.run.dir=" + str(outputs / "runs" / "stage1"),
    )
    assert first.returncode == 0, first.stderr[-3000:]
    folder = outputs / "runs" / "stage1"
    best = sorted((folder / "checkpoints").glob("best-*.ckpt"))[-1]
    reports = []
    for frozen, name in ((best, "by-file"), (folder, "by-folder")):
        run = outputs / "runs" / name
        result = cli(
            "grandmodel.train", "experiment=smoke", "agent=sac", f"agent.frozen.strategic={frozen}",
            f"hydra.run.dir={run}",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        reports.append(json.loads((run / "final.json").read_text()))
    assert reports[0] == reports[1]
    wrong = cli("grandmodel.train", "experiment=smoke", "agent=sac", f"agent.frozen.risk={folder}")
    assert wrong.returncode == 2 and "the risk agent did not learn in that run" in wrong.stderr
    empty = outputs / "runs" / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    missing = cli(
        "grandmodel.train", "experiment=smoke", "agent=sac", f"agent.frozen.strategic={empty}"
    )
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == (
        f"error: agent.frozen.strategic={empty}: no checkpoint in {empty / 'checkpoints'}; "
        "expected best-*.ckpt or last.ckpt"
    )

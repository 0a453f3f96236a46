"""A sweep on a cluster launcher (submitit, here its local executor) reports every trial to one
tracking store, and a sweep that died is continued: finished trials are not run again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install '.[cluster]'")


def _sweep(outputs: Path, trials: int) -> subprocess.CompletedProcess:
    args = [
        sys.executable, "-m", "grandmodel.train", "--multirun", "experiment=smoke",
        "hparams_search=strategic_optuna", f"hydra.sweeper.n_trials={trials}",
        "hydra/launcher=submitit_local", f"paths.outputs_dir={outputs}",
        f"hydra.sweep.dir={outputs / 'multiruns' / 'cluster'}",
    ]  # fmt: skip
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=1200)


def _children(outputs: Path) -> dict[str, object]:
    client = MlflowClient(f"sqlite:///{outputs}/mlflow.db")
    experiment = client.get_experiment_by_name("grandmodel").experiment_id
    (parent,) = client.search_runs([experiment], "tags.kind = 'sweep'")
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    return parent, {c.info.run_name: c for c in children}


def test_submitit_sweep_reports_to_one_store_and_continues_without_rerunning(outputs: Path) -> None:
    first = _sweep(outputs, 2)
    assert first.returncode == 0, first.stderr[-3000:]
    parent, before = _children(outputs)
    assert sorted(before) == ["trial-0", "trial-1"]
    assert all(run.info.status == "FINISHED" for run in before.values())
    assert all("sweep/objective" in run.data.metrics for run in before.values())

    again = _sweep(outputs, 3)  # the same sweep folder: trials 0 and 1 are already done
    assert again.returncode == 0, again.stderr[-3000:]
    parent_again, after = _children(outputs)
    assert parent_again.info.run_id == parent.info.run_id and parent_again.info.status == "FINISHED"
    assert sorted(after) == ["trial-0", "trial-1", "trial-2"]
    for name in ("trial-0", "trial-1"):  # the same runs, not trained again
        assert after[name].info.run_id == before[name].info.run_id
        assert after[name].info.end_time == before[name].info.end_time
        history = MlflowClient(f"sqlite:///{outputs}/mlflow.db").get_metric_history(
            after[name].info.run_id, "val/sharpe"
        )
        assert len(history) == len({m.step for m in history}), "no evaluation was logged twice"
    assert after["trial-2"].info.status == "FINISHED"
    trials = sorted((outputs / "multiruns" / "cluster" / "trials").glob("*.json"))
    assert len(trials) == 3

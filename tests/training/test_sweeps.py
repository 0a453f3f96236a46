"""``--multirun`` sweeps (Optuna and grids) in MLflow, the curriculum, multi-objective and Pareto."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import torch
from mlflow.tracking import MlflowClient

import grandmodel
from grandmodel.config.curriculum import CurriculumLevel
from grandmodel.env.rewards import RewardWeights
from grandmodel.evaluation.front import non_dominated
from tests.conftest import ROOT


def _client(outputs: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{outputs}/mlflow.db")


def _runs(outputs: Path, query: str = ""):
    client = _client(outputs)
    experiment = client.get_experiment_by_name("grandmodel")
    return client.search_runs([experiment.experiment_id], filter_string=query) if experiment else []


@pytest.fixture(scope="module")
def optuna_sweep(tmp_path_factory):
    outputs = tmp_path_factory.mktemp("sweep")
    args = [
        sys.executable, "-m", "grandmodel.train", "--multirun", "experiment=smoke", "hparams_search=strategic_optuna",
        "hydra.sweeper.n_trials=3", f"paths.outputs_dir={outputs}",
    ]  # fmt: skip
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return outputs


def test_an_optuna_sweep_is_one_parent_run_with_a_child_per_trial(optuna_sweep: Path) -> None:
    (parent,) = _runs(optuna_sweep, "tags.kind = 'sweep'")
    children = _runs(optuna_sweep, f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 3
    assert sorted(child.info.run_name for child in children) == ["trial-0", "trial-1", "trial-2"]
    for child in children:
        assert child.data.params["agent.name"] == "ppo"
        assert "agent.strategic.lr" in child.data.params and "val/sharpe" in child.data.metrics
    lrs = {child.data.params["agent.strategic.lr"] for child in children}
    assert len(lrs) == 3, "each trial sampled its own learning rate"
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["n_trials"] == 3 and "best_value" in parent.data.metrics
    assert "best.agent.strategic.lr" in parent.data.params
    artifacts = {a.path for a in _client(optuna_sweep).list_artifacts(parent.info.run_id)}
    assert {"trials.csv", "param_importance.csv"} <= artifacts


def test_mlflow_server_serves_the_sweep_over_rest(optuna_sweep: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen(
        [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{optuna_sweep}/mlflow.db", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240  # a busy machine: the server may listen before it answers
        while True:
            assert server.poll() is None, "mlflow server exited"
            try:
                if requests.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # refused, or accepted but not answered yet
                pass
            assert time.monotonic() < deadline, "mlflow server did not answer in 240 s"
            time.sleep(0.5)
        experiment = requests.get(
            f"{base}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": "grandmodel"},
            timeout=10,
        ).json()
        experiment_id = experiment["experiment"]["experiment_id"]
        body = {"experiment_ids": [experiment_id], "filter": "tags.kind = 'sweep'"}
        sweeps = requests.post(f"{base}/api/2.0/mlflow/runs/search", json=body, timeout=10).json()[
            "runs"
        ]
        assert len(sweeps) == 1
        parent = sweeps[0]["info"]["run_id"]
        body = {
            "experiment_ids": [experiment_id],
            "filter": f"tags.mlflow.parentRunId = '{parent}'",
        }
        assert (
            len(
                requests.post(f"{base}/api/2.0/mlflow/runs/search", json=body, timeout=10).json()[
                    "runs"
                ]
            )
            == 3
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_pareto_cli_reads_the_runs(cli, optuna_sweep: Path) -> None:
    result = cli(
        "grandmodel.pareto",
        "mlflow_experiment=grandmodel",
        "metrics=[final/val/sharpe,final/val/max_drawdown]",
        extra=[f"paths.outputs_dir={optuna_sweep}"],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "runs on the front" in result.stdout
    assert next(optuna_sweep.glob("runs/*_pareto/pareto_front.png")).stat().st_size > 0


def test_a_pareto_sweep_front_is_non_dominated(tmp_path: Path) -> None:
    args = [
        sys.executable, "-m", "grandmodel.train", "--multirun", "experiment=smoke", "hparams_search=pareto",
        "hydra.sweeper.n_trials=4", "hydra.sweeper.sampler.population_size=4", "trainer.total_frames=1024",
        "agent.strategic.entropy_coeff=0.2", f"paths.outputs_dir={tmp_path}",
    ]  # fmt: skip
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "multiruns").iterdir()
    trials = pd.read_csv(sweep / "trials.csv").dropna(subset=["val/sharpe", "val/max_drawdown"])
    front = pd.read_csv(sweep / "pareto_front.csv")
    assert len(front) >= 1 and (sweep / "pareto_front.png").is_file()
    points = trials[["val/sharpe", "val/max_drawdown"]].to_numpy()
    for sharpe, drawdown in front[["val/sharpe", "val/max_drawdown"]].to_numpy():
        dominated = (
            (points[:, 0] >= sharpe)
            & (points[:, 1] <= drawdown)
            & ((points[:, 0] > sharpe) | (points[:, 1] < drawdown))
        )
        assert not dominated.any()


def test_non_dominated_on_a_known_set() -> None:
    points = np.array([[1.0, 0.5], [2.0, 0.6], [0.5, 0.1], [1.5, 0.7], [2.0, 0.9], [np.nan, 0.0]])
    assert non_dominated(points, ["max", "min"]).tolist() == [True, True, True, False, False, False]


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    args = [
        sys.executable, "-m", "grandmodel.train", "--multirun", "experiment=smoke", "agent=dqn",
        "data.episode_length=100000,32", f"paths.outputs_dir={tmp_path}",
    ]  # fmt: skip
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "error: trial failed:" in proc.stderr and "longer than the train split" in proc.stderr
    (parent,) = _runs(tmp_path, "tags.kind = 'sweep'")
    states = {
        r.data.params.get("data.episode_length"): r.info.status
        for r in _runs(tmp_path, f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    }
    assert states == {"100000": "FAILED", "32": "FINISHED"}  # the trial after the failed one ran
    assert parent.data.metrics["n_failed"] == 1


def test_an_unknown_key_in_the_search_space_fails_before_the_first_trial(tmp_path: Path) -> None:
    args = [
        sys.executable, "-m", "grandmodel.train", "--multirun", "experiment=smoke", "hparams_search=strategic_optuna",
        "+hydra.sweeper.params={agent.strategic.lrr:'interval(0.1,0.2)'}", f"paths.outputs_dir={tmp_path}",
    ]  # fmt: skip
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().splitlines()[-1]
        == "error: hydra.sweeper.params: unknown config key 'agent.strategic.lrr'; expected a key of the composed config"
    )
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("trials/*.json"))


def test_curriculum_starts_at_the_chosen_level_and_advances(cli, outputs: Path) -> None:
    result = cli(
        "grandmodel.train", "experiment=smoke", "+curriculum=level2", "curriculum.advancement_threshold=-1000",
        "curriculum.stability_threshold=1000", "curriculum.window=1", "curriculum.levels.2.episode_length=64",
        "curriculum.levels.3.episode_length=64",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = _runs(outputs)
    levels = [
        m.value
        for m in sorted(
            _client(outputs).get_metric_history(run.info.run_id, "curriculum/level"),
            key=lambda m: m.step,
        )
    ]
    assert levels[0] == 2 and levels[-1] == 3


def test_curriculum_level_sets_the_synthetic_market(tmp_path: Path) -> None:
    cfg = grandmodel.load_config(
        ["experiment=smoke", f"paths.outputs_dir={tmp_path}", "data.synthetic.days=20"]
    )
    env = grandmodel.build_env(cfg)
    env.set_level(CurriculumLevel(["sideways"], [0.2, 0.3], 0.1, 64))
    assert set(env.data.regime.unique().tolist()) == {2}  # only the sideways regime
    env.set_level(CurriculumLevel(["strong_trend"], [0.1, 0.3], 0.1, 100))
    assert set(env.data.regime.unique().tolist()) <= {0, 1}
    env.reset()
    assert bool((env.state["end"] - env.state["ptr"] == 100).all())


def test_multi_objective_reward_weights_follow_the_seed() -> None:
    cfg = grandmodel.load_config(
        ["reward=multi_objective", "reward.objective_weights=[1.0,0.5,0.2,2.0]"]
    )
    weights = RewardWeights.from_config(cfg.reward, torch.device("cpu"))
    # terms: profit, turnover, risk, drawdown, sharpe — risk and drawdown enter with a minus sign
    torch.testing.assert_close(
        weights.team, torch.tensor([1.0, -0.0, -0.5, -2.0, 0.2], dtype=torch.float64)
    )

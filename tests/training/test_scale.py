"""Multi-process collection on TorchRL's collectors: a run with two workers trains, and resumes
(learners, optimisers, buffers and counters; the workers' episodes restart, as documented), and
makes as many off-policy gradient steps for its frames as one collector does."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from grandmodel.checkpoints import load_checkpoint

MULTI = ("experiment=smoke", "trainer.collector=multi_sync", "trainer.collector_workers=2")


def _adam_steps(run_dir: Path) -> tuple[int, list[int]]:
    """Frames collected, and the step count of every optimiser that has stepped."""
    last = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    steps = [
        int(next(iter(o["state"].values()))["step"]) for o in last["optimizer_states"] if o["state"]
    ]
    return last["grandmodel"]["source"]["frames"], steps


def test_multi_sync_with_two_workers_trains_resumes_and_steps_as_one_collector(
    cli, outputs: Path
) -> None:
    """Stopped after 256 frames, a two-worker run has made the gradient steps of a one-collector
    run (a worker batch is [2 · n_envs, T / 2]: the update-to-data ratio counts its T env steps);
    resumed, it ends as one run with an evaluation at each 256 frames."""
    steps = {}
    for kind, extra in (("single", ()), ("multi", MULTI[1:])):
        run_dir = outputs / "runs" / kind
        done = cli(
            "grandmodel.train", "experiment=smoke", "agent.tactical.gradient_steps=1", *extra,
            f"hydra.run.dir={run_dir}", "trainer.stop_after_frames=256",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        steps[kind] = _adam_steps(run_dir)
    assert steps["multi"] == steps["single"]
    # PPO's optimiser, then SAC's actor, critic and temperature, then the DQN's; SAC steps once per
    # update, one update per step of the 4 envs (gradient_steps=1) once its buffer is past
    # min_size_to_train, which the first batch of 32 steps is
    frames, counts = steps["single"]
    assert frames == 256 and len(counts) == 5 and counts[1:4] == [frames // 4] * 3, steps

    run_dir = outputs / "runs" / "multi"
    again = cli("grandmodel.train", f"resume={run_dir}")
    assert again.returncode == 0, again.stderr[-3000:]
    last = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert last["grandmodel"]["source"]["frames"] == 512
    client = MlflowClient(f"sqlite:///{outputs}/mlflow.db")
    experiment = client.get_experiment_by_name("grandmodel").experiment_id
    (run,) = client.search_runs([experiment], "params.`trainer.collector` = 'multi_sync'")
    assert run.info.status == "FINISHED"
    frames = [m.step for m in client.get_metric_history(run.info.run_id, "val/sharpe")]
    assert frames == [256, 512]

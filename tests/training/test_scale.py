"""Multi-process collection on TorchRL's collectors: a run with two workers trains, and resumes
(learners, optimisers, buffers and counters; the workers' episodes restart, as documented), and
makes as many off-policy gradient steps for its frames as one collector does."""

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


def _adam_steps(run_dir: Path) -> tuple[int, list[int]]:
    """Frames collected, and the step count of every optimiser that has stepped."""
    last = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    steps = [
        int(next(iter(o["state"].values()))["step"]) for o in last["optimizer_states"] if o["state"]
    ]
    return last["grandmodel"]["source"]["frames"], steps


def test_two_workers_make_the_gradient_steps_of_one_collector(cli, outputs: Path) -> None:
    """A worker batch is [2 · n_envs, T / 2]: the update-to-data ratio counts its T env steps."""
    steps = {}
    for kind, extra in (("single", ()), ("multi", MULTI[1:])):
        run_dir = outputs / "runs" / f"sac-{kind}"
        done = cli(
            "grandmodel.train",
            "experiment=smoke",
            "agent=sac",
            "agent.tactical.gradient_steps=1",
            *extra,
            f"hydra.run.dir={run_dir}",
            "trainer.stop_after_frames=384",
        )
        assert done.returncode == 0, done.stderr[-3000:]
        steps[kind] = _adam_steps(run_dir)
    assert steps["multi"] == steps["single"]
    # SAC's actor, critic and temperature step once per update, one update per step of the 4 envs
    # (gradient_steps=1); the buffer is past min_size_to_train after the first batch of 32 steps
    frames, counts = steps["single"]
    assert len(counts) == 3 and all(c == frames // 4 for c in counts), steps

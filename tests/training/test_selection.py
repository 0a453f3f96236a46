"""Checkpoint selection (``trainer.selection``): the kept best checkpoint is the eligible validation
walk with the best score, and a run where no walk is eligible says so."""

from __future__ import annotations

import math
from pathlib import Path

from grandmodel.checkpoints import load_checkpoint

SMALL = [
    "experiment=smoke",
    "agent=ppo",  # tactical and risk by their baselines: the policy holds positions from the start
    "logger=csv",
    "trainer.total_frames=1024",
    "trainer.eval_every_frames=256",
]


def _selection(run: Path) -> tuple[list[dict], dict]:
    """The run's validation history and the best-checkpoint callback's state."""
    ckpt = load_checkpoint(run / "checkpoints" / "last.ckpt")
    history = [h for h in ckpt["grandmodel"]["history"] if "val/sharpe_lcb" in h]
    states = [v for k, v in ckpt["callbacks"].items() if "'monitor': 'val/selection'" in k]
    assert len(states) == 1, list(ckpt["callbacks"])
    return history, states[0]


def test_the_best_checkpoint_has_the_best_eligible_score(cli, outputs: Path) -> None:
    run = outputs / "runs" / "selected"
    result = cli(
        "grandmodel.train", *SMALL, "trainer.selection.min_trades=0", f"hydra.run.dir={run}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    history, state = _selection(run)
    assert len(history) == 4
    scores = [h["val/sharpe_lcb"] for h in history]
    assert math.isclose(float(state["best_model_score"]), max(scores), rel_tol=1e-6)
    first_best = scores.index(max(scores))
    assert Path(state["best_model_path"]).name == f"best-epoch{first_best:03d}.ckpt"
    assert (run / "checkpoints" / f"best-epoch{first_best:03d}.ckpt").is_file()
    assert "no validation walk closed" not in result.stdout + result.stderr


def test_a_run_without_an_eligible_walk_says_its_best_checkpoint_is_not_selected(
    cli, outputs: Path
) -> None:
    run = outputs / "runs" / "ineligible"
    floor = 1_000_000
    result = cli(
        "grandmodel.train", *SMALL, f"trainer.selection.min_trades={floor}", f"hydra.run.dir={run}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    history, state = _selection(run)
    assert all(h["val/trades"] < floor for h in history)
    assert not math.isfinite(float(state["best_model_score"]))  # every walk ineligible
    said = (result.stdout + result.stderr).splitlines()  # Hydra's logging: the console
    warnings = [line for line in said if "no validation walk closed" in line]
    assert len(warnings) == 1 and f"min_trades={floor}" in warnings[0], result.stdout[-2000:]
    assert Path(state["best_model_path"]).name == "best-epoch000.ckpt"

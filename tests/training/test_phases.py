"""Learning phases (``agent.phases``): in one run the strategic agent learns first while the
tactical and risk agents act by their baselines, then they learn while it acts greedily and stops
learning; a run stopped at the switch resumes to the uninterrupted run's end; a checkpoint written
before a role's phase restores, exports and freezes that role as its baseline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from grandmodel.agents import group_specs
from grandmodel.checkpoints import acting_learners, load_checkpoint
from grandmodel.config import load_config
from grandmodel.data.pipeline import prepare_data
from grandmodel.deploy.heads import build_heads
from grandmodel.env import MarketEnv
from grandmodel.env.baselines import TacticalBaseline
from grandmodel.errors import GrandModelError
from grandmodel.training.phases import DONE, LEARNING, WAITING, Phases
from grandmodel.training.policies import frozen_learner, restore_policy

# 512 frames in batches of 128, evaluations at 256 and 512: the switch at the first evaluation,
# whose checkpoint is kept as the best (no evaluation reaches the trades floor)
PHASED = (
    "experiment=smoke",
    "agent=marl",
    "logger=csv",
    "agent.phases.strategic=[0.0,0.5]",
    "agent.phases.tactical=[0.5,1.0]",
    "agent.phases.risk=[0.5,1.0]",
    "trainer.selection.min_trades=1000000",
)


def test_states_and_progress_follow_the_windows() -> None:
    phases = Phases({"strategic": (0.0, 0.5), "tactical": (0.5, 1.0)}, total_frames=1000)
    assert [phases.state("strategic", f) for f in (0, 499, 500, 999)] == [
        LEARNING,
        LEARNING,
        DONE,
        DONE,
    ]
    assert [phases.state("tactical", f) for f in (0, 499, 500, 999)] == [
        WAITING,
        WAITING,
        LEARNING,
        LEARNING,
    ]
    assert phases.progress("tactical", 0.75) == pytest.approx(0.5)
    assert phases.progress("tactical", 0.2) == 0.0 and phases.progress("strategic", 0.9) == 1.0
    phases.clock = lambda: 500  # after 500 frames: an evaluation sees the last frame collected
    assert phases.waiting() == ["tactical"]
    phases.collecting = True  # the next collection acts in the new phase
    assert phases.waiting() == []


def _history_frames(checkpoint: dict, prefix: str) -> list[float]:
    rows = checkpoint["grandmodel"]["history"]
    return [row["frames"] for row in rows if any(k.startswith(prefix) for k in row)]


def test_roles_learn_in_turn_and_resume_across_the_switch(cli, outputs: Path) -> None:
    straight_dir, stopped_dir = outputs / "runs" / "straight", outputs / "runs" / "stopped"
    straight = cli("grandmodel.train", *PHASED, f"hydra.run.dir={straight_dir}")
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert "tactical agent: learning from 256 frames" in straight.stdout

    first = cli(
        "grandmodel.train",
        *PHASED,
        f"hydra.run.dir={stopped_dir}",
        "trainer.stop_after_frames=256",
    )
    assert first.returncode == 0, first.stderr[-3000:]
    at_switch = stopped_dir / "at_switch.ckpt"
    shutil.copy(stopped_dir / "checkpoints" / "last.ckpt", at_switch)
    again = cli("grandmodel.train", f"resume={stopped_dir}")
    assert again.returncode == 0, again.stderr[-3000:]

    # before the switch only the strategic agent learned; the others had not made one update
    half = load_checkpoint(at_switch)
    assert half["grandmodel"]["source"]["frames"] == 256
    assert half["grandmodel"]["waiting"] == ["tactical", "risk"]
    assert acting_learners(half) == ["strategic"]
    updates = {r: int(half["state_dict"][f"learners.{r}.updates"]) for r in ("tactical", "risk")}
    assert updates == {"tactical": 0, "risk": 0}
    assert int(half["state_dict"]["learners.strategic.updates"]) > 0

    # after it the strategic agent no longer learned; the others did
    end = load_checkpoint(straight_dir / "checkpoints" / "last.ckpt")
    assert end["grandmodel"]["waiting"] == []
    strategic = [k for k in end["state_dict"] if k.startswith("learners.strategic.")]
    assert all(torch.equal(end["state_dict"][k], half["state_dict"][k]) for k in strategic)
    assert int(end["state_dict"]["learners.tactical.updates"]) > 0
    assert max(_history_frames(end, "strategic/")) <= 256
    assert min(_history_frames(end, "tactical/")) > 256

    # the run stopped at the switch and resumed ends as the uninterrupted one
    resumed = load_checkpoint(stopped_dir / "checkpoints" / "last.ckpt")
    assert all(
        torch.equal(end["state_dict"][k], resumed["state_dict"][k]) for k in end["state_dict"]
    )
    table = lambda out: out[out.index("Evaluation of the") : out.index("val/sharpe =")]  # noqa: E731
    assert table(straight.stdout) == table(again.stdout)

    # the final report walks the best checkpoint as it acted (tactical and risk by their baselines),
    # as evaluating that checkpoint later does
    (best,) = (straight_dir / "checkpoints").glob("best-*.ckpt")
    assert load_checkpoint(best)["grandmodel"]["waiting"] == ["tactical", "risk"]
    report = json.loads((straight_dir / "final.json").read_text())["sharpe"]["val"]["trained"]
    later = cli("grandmodel.evaluate", f"run={straight_dir}", "split=val", "policy=torch")
    assert later.returncode == 0, later.stderr[-3000:]
    (folder,) = (outputs / "runs").glob("*_evaluate")
    trades = (folder / "trades.csv").read_text().splitlines()[1:]
    assert report["trades"] == len(trades)
    row = next(
        line
        for line in (folder / "report.md").read_text().splitlines()
        if line.startswith("| trained |")
    )
    assert float(row.split("|")[2]) == pytest.approx(report["sharpe"], abs=0.006)

    # a checkpoint from before a role's phase restores, exports and freezes it as its baseline
    cfg = load_config([*PHASED, f"paths.outputs_dir={outputs}"])
    data = prepare_data(cfg)
    groups = group_specs(MarketEnv(data, cfg, split="val", mode="eval"))
    learners, policy = restore_policy(half, groups, data.strategic.feature_names)
    assert sorted(learners) == ["strategic"]
    assert any(isinstance(m, TacticalBaseline) for m in policy.modules())
    names = {"strategic": data.strategic.feature_names, "tactical": data.tactical.feature_names}
    heads = build_heads(half, groups, data.norm, names)
    assert {r: h.source for r, h in heads.items()} == {
        "strategic": "trained",
        "tactical": "baseline",
        "risk": "baseline",
    }
    with pytest.raises(GrandModelError, match="had not started learning"):
        frozen_learner(at_switch, "tactical", groups["tactical"])

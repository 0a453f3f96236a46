"""Checkpoints resume exactly: N epochs, stop, N more == 2N uninterrupted (same seed, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import grandmodel
from grandmodel.train import train
from grandmodel.training.policies import load_checkpoint


def _run(tmp_path: Path, name: str, agent: str, *extra: str) -> Path:
    out = tmp_path / name
    cfg = grandmodel.load_config(
        [
            "experiment=smoke",
            f"agent={agent}",
            "trainer.total_frames=512",
            f"paths.outputs_dir={tmp_path / 'outputs'}",
            f"paths.output_dir={out}",
            "logger=csv",
            *extra,
        ]
    )
    train(cfg)
    return out / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("agent", ["ppo", "sac", "dqn"])
def test_resume_equals_uninterrupted(tmp_path: Path, agent: str) -> None:
    straight = load_checkpoint(_run(tmp_path, "straight", agent))
    first = _run(tmp_path, "first", agent, "trainer.stop_after_frames=256")  # stop half way
    assert load_checkpoint(first)["grandmodel"]["source"]["frames"] == 256
    resumed = load_checkpoint(_run(tmp_path, "resumed", agent, f"ckpt_path={first}"))
    a, b = straight["state_dict"], resumed["state_dict"]
    assert a.keys() == b.keys()
    learned = [k for k in a if k.startswith("learners.")]
    assert learned
    for key in learned:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    assert (
        straight["grandmodel"]["source"]["frames"]
        == resumed["grandmodel"]["source"]["frames"]
        == 512
    )
    # the run did learn: the resumed weights moved away from the checkpoint it started from
    start = load_checkpoint(first)["state_dict"]
    assert any(not torch.equal(start[k], b[k]) for k in learned if b[k].is_floating_point())

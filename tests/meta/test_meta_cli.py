"""Meta-training at smoke size: tracked, resumable bit for bit from last.ckpt; ``adapt`` from the
command line end to end (nested under the meta run, exportable checkpoint) and killed then resumed
to the same end; user errors in one line."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
import torch

from grandmodel.checkpoints import load_checkpoint
from grandmodel.config import ConfigError, load_config
from grandmodel.data.features import OBSERVATION
from grandmodel.errors import GrandModelError
from grandmodel.evaluation.runs import resolve_run
from grandmodel.meta.system import run_meta

SMOKE = [
    "experiment=smoke", "logger=csv", "meta.log_every=1", "meta.meta_batch=2",
    "meta.inner_updates=2", "meta.frames_per_update=64", "meta.family.tasks=2",
    "meta.family.days=12",
]  # fmt: skip
# the strategic agent observes an opt-in feature: adapting to a new market must keep the model's list
STRATEGIC = [*OBSERVATION["strategic"], "realized_vol_4"]
SMOKE.append(f"data.features.strategic=[{','.join(STRATEGIC)}]")


def _meta(outputs: Path, name: str, *extra: str) -> dict:
    cfg = load_config(
        [*SMOKE, f"paths.outputs_dir={outputs}", f"paths.output_dir={outputs}/{name}", *extra],
        config_name="meta_train",
    )
    return run_meta(cfg)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    checkpoint = load_checkpoint(folder / "checkpoints" / "last.ckpt")
    return {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("learner.")}


@pytest.fixture(scope="module")
def meta_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two meta-updates in one go, and one then resumed to two."""
    outputs = tmp_path_factory.mktemp("meta")
    _meta(outputs, "whole", "meta.iterations=2")
    _meta(outputs, "resumed", "meta.iterations=1")
    ckpt = outputs / "resumed" / "checkpoints" / "last.ckpt"
    out = _meta(outputs, "elsewhere", "meta.iterations=2", f"ckpt_path={ckpt}")
    assert out["output_dir"] == outputs / "resumed" and out["iterations"] == 2
    return outputs


def test_meta_training_is_tracked_and_moves_the_initialisation(meta_runs: Path) -> None:
    folder = meta_runs / "whole"
    ops = [json.loads(line) for line in (folder / "tracking" / "record.jsonl").open()]
    assert ops[0]["tags"]["kind"] == "meta" and ops[0]["tags"]["meta"] == "reptile"
    rows = [op for op in ops if op["op"] == "metrics"]
    assert [row["step"] for row in rows] == [1, 2]
    assert all(row["metrics"]["meta/step_norm"] > 0 for row in rows)
    assert ops[-1]["status"] == "FINISHED"
    assert (
        int(load_checkpoint(folder / "checkpoints" / "last.ckpt")["state_dict"]["iteration"]) == 2
    )


def test_resumed_meta_training_equals_the_uninterrupted_run(meta_runs: Path) -> None:
    whole, resumed = _weights(meta_runs / "whole"), _weights(meta_runs / "resumed")
    assert whole.keys() == resumed.keys()
    for name in whole:
        torch.testing.assert_close(resumed[name], whole[name], rtol=0, atol=0)


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "tracking" / "record.jsonl").open()]


def test_adapt_end_to_end_and_killed_then_resumed_ends_the_same(
    meta_runs: Path, cli, tmp_path: Path
) -> None:
    folder = meta_runs / "whole"
    market = ["data=synthetic", "data.synthetic.seed=99", "data.synthetic.days=12",
              "data.episode_length=64", "data.cache=false"]  # fmt: skip
    common = [f"run={folder}", *market, "adapt.steps=3", "adapt.frames_per_update=64", "logger=csv"]
    straight_dir, killed_dir = tmp_path / "runs" / "straight", tmp_path / "runs" / "killed"
    result = cli("grandmodel.adapt", *common, f"hydra.run.dir={straight_dir}")
    assert result.returncode == 0, result.stderr
    assert "test/sharpe:" in result.stdout and "after 3 updates" in result.stdout
    adapted = Path(result.stdout.split("adapted policy: ")[1].split()[0])
    assert adapted == straight_dir / "checkpoints" / "best-adapted.ckpt"
    checkpoint = load_checkpoint(adapted)
    assert checkpoint["grandmodel"]["config"]["agent"]["learn"] == ["strategic"]
    assert checkpoint["grandmodel"]["config"]["data"]["features"]["strategic"] == STRATEGIC
    assert any(k.startswith("learners.strategic.") for k in checkpoint["state_dict"])
    ops = _records(straight_dir)
    assert ops[0]["tags"]["kind"] == "adaptation"
    metrics = next(op["metrics"] for op in ops if op["op"] == "metrics")
    assert {"initial/test/sharpe", "test/sharpe", "adapt/reward_last_update"} <= metrics.keys()

    # killed after its 2nd update (last.ckpt written), then resumed by folder alone
    killed = cli(
        "grandmodel.adapt", *common, f"hydra.run.dir={killed_dir}", "faults.kill_at_batch=2"
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    last = load_checkpoint(killed_dir / "checkpoints" / "last.ckpt")
    assert last["grandmodel"]["adapt"]["updates"] == 2
    assert not (killed_dir / "checkpoints" / "best-adapted.ckpt").exists()
    with pytest.raises(
        GrandModelError, match=re.escape(f"expected python -m grandmodel.adapt resume={killed_dir}")
    ):
        resolve_run(str(killed_dir))  # what evaluate, backtest and export would be handed
    resumed = cli("grandmodel.adapt", f"resume={killed_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["killed", "straight"]

    # the same printed and tracked metrics (before and after adapting) and the same policy
    printed = [line for line in result.stdout.splitlines() if line.startswith("test/")]
    assert printed == [line for line in resumed.stdout.splitlines() if line.startswith("test/")]
    again = [op for op in _records(killed_dir) if op["op"] in ("start", "metrics")]
    assert [op["op"] for op in again] == ["start", "metrics"]  # one tracked run, written at the end
    assert again[1]["metrics"] == metrics
    theirs = load_checkpoint(killed_dir / "checkpoints" / "best-adapted.ckpt")["state_dict"]
    assert theirs.keys() == checkpoint["state_dict"].keys()
    for key, value in checkpoint["state_dict"].items():
        torch.testing.assert_close(theirs[key], value, rtol=0, atol=0)


def test_adapt_refuses_what_is_not_a_meta_run(meta_runs: Path, tmp_path: Path) -> None:
    from grandmodel.evaluation.evaluator import MarketEvaluator
    from grandmodel.meta.adaptation import adapt_to_market

    last = meta_runs / "whole" / "checkpoints" / "last.ckpt"
    weights_only = tmp_path / "checkpoints" / "best.ckpt"
    weights_only.parent.mkdir()
    torch.save({"state_dict": {}, "grandmodel": {"config": {}}}, weights_only)
    for run in (weights_only, tmp_path):  # a training checkpoint, a folder without last.ckpt
        cfg = load_config([f"run={run}", "data=synthetic", "logger=csv",
                           f"paths.outputs_dir={tmp_path}"], config_name="adapt")  # fmt: skip
        with pytest.raises(
            GrandModelError, match=r"expected the folder of a python -m grandmodel\.meta"
        ):
            adapt_to_market(cfg, MarketEvaluator)
    with pytest.raises(ConfigError, match="data: expected the new market"):
        load_config([f"run={last}", "logger=csv"], config_name="adapt")

"""``InferencePolicy`` and the registered MLflow model: the torch policy's actions without torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from tensordict import TensorDict

from grandmodel.agents import group_specs
from grandmodel.config import typed
from grandmodel.config.data import DataConfig
from grandmodel.data.features import OBSERVATION
from grandmodel.data.pipeline import prepare
from grandmodel.deploy import InferencePolicy
from grandmodel.deploy.bundle import model_config
from grandmodel.deploy.manifest import seal
from grandmodel.deploy.parity import record
from grandmodel.env import MarketEnv
from grandmodel.errors import GrandModelError
from grandmodel.evaluation.runs import resolve_run
from grandmodel.training.policies import restore_policy
from tests.deploy.helpers import ROOT, Exported, run_module

ROLES = ("strategic", "tactical", "risk")


@pytest.fixture(scope="module")
def recorded(exported: Exported, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The torch policy's walk over the test split (then val, train) to 1,000 observations: the
    raw features per role in an .npz, and the torch actions."""
    run = resolve_run(str(exported.run_dir))
    cache = exported.outputs / "cache"
    cfg = model_config(run, OmegaConf.create({"cache_dir": str(cache)}))
    tables, data = prepare(typed(cfg.data, DataConfig), cache, run.norm)
    raw = {
        tf: tables.frames[tf][list(OBSERVATION[tf])].to_numpy(np.float64)
        for tf in ("strategic", "tactical")
    }
    groups = group_specs(MarketEnv(data, cfg, n_envs=1, split="test", mode="eval"))
    _, policy = restore_policy(run.checkpoint, groups, data.strategic.feature_names)
    walk = record(cfg, data, raw, policy, 1000)
    path = tmp_path_factory.mktemp("recorded") / "observations.npz"
    np.savez(path, **walk.raw)
    return {
        "path": path,
        "raw": walk.raw,
        "torch": walk.actions,
        "splits": walk.splits,
        "policy": policy,
        "norm": run.norm,
    }


def _same_actions(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    for role in ("strategic", "risk"):
        assert got[role].dtype == np.int64
        np.testing.assert_array_equal(got[role], expected[role])
    assert (
        got["tactical"].dtype == np.float32 and got["tactical"].shape == expected["tactical"].shape
    )
    assert np.abs(got["tactical"] - expected["tactical"]).max() <= 1e-5


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_bundle_acts_as_the_torch_policy_in_a_process_without_torch(
    exported: Exported, recorded: dict, tmp_path: Path
) -> None:
    assert len(recorded["torch"]["tactical"]) >= 1000 and recorded["splits"]["test"] > 0
    _same_actions(InferencePolicy.load(exported.bundle).decide(recorded["raw"]), recorded["torch"])
    actions = tmp_path / "actions.npz"
    result = _python(
        """
        import sys
        import numpy as np
        from grandmodel.deploy import InferencePolicy
        policy = InferencePolicy.load(sys.argv[1])
        np.savez(sys.argv[3], **policy.decide(dict(np.load(sys.argv[2]))))
        print(sorted(m for m in ("torch", "torchrl", "tensordict") if m in sys.modules))
        """,
        str(exported.bundle),
        str(recorded["path"]),
        str(actions),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
    _same_actions(dict(np.load(actions)), recorded["torch"])


def test_bundle_acts_as_the_torch_policy_on_perturbed_observations(
    exported: Exported, recorded: dict
) -> None:
    """A smoke run's policy acts alike on most recorded states; noise on the raw features makes
    every role's action vary, so agreement here covers the decision boundaries."""
    rng = np.random.default_rng(0)
    raw = {
        r: v + rng.normal(0.0, 3.0, v.shape) * np.maximum(v.std(axis=0), 1.0)
        for r, v in recorded["raw"].items()
    }
    raw["risk"] = raw["risk"].astype(np.float32)
    norm = recorded["norm"]
    td = TensorDict(
        {
            r: {"observation": torch.from_numpy(norm[r].transform(raw[r]) if r in norm else raw[r])}
            for r in ROLES
        },
        batch_size=[len(raw["risk"])],
    )
    with torch.no_grad():
        out = recorded["policy"](td)
    expected = {r: out.get((r, "action")).numpy() for r in ROLES}
    for role in ("strategic", "risk"):
        assert len(np.unique(expected[role])) > 1, role
    _same_actions(InferencePolicy.load(exported.bundle).decide(raw), expected)


def test_registered_model_predicts_the_same_in_a_fresh_process(
    exported: Exported, recorded: dict, tmp_path: Path
) -> None:
    client = MlflowClient(exported.tracking_uri)
    version = client.get_model_version_by_alias("grandmodel", "candidate")
    export_run = client.get_run(version.run_id)
    assert export_run.data.tags["kind"] == "export"
    assert export_run.data.tags["mlflow.parentRunId"] == exported.run_id
    assert export_run.data.metrics["tactical_onnx_max_abs_diff"] <= 1e-5
    actions = tmp_path / "actions.npz"
    result = _python(
        """
        import sys
        import mlflow
        import numpy as np
        mlflow.set_tracking_uri(sys.argv[1])
        model = mlflow.pyfunc.load_model("models:/grandmodel@candidate")
        inputs = [spec.name for spec in model.metadata.get_input_schema().inputs]
        assert inputs == ["strategic", "tactical", "risk"], inputs
        np.savez(sys.argv[3], **model.predict(dict(np.load(sys.argv[2]))))
        """,
        exported.tracking_uri,
        str(recorded["path"]),
        str(actions),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    _same_actions(dict(np.load(actions)), recorded["torch"])
    policy = InferencePolicy.load(
        "models:/grandmodel@candidate", tracking_uri=exported.tracking_uri
    )
    assert (
        policy.metadata["files"]
        == json.loads((exported.bundle / "metadata.json").read_text())["files"]
    )


def _tamper(bundle: Path, tmp_path: Path, how: str) -> tuple[Path, str]:
    copy = tmp_path / how
    shutil.copytree(bundle, copy)
    if how == "altered":
        data = bytearray((copy / "tactical.onnx").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (copy / "tactical.onnx").write_bytes(bytes(data))
        return copy, "tactical.onnx: altered"
    if how == "missing":
        (copy / "risk.pth").unlink()
        return copy, "risk.pth: missing"
    meta = json.loads((copy / "metadata.json").read_text())
    meta["combination"]["max_contracts"] = 50
    (copy / "metadata.json").write_text(json.dumps(meta, indent=2))
    return copy, "metadata.json: altered"


@pytest.mark.parametrize("how", ["altered", "missing", "metadata"])
def test_tampered_bundle_is_refused_with_one_line(
    exported: Exported, tmp_path: Path, how: str
) -> None:
    bundle, message = _tamper(exported.bundle, tmp_path, how)
    with pytest.raises(GrandModelError, match="expected"):
        InferencePolicy.load(bundle)
    result = run_module("grandmodel.deploy", str(bundle))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"error: {bundle}/{message}") and "expected" in lines[0]
    assert result.stdout == ""


def test_the_check_cli_loads_a_good_bundle(exported: Exported) -> None:
    result = run_module("grandmodel.deploy", str(exported.bundle))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "9 files verified" in result.stdout and "strategic: trained ppo" in result.stdout


def test_observations_of_the_wrong_shape_are_refused(exported: Exported) -> None:
    policy = InferencePolicy.load(exported.bundle)
    good = {r: np.zeros((2, *policy.shapes[r])) for r in ROLES}
    with pytest.raises(GrandModelError, match=r"observations\['tactical'\]: shape \[2, 59, 7\]"):
        policy.decide(good | {"tactical": np.zeros((2, 59, 7))})
    with pytest.raises(GrandModelError, match="no risk entry"):
        policy.decide({r: good[r] for r in ("strategic", "tactical")})
    single = policy.decide({r: v[0] for r, v in good.items()})
    assert single["tactical"].shape == (3,) and single["strategic"].shape == ()


def test_a_graph_this_runtime_cannot_run_is_refused_with_one_line(
    exported: Exported, tmp_path: Path
) -> None:
    """A bundle written by a newer exporter (opset 99, hashes consistent) fails on load, naming the
    graph and the runtime, instead of at the first decision."""
    import onnx

    bundle = tmp_path / "future"
    shutil.copytree(exported.bundle, bundle)
    graph = onnx.load(bundle / "risk.onnx")
    for entry in graph.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = 99
    onnx.save(graph, bundle / "risk.onnx")
    meta = json.loads((bundle / "metadata.json").read_text())
    meta["files"] = list(meta["files"])
    (bundle / "metadata.json").write_text(json.dumps(seal(meta, bundle)))
    result = run_module("grandmodel.deploy", str(bundle))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"error: {bundle}/risk.onnx: ONNX Runtime ")
    assert "cannot load it" in lines[0]

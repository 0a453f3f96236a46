"""``python -m grandmodel.export``: the bundle's files, contract, parity and all-or-nothing writes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf
from torch import nn

import grandmodel
from grandmodel.agents import group_specs
from grandmodel.checkpoints import load_checkpoint
from grandmodel.config import typed
from grandmodel.config.data import DataConfig
from grandmodel.data.normalise import NormStats
from grandmodel.data.pipeline import prepare
from grandmodel.deploy import InferencePolicy
from grandmodel.deploy.bundle import export_bundle, export_onnx, model_config
from grandmodel.deploy.heads import Head, Normalise, RoleHead, build_heads
from grandmodel.env import MarketEnv
from grandmodel.evaluation.runs import resolve_run
from tests.deploy.helpers import Exported, run_module

ROLES = ("strategic", "tactical", "risk")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bundle_holds_every_file_with_its_hash_and_the_contract(exported: Exported) -> None:
    bundle = exported.bundle
    assert "parity on" in exported.stdout and "registered models:/grandmodel@candidate" in (
        exported.stdout
    )
    meta = json.loads((bundle / "metadata.json").read_text())
    graphs = {f"{role}.{ext}" for role in ROLES for ext in ("onnx", "pth")}
    shipped = graphs | {"norm_stats.json", "parity.json", "production.yaml"}
    assert {p.name for p in bundle.iterdir()} == shipped | {"metadata.json"}
    assert meta["files"] == {name: _sha(bundle / name) for name in sorted(shipped)}
    # every env and reward setting of the run ships, so the paper broker rebuilds the same market
    assert {"var_window", "vol_halflife", "win_rate_alpha", "sizing", "max_leverage"} <= set(
        meta["env"]
    )
    assert meta["env"]["contract"] == meta["instrument"] and "profit_weight" in meta["reward"]

    roles = meta["roles"]
    strategic, tactical, risk = roles["strategic"], roles["tactical"], roles["risk"]
    norm = json.loads((bundle / "norm_stats.json").read_text())
    assert strategic["input"] | {"features": None, "normalisation": None} == strategic["input"] | {
        "name": "strategic",
        "shape": [-1, 48, 13],
        "dtype": "float64",
        "timeframe": "30min",
        "window": 48,
        "features": None,
        "normalisation": None,
    }
    assert strategic["input"]["features"] == norm["strategic"]["features"]
    assert strategic["input"]["normalisation"]["mean"] == norm["strategic"]["mean"]
    assert tactical["input"]["shape"] == [-1, 60, 7] and tactical["input"]["timeframe"] == "5min"
    assert tactical["output"]["low"] == [0.0, 0.001, 0.1]
    assert tactical["output"]["high"] == [1.0, 0.05, 2.0]
    assert risk["input"]["shape"] == [-1, 10] and risk["input"]["dtype"] == "float32"
    assert risk["output"]["risk_cap"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert {r: (e["source"], e["kind"]) for r, e in roles.items()} == {
        "strategic": ("trained", "ppo"),
        "tactical": ("trained", "sac"),
        "risk": ("trained", "dqn"),
    }
    assert "max_contracts" in meta["combination"] and meta["instrument"]["symbol"] == "ES"
    assert meta["costs"]["commission"] == 2.0
    training = meta["training"]
    assert training["run_id"] == exported.run_id and training["seed"] == 0
    assert training["data_hash"] == training["data_hash_at_export"]
    assert training["git_commit"] and training["export_git_commit"]
    assert {"final/val/sharpe", "final/test/sharpe"} <= set(training["metrics"])
    assert meta["normalisation"]["sha256"] == _sha(bundle / "norm_stats.json")
    assert {"grandmodel", "torch", "onnx", "onnxruntime"} <= set(meta["versions"])

    production = yaml.safe_load((bundle / "production.yaml").read_text())
    assert production["strategic_marl"] == {
        "enabled": True,
        "model_path": "strategic.pth",
        "onnx_path": "strategic.onnx",
    }
    for entry in production["agents"].values():
        assert (bundle / entry["model_path"]).is_file() and (bundle / entry["onnx_path"]).is_file()


def test_parity_json_reports_identical_actions_on_recorded_observations(
    exported: Exported,
) -> None:
    parity = json.loads((exported.bundle / "parity.json").read_text())
    assert parity["passed"] and parity["observations_from"]["test"] > 0
    for role in ROLES:
        entry = parity["roles"][role]
        assert entry["observations"] >= 1000
        assert entry["normalisation_max_abs_diff"] == 0.0
        if role == "tactical":
            assert entry["onnx_max_abs_diff"] <= 1e-5 and entry["head_max_abs_diff"] <= 1e-6
        else:
            assert entry["onnx_mismatches"] == 0 and entry["head_mismatches"] == 0
    latency = parity["latency_us"]["onnx_joint"]
    assert 0 < latency["p50"] <= latency["p99"]


def test_state_dicts_load_weights_only_into_the_heads(exported: Exported) -> None:
    run = resolve_run(str(exported.run_dir))
    cfg = model_config(run, OmegaConf.create({"cache_dir": str(exported.outputs / "cache")}))
    _, data = prepare(typed(cfg.data, DataConfig), exported.outputs / "cache", run.norm)
    groups = group_specs(MarketEnv(data, cfg, n_envs=1, split="test", mode="eval"))
    names = {r: getattr(data, r).feature_names for r in ("strategic", "tactical")}
    for role, head in build_heads(run.checkpoint, groups, run.norm, names).items():
        state = torch.load(exported.bundle / f"{role}.pth", weights_only=True)
        assert head.module is not None
        head.module.load_state_dict(state, strict=True)


def test_normalisation_in_the_onnx_graph_is_the_pipelines_bit_for_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 50.0, size=(64, 5, 4))
    values[0, 0, 0], values[1, 1, 1], values[2, 2, 2] = np.nan, np.inf, -np.inf
    values[3, 3, 3] = 1e12  # clipped to +10
    stats = NormStats.fit(rng.normal(3.0, 50.0, (200, 4)), list("abcd"), [True, True, False, True])
    head = Head(Normalise(stats, 4), nn.Identity(), nn.Identity()).eval()
    export_onnx(RoleHead("strategic", "baseline", "identity", head), (5, 4), tmp_path, 18)
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "strategic.onnx"))
    got = session.run(None, {"strategic": values})[0]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, stats.transform(values))


@pytest.mark.parametrize("strategic", ["ma_crossover", "random"])
def test_roles_that_did_not_learn_ship_their_baseline(
    exported: Exported, tmp_path: Path, strategic: str
) -> None:
    """Only the tactical agent learned: the risk baseline is a graph; the strategic baseline is a
    graph when it is a function of the observation and a rule the consumer applies when random."""
    checkpoint = load_checkpoint(sorted((exported.run_dir / "checkpoints").glob("best-*"))[0])
    config = checkpoint["grandmodel"]["config"]
    config["agent"]["learn"] = ["tactical"]
    config["agent"]["baselines"]["strategic"] = strategic
    for role in ("strategic", "risk"):
        checkpoint["state_dict"] = {
            k: v
            for k, v in checkpoint["state_dict"].items()
            if not k.startswith(f"learners.{role}.")
        }
    torch.save(checkpoint, tmp_path / "tactical-only.ckpt")
    run = resolve_run(str(tmp_path / "tactical-only.ckpt"))
    cfg = grandmodel.load_config(["run=unused", f"paths.outputs_dir={tmp_path}"], "export")
    cfg.export.parity.latency_calls = 10
    out = tmp_path / "bundle"
    meta = export_bundle(
        run, out, name="b", settings=cfg.export, paths=cfg.paths, training={"seed": 0}
    )
    roles = meta["roles"]
    assert roles["tactical"]["source"] == "trained" and roles["risk"]["rule"]["level"] == 4
    assert roles["risk"]["source"] == "baseline" and roles["risk"]["onnx"] == "risk.onnx"
    parity = json.loads((out / "parity.json").read_text())["roles"]
    assert parity["risk"]["onnx_mismatches"] == 0
    policy = InferencePolicy.load(out)
    obs = {r: np.zeros(policy.shapes[r], policy.dtypes[r]) for r in ROLES}
    if strategic == "random":
        assert roles["strategic"]["onnx"] is None and roles["strategic"]["rule"]["consumer_applies"]
        assert not (out / "strategic.onnx").exists()
        batch = {r: np.repeat(v[None], 300, axis=0) for r, v in obs.items()}
        assert set(policy.decide(batch)["strategic"].tolist()) == {0, 1, 2}
    else:
        assert roles["strategic"]["rule"] == {
            "baseline": "ma_crossover",
            "feature": "trend_regime",
            "column": 10,
            "consumer_applies": False,
        }
        assert parity["strategic"]["onnx_mismatches"] == 0
        obs["strategic"][-1, 10] = 1.0  # last bar in an up-trend: long
        assert policy.decide(obs)["strategic"] == 2


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-2000:]
    return lines[0]


def test_bad_runs_exit_2_with_one_line_and_write_nothing(
    exported: Exported, tmp_path: Path
) -> None:
    outputs = tmp_path / "outputs"
    checkpoint = load_checkpoint(exported.run_dir / "checkpoints" / "last.ckpt")
    checkpoint["state_dict"] = {
        k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("learners.risk.")
    }
    torch.save(checkpoint, tmp_path / "untrained.ckpt")
    cases = {
        f"run={tmp_path / 'missing'}": "not a run folder, a checkpoint file or an MLflow run id",
        f"run={tmp_path / 'untrained.ckpt'}": "no trained weights for the risk agent",
    }
    for override, message in cases.items():
        result = run_module("grandmodel.export", override, f"paths.outputs_dir={outputs}")
        assert result.returncode == 2
        assert message in _one_error_line(result.stderr)
        assert not [p for p in outputs.rglob("*") if p.is_file()]

    before = {p.name: _sha(p) for p in exported.bundle.iterdir()}
    result = run_module(
        "grandmodel.export",
        f"run={exported.run_dir}",
        f"out={exported.bundle}",
        f"paths.outputs_dir={outputs}",
        "logger=csv",
    )
    assert result.returncode == 2 and "already exists" in _one_error_line(result.stderr)
    assert {p.name: _sha(p) for p in exported.bundle.iterdir()} == before


def test_overwrite_replaces_a_bundle_with_a_complete_one(
    exported: Exported, tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    shutil.copytree(exported.bundle, out)
    (out / "risk.onnx").write_bytes(b"stale")
    result = run_module(
        "grandmodel.export",
        f"run={exported.run_dir}",
        f"out={out}",
        "overwrite=true",
        "logger=csv",
        "export.parity.latency_calls=10",
        f"paths.outputs_dir={tmp_path / 'outputs'}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert InferencePolicy.load(out).metadata["files"]["risk.onnx"] == _sha(out / "risk.onnx")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left

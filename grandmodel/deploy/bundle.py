"""Export a trained run as a self-contained bundle folder, all or nothing.

Everything is built in a hidden temporary folder beside the target and renamed into place at the
end: a failure (bad run, parity miss, full disk, Ctrl-C) leaves no bundle, and an existing bundle is
only replaced (``overwrite=true``) by a complete one.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from grandmodel.agents import group_specs
from grandmodel.checkpoints import acting_learners
from grandmodel.config import typed
from grandmodel.config.data import DataConfig
from grandmodel.data.pipeline import prepare
from grandmodel.deploy.contract import NORM_FILE, build_metadata, norm_json, production_config
from grandmodel.deploy.heads import RoleHead, build_heads
from grandmodel.deploy.inference import InferencePolicy
from grandmodel.deploy.manifest import METADATA, seal
from grandmodel.deploy.parity import check_parity, record
from grandmodel.env import MarketEnv
from grandmodel.errors import GrandModelError
from grandmodel.evaluation.runs import TrainedRun
from grandmodel.training.policies import restore_policy

PARITY_FILE = "parity.json"
PRODUCTION_FILE = "production.yaml"


def require_trained_policy(run: TrainedRun) -> None:
    """Refuse a checkpoint that holds no weights for a role its config says learned or was frozen."""
    extra = run.checkpoint.get("grandmodel", {})
    state = run.checkpoint.get("state_dict", {})
    expected = {role: f"learners.{role}." for role in acting_learners(run.checkpoint)}
    expected |= {role: f"fixed.{role}.module." for role in extra.get("frozen", {})}
    for role, prefix in expected.items():
        if not any(key.startswith(prefix) for key in state):
            raise GrandModelError(
                f"{run.checkpoint_path}: no trained weights for the {role} agent (nothing under "
                f"{prefix}); expected a checkpoint written by training"
            )


def model_config(run: TrainedRun, paths: DictConfig) -> DictConfig:
    """The run's config with this machine's paths."""
    cfg = OmegaConf.create(OmegaConf.to_container(run.config, resolve=True))
    cfg.paths = OmegaConf.create(OmegaConf.to_container(paths, resolve=True))
    return cfg


def export_bundle(
    run: TrainedRun,
    out: Path,
    *,
    name: str,
    settings: DictConfig,
    paths: DictConfig,
    training: dict[str, Any],
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the bundle of ``run`` to ``out``; returns its metadata (with the parity summary)."""
    if out.exists() and not overwrite:
        raise GrandModelError(
            f"out={out}: already exists; expected a new folder (or overwrite=true)"
        )
    require_trained_policy(run)
    cfg = model_config(run, paths)
    tables, data = prepare(typed(cfg.data, DataConfig), Path(paths.cache_dir), run.norm)
    features = {role: getattr(data, role).feature_names for role in ("strategic", "tactical")}
    raw = {  # the prepared, un-normalised feature tables of the model's features: what a bundle takes
        frame: tables.frames[frame][list(features[frame])].to_numpy(np.float64)
        for frame in ("strategic", "tactical")
    }
    env = MarketEnv(data, cfg, n_envs=1, split="test", mode="eval")
    groups = group_specs(env)
    heads = build_heads(run.checkpoint, groups, run.norm, features)
    training = {"data_hash": tables.info.get("key"), **training}
    training["data_hash_at_export"] = tables.info.get("key")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        (staging / NORM_FILE).write_text(norm_json(run.norm))
        for role, head in heads.items():
            if head.module is not None:
                torch.save(head.module.state_dict(), staging / f"{role}.pth")
                export_onnx(
                    head, tuple(groups[role].observation_spec.shape), staging, settings.opset
                )
        metadata = build_metadata(
            name=name,
            heads=heads,
            data=data,
            norm=run.norm,
            cfg=cfg,
            training=training,
            opset=int(settings.opset),
        )
        _write_metadata(seal(metadata, staging), staging)
        policy = InferencePolicy.load(staging)
        _, torch_policy = restore_policy(run.checkpoint, groups, data.strategic.feature_names)
        parity_cfg = settings.parity
        recorded = record(cfg, data, raw, torch_policy, int(parity_cfg.observations))
        parity = check_parity(
            heads, recorded, policy, float(parity_cfg.tolerance), int(parity_cfg.latency_calls)
        )
        if not parity["passed"]:
            raise GrandModelError(
                f"{out}: ONNX Runtime does not reproduce the torch policy ({_misses(parity)}); "
                "expected identical discrete actions and tactical actions within "
                f"export.parity.tolerance={parity_cfg.tolerance}"
            )
        (staging / PARITY_FILE).write_text(json.dumps(parity, indent=2))
        metadata["files"] = [*metadata["files"], PARITY_FILE, PRODUCTION_FILE]
        metadata["parity"] = {"file": PARITY_FILE, **_summary(parity)}
        (staging / PRODUCTION_FILE).write_text(
            yaml.safe_dump(production_config(metadata), sort_keys=False)
        )
        metadata = seal(metadata, staging)
        _write_metadata(metadata, staging)
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return metadata


def export_onnx(head: RoleHead, shape: tuple[int, ...], folder: Path, opset: int) -> Path:
    """``<role>.onnx`` with the dynamo exporter: one input named after the role, dynamic batch."""
    assert head.module is not None
    dtype = torch.float32 if head.role == "risk" else torch.float64
    example = torch.zeros((2, *shape), dtype=dtype)
    path = folder / f"{head.role}.onnx"
    quiet = io.StringIO()
    for logger in ("torch.onnx", "onnxscript", "onnx_ir"):  # progress chatter at INFO under Hydra
        logging.getLogger(logger).setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            head.module,
            (example,),
            input_names=[head.role],
            output_names=["action"],
            dynamic_shapes={"features": {0: torch.export.Dim("batch")}},
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    program.save(str(path))
    return path


def _write_metadata(metadata: dict[str, Any], folder: Path) -> None:
    (folder / METADATA).write_text(json.dumps(metadata, indent=2))


def _publish(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``; an existing ``out`` is moved aside first and then removed."""
    for path in staging.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the bundle from the service that loads it
    if not out.exists():
        os.replace(staging, out)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
    os.replace(out, aside / out.name)
    os.replace(staging, out)
    shutil.rmtree(aside, ignore_errors=True)


def _summary(parity: dict[str, Any]) -> dict[str, Any]:
    roles = parity["roles"]
    out: dict[str, Any] = {
        "passed": parity["passed"],
        "observations_from": parity["observations_from"],
    }
    for role, entry in roles.items():
        for key in ("observations", "onnx_mismatches", "onnx_max_abs_diff"):
            if key in entry:
                out[f"{role}_{key}"] = entry[key]
    joint = parity["latency_us"]["onnx_joint"]
    out["onnx_joint_batch1_p50_us"], out["onnx_joint_batch1_p99_us"] = joint["p50"], joint["p99"]
    return out


def _misses(parity: dict[str, Any]) -> str:
    parts = []
    for role, entry in parity["roles"].items():
        if entry.get("onnx_mismatches"):
            parts.append(f"{role}: {entry['onnx_mismatches']} of {entry['observations']} differ")
        if entry.get("onnx_max_abs_diff", 0.0) > parity["tolerance"]:
            parts.append(f"{role}: max |diff| {entry['onnx_max_abs_diff']:.3g}")
    return "; ".join(parts)

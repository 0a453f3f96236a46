"""The trained run's policy on ONNX Runtime, for the lean walk (``policy=onnx`` of
``grandmodel.evaluate`` and ``grandmodel.backtest``).

The graphs are an export bundle's (``bundle=``, hashes verified) or the run's heads exported once
into ``<paths.cache_dir>/onnx/<key>/``, the key a hash of everything the graphs are made of (see
:func:`_cache_key`), so a second evaluation or backtest of the same checkpoint skips the export. They take raw feature windows (normalisation inside the graph), so the strategic
and tactical graphs act on every step at once from the decision index; the risk graph reads the
env's portfolio observation step by step. Roles without a graph (a rule such as the random
baseline) keep the torch actor.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from grandmodel.agents import group_specs
from grandmodel.config import typed
from grandmodel.config.data import DataConfig
from grandmodel.config.deploy import ExportSettings
from grandmodel.config.env import ROLES
from grandmodel.data.hmm import RegimeFit, add_regime_features
from grandmodel.data.market_data import MarketData
from grandmodel.data.pipeline import load_tables
from grandmodel.deploy.bundle import export_onnx, require_trained_policy
from grandmodel.deploy.heads import build_heads
from grandmodel.deploy.inference import InferencePolicy
from grandmodel.errors import GrandModelError
from grandmodel.evaluation.lean import TIME, Actor, LeanPolicy
from grandmodel.evaluation.runs import TrainedRun
from grandmodel.evaluation.walk import Walk

FRAMES = ("strategic", "tactical")


class WindowGraph:
    """A strategic or tactical graph on the raw windows of decision indices ``[..., 1]``."""

    def __init__(
        self, session: ort.InferenceSession, name: str, data: MarketData, raw: np.ndarray, role: str
    ) -> None:
        self.session, self.name, self.raw = session, name, raw
        self.last = data.strategic_index.numpy() if role == "strategic" else None
        self.offsets = np.arange(-int(data.window[role]) + 1, 1)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        index = t[..., 0].reshape(-1).numpy()
        last = index if self.last is None else self.last[index]
        action = self.session.run(None, {self.name: self.raw[last[:, None] + self.offsets]})[0]
        return torch.from_numpy(action).reshape(*t.shape[:-1], *action.shape[1:])


class RiskGraph:
    """The risk graph on the env's portfolio observation ``[envs, features]``."""

    def __init__(self, session: ort.InferenceSession, name: str) -> None:
        self.session, self.name = session, name

    def __call__(self, observation: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {self.name: observation.numpy()})[0])


def raw_features(walk: Walk) -> dict[str, np.ndarray]:
    """The prepared, un-normalised strategic and tactical feature tables (what the graphs take),
    with the columns the walk's model observes."""
    cfg = walk.cfg
    frames = dict(load_tables(typed(cfg.data, DataConfig), Path(cfg.paths.cache_dir)).frames)
    columns = {frame: getattr(walk.data, frame).feature_names for frame in FRAMES}
    fit = next((n.regime for n in walk.data.norm.values() if n.regime), None)
    if fit is not None:  # the model's fitted features are not cached (data/hmm.py)
        add_regime_features(frames, columns, RegimeFit.from_dict(fit))
    return {frame: frames[frame][list(columns[frame])].to_numpy(np.float64) for frame in FRAMES}


def onnx_policy(
    walk: Walk, run: TrainedRun, torch_policy: LeanPolicy, bundle: str | None
) -> LeanPolicy:
    """``torch_policy`` with every role that has a graph acting through ONNX Runtime."""
    if bundle:
        loaded = InferencePolicy.load(bundle)
        _check_contract(loaded, walk.data, bundle)
        sessions = {role: s for role, s in loaded.sessions.items() if s is not None}
        names = {role: loaded.inputs[role]["name"] for role in sessions}
    else:
        # building the heads and exporting draw from torch's generator: the random baseline's
        # draws after them must be those of policy=torch
        with torch.random.fork_rng():
            sessions = _exported(walk, run)
        names = {role: role for role in sessions}
    raw = raw_features(walk)
    out = dict(torch_policy)
    for role, session in sessions.items():
        if role == "risk":
            out[role] = Actor(("risk", "observation"), RiskGraph(session, names[role]))
        else:
            graph = WindowGraph(session, names[role], walk.data, raw[role], role)
            out[role] = Actor(TIME, graph, timeless=True)
    return out


def _exported(walk: Walk, run: TrainedRun) -> dict[str, ort.InferenceSession]:
    """The run's heads as ONNX Runtime sessions (one intra-op thread each), exported on the first
    use and then read from the cache folder."""
    require_trained_policy(run)
    groups = group_specs(walk.env)
    features = {frame: getattr(walk.data, frame).feature_names for frame in FRAMES}
    shapes = {role: tuple(groups[role].observation_spec.shape) for role in ROLES}
    folder = Path(walk.cfg.paths.cache_dir) / "onnx" / _cache_key(run, features, shapes)
    if not (folder / "roles.json").is_file():
        _export_into(folder, run, groups, features, shapes)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.log_severity_level = 3
    roles = json.loads((folder / "roles.json").read_text())
    return {
        role: ort.InferenceSession(
            str(folder / f"{role}.onnx"), options, providers=["CPUExecutionProvider"]
        )
        for role in roles
    }


def _cache_key(run: TrainedRun, features: dict, shapes: dict) -> str:
    """SHA-256 (first 16 hex digits) of the checkpoint file, the normalisation statistics, the
    feature names, the input shapes, the opset and the torch version."""
    digest = hashlib.sha256(run.checkpoint_path.read_bytes())
    norm = {role: stats.to_dict() for role, stats in sorted(run.norm.items())}
    context = [norm, features, shapes, ExportSettings().opset, torch.__version__]
    digest.update(json.dumps(context, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def _export_into(folder: Path, run: TrainedRun, groups, features: dict, shapes: dict) -> None:
    """Export the heads into a temporary sibling folder, then rename it to ``folder`` (a reader
    never sees half an export; of two writers at once, one rename wins and both are whole)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    heads = build_heads(run.checkpoint, groups, run.norm, features)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        roles = [role for role, head in heads.items() if head.module is not None]
        for role in roles:
            export_onnx(heads[role], shapes[role], staging, ExportSettings().opset)
        (staging / "roles.json").write_text(json.dumps(roles))
        try:
            staging.rename(folder)
        except OSError:  # another process cached the same key first
            if not (folder / "roles.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_contract(policy: InferencePolicy, data: MarketData, bundle: str) -> None:
    """The bundle's inputs are this data's features and windows."""
    for role in ROLES:
        spec = policy.metadata["roles"][role]["input"]
        if role == "risk" or policy.sessions[role] is None:
            continue
        names, window = list(getattr(data, role).feature_names), int(data.window[role])
        if spec["features"] != names or int(spec["window"]) != window:
            raise GrandModelError(
                f"bundle={bundle}: the {role} graph takes {spec['window']} bars of "
                f"{spec['features']}; expected this data's {window} bars of {names}"
            )

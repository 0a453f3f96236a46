"""The trained run's policy on ONNX Runtime, for the lean walk (``policy=onnx`` of
``grandmodel.evaluate`` and ``grandmodel.backtest``).

The graphs are an export bundle's (``bundle=``, hashes verified) or the run's heads exported to a
temporary folder. They take raw feature windows (normalisation inside the graph), so the strategic
and tactical graphs act on every step at once from the decision index; the risk graph reads the
env's portfolio observation step by step. Roles without a graph (a rule such as the random
baseline) keep the torch actor.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from omegaconf import DictConfig

from grandmodel.agents import group_specs
from grandmodel.config import typed
from grandmodel.config.data import DataConfig
from grandmodel.config.deploy import ExportSettings
from grandmodel.config.env import ROLES
from grandmodel.data.features import OBSERVATION
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


def raw_features(cfg: DictConfig) -> dict[str, np.ndarray]:
    """The prepared, un-normalised strategic and tactical feature tables (what the graphs take)."""
    tables = load_tables(typed(cfg.data, DataConfig), Path(cfg.paths.cache_dir))
    return {
        frame: tables.frames[frame][list(OBSERVATION[frame])].to_numpy(np.float64)
        for frame in FRAMES
    }


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
    raw = raw_features(walk.cfg)
    out = dict(torch_policy)
    for role, session in sessions.items():
        if role == "risk":
            out[role] = Actor(("risk", "observation"), RiskGraph(session, names[role]))
        else:
            graph = WindowGraph(session, names[role], walk.data, raw[role], role)
            out[role] = Actor(TIME, graph, timeless=True)
    return out


def _exported(walk: Walk, run: TrainedRun) -> dict[str, ort.InferenceSession]:
    """The run's heads exported to a temporary folder and loaded (one intra-op thread each)."""
    require_trained_policy(run)
    groups = group_specs(walk.env)
    features = {frame: getattr(walk.data, frame).feature_names for frame in FRAMES}
    heads = build_heads(run.checkpoint, groups, run.norm, features)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.log_severity_level = 3
    sessions = {}
    with tempfile.TemporaryDirectory(prefix="grandmodel-onnx-") as folder:
        for role, head in heads.items():
            if head.module is None:
                continue
            shape = tuple(groups[role].observation_spec.shape)
            path = export_onnx(head, shape, Path(folder), ExportSettings().opset)
            sessions[role] = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
    return sessions


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

"""Parity of an exported bundle with the trained TorchRL policy, on observations the env produced.

:func:`record` walks a split deterministically with the torch policy through :class:`MarketEnv` and
keeps, at every step, each role's observation as the env normalised it, the same window as raw
features (what a bundle takes), and the torch policy's actions. :func:`check_parity` replays the raw
features through the lean torch heads and through ONNX Runtime (via :class:`InferencePolicy`) and
compares; it also times batch-1 decisions.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from tensordict.nn import TensorDictModuleBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from grandmodel.config.env import ROLES
from grandmodel.data.market_data import MarketData
from grandmodel.deploy.heads import RoleHead
from grandmodel.deploy.inference import InferencePolicy
from grandmodel.env import MarketEnv

SPLIT_ORDER = ("test", "val", "train")
DISCRETE = ("strategic", "risk")


@dataclass
class Recorded:
    """Per role: raw features, the env's observation, the torch policy's action (row-aligned)."""

    raw: dict[str, np.ndarray] = field(default_factory=dict)
    seen: dict[str, np.ndarray] = field(default_factory=dict)
    actions: dict[str, np.ndarray] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)


def raw_windows(
    data: MarketData, raw: dict[str, np.ndarray], t: np.ndarray
) -> dict[str, np.ndarray]:
    """The raw strategic and tactical windows of decisions ``t`` (oldest bar first), as the env
    slices its normalised features: tactical bars ``t-W+1..t``, strategic bars up to the last one
    known at ``t``."""
    last = {"tactical": t, "strategic": data.strategic_index.numpy()[t]}
    out = {}
    for name, end in last.items():
        offsets = np.arange(-data.window[name] + 1, 1)
        out[name] = raw[name][end[:, None] + offsets]
    return out


def record(
    cfg: DictConfig,
    data: MarketData,
    raw: dict[str, np.ndarray],
    policy: TensorDictModuleBase,
    minimum: int,
) -> Recorded:
    """At least ``minimum`` steps of deterministic walks (test split first, then val and train
    while fewer were recorded; each split in consecutive episode windows from its start, one env
    per window)."""
    parts: list[dict[str, np.ndarray]] = []
    splits: dict[str, int] = {}
    for split in SPLIT_ORDER:
        have = sum(len(p["t"]) for p in parts)
        if have >= minimum or data.split_steps(split) < 1:
            continue
        steps = _walk(cfg, data, split, policy, minimum - have)
        splits[split] = len(steps["t"])
        parts.append(steps)
    joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    windows = raw_windows(data, raw, joined["t"])
    out = Recorded(splits=splits)
    for role in ROLES:
        out.raw[role] = windows[role] if role in windows else joined[f"{role}/observation"]
        out.seen[role] = joined[f"{role}/observation"]
        out.actions[role] = joined[f"{role}/action"]
    return out


def _walk(
    cfg: DictConfig, data: MarketData, split: str, policy: TensorDictModuleBase, wanted: int
) -> dict[str, np.ndarray]:
    length = int(cfg.data.episode_length)
    # whole episodes (portfolio states from flat to deep in a trade), as few as give ``wanted``
    n = min(math.ceil(data.split_steps(split) / length), math.ceil(wanted / length))
    env = MarketEnv(data, cfg, n_envs=n, split=split, mode="eval")
    keys = [(role, leaf) for role in ROLES for leaf in ("observation", "action")]
    kept: dict[str, list[np.ndarray]] = {"t": [], **{"/".join(k): [] for k in keys}}
    alive = torch.ones(n, dtype=torch.bool)
    count = 0
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        td = env.reset()
        for _ in range(length):
            td = policy(td)
            rows = alive.numpy()
            kept["t"].append(td.get(("info", "t"))[..., 0].numpy()[rows])
            for key in keys:
                kept["/".join(key)].append(td.get(key).numpy()[rows])
            count += int(rows.sum())
            out, td = env.step_and_maybe_reset(td)
            alive &= ~out.get(("next", "done"))[..., 0]
            if count >= wanted or not alive.any():
                break
    return {k: np.concatenate(v) for k, v in kept.items()}


def check_parity(
    heads: dict[str, RoleHead],
    recorded: Recorded,
    policy: InferencePolicy,
    tolerance: float,
    latency_calls: int,
) -> dict[str, Any]:
    """``parity.json``: per role, the lean torch head and ONNX Runtime against the torch policy."""
    onnx = _batched(policy, recorded.raw)
    roles: dict[str, Any] = {}
    for role in ROLES:
        expected = recorded.actions[role]
        entry: dict[str, Any] = {"observations": len(expected), **_spread(role, expected)}
        head = heads[role].module
        if head is None:
            entry["compared"] = f"no graph: {heads[role].kind} is a rule the consumer applies"
            roles[role] = entry
            continue
        with torch.no_grad():
            x = torch.from_numpy(recorded.raw[role])
            lean = head(x).numpy()
            normalised = head.normalise(x).numpy()
        entry["normalisation_max_abs_diff"] = _max_abs(normalised, recorded.seen[role])
        entry |= _agreement(role, "head", lean, expected) | _agreement(
            role, "onnx", onnx[role], expected
        )
        roles[role] = entry
    passed = all(
        e.get("onnx_mismatches", 0) == 0 and e.get("onnx_max_abs_diff", 0.0) <= tolerance
        for e in roles.values()
    )
    return {
        "observations_from": recorded.splits,
        "tolerance": tolerance,
        "passed": passed,
        "roles": roles,
        "latency_us": _latency(heads, recorded, policy, latency_calls),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "onnxruntime_intra_op_threads": 1,
        },
    }


def _batched(policy: InferencePolicy, raw: dict[str, np.ndarray], size: int = 512) -> dict:
    n = len(raw["tactical"])
    parts = [
        policy.decide({role: raw[role][i : i + size] for role in ROLES}) for i in range(0, n, size)
    ]
    return {role: np.concatenate([p[role] for p in parts]) for role in ROLES}


def _agreement(role: str, name: str, got: np.ndarray, expected: np.ndarray) -> dict[str, Any]:
    if role in DISCRETE:
        return {f"{name}_mismatches": int((got.astype(np.int64) != expected).sum())}
    return {f"{name}_max_abs_diff": _max_abs(got, expected)}


def _spread(role: str, actions: np.ndarray) -> dict[str, Any]:
    """How varied the torch policy's actions were (agreement on one constant action says little)."""
    if role in DISCRETE:
        values, counts = np.unique(actions, return_counts=True)
        return {
            "torch_action_counts": {str(v): int(c) for v, c in zip(values, counts, strict=True)}
        }
    return {"torch_action_std": [round(float(s), 6) for s in actions.std(axis=0)]}


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if len(a) else 0.0


def _latency(
    heads: dict[str, RoleHead], recorded: Recorded, policy: InferencePolicy, calls: int
) -> dict[str, dict[str, float]]:
    """p50/p99 of batch-1 decisions (µs): each role's graph, and the joint decision of all three."""
    n = len(recorded.raw["tactical"])
    rows = [{role: recorded.raw[role][i % n][None] for role in ROLES} for i in range(calls)]
    out: dict[str, dict[str, float]] = {}
    out["onnx_joint"] = _timed(lambda row: policy.decide(row), rows)
    for role in ROLES:
        session = policy.sessions[role]
        if session is not None:
            feeds = [{policy.inputs[role]["name"]: row[role]} for row in rows]
            out[f"onnx_{role}"] = _timed(partial(session.run, None), feeds)
    modules = {role: h.module for role, h in heads.items() if h.module is not None}
    tensors = [{role: torch.from_numpy(row[role]) for role in modules} for row in rows]
    with torch.inference_mode():
        out["torch_head_joint"] = _timed(
            lambda row: [module(row[role]) for role, module in modules.items()], tensors
        )
    return out


def _timed(call, rows: list) -> dict[str, float]:
    for row in rows[: min(len(rows), 100)]:  # warm-up
        call(row)
    times = np.empty(len(rows))
    for i, row in enumerate(rows):
        start = time.perf_counter_ns()
        call(row)
        times[i] = time.perf_counter_ns() - start
    p50, p99 = np.percentile(times / 1e3, [50, 99])
    return {"p50": round(float(p50), 2), "p99": round(float(p99), 2), "calls": len(rows)}

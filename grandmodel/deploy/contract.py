"""``metadata.json`` and ``production.yaml``: what a consumer needs to use a bundle without this package.

Per role: the graph's input (name, shape, dtype, features in order, their timeframe and window, how
they are normalised inside the graph) and output (meaning, bounds, decoding); then how the three
actions combine into a target position, the instrument and its costs, where the model came from
(run, commit, seed, data and normalisation hashes, final metrics) and the package versions.
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from omegaconf import DictConfig, OmegaConf

from grandmodel.data.features import FEATURES
from grandmodel.data.market_data import MarketData
from grandmodel.data.normalise import NormStats
from grandmodel.deploy.heads import TANH_LIMIT, RoleHead
from grandmodel.deploy.manifest import FORMAT, FORMAT_VERSION
from grandmodel.env.specs import RISK_FEATURES

NORM_FILE = "norm_stats.json"
RISK_MEANING = {
    "position": "signed contracts / env.max_contracts",
    "unrealised_pnl_pct": "100 * open PnL / equity",
    "realised_pnl_pct": "100 * (realised PnL - costs) / initial capital",
    "drawdown_pct": "100 * (1 - equity / peak equity)",
    "volatility": "annualised EWMA volatility of tactical closes",
    "var95_pct": "100 * historical 95% VaR of per-step equity returns (env.var_window steps)",
    "leverage": "|position| * mark * multiplier / equity",
    "bars_in_trade": "tactical bars since the open trade started / 100",
    "win_rate": "EWMA of closed trades that won (env.win_rate_alpha)",
    "stop_distance_pct": "100 * |mark - stop| / mark (0 without a stop)",
}


def norm_json(norm: dict[str, NormStats]) -> str:
    """The normalisation statistics as shipped (``norm_stats.json``; its SHA-256 is the norm hash)."""
    return json.dumps({k: v.to_dict() for k, v in sorted(norm.items())}, indent=2, sort_keys=True)


def versions(opset: int) -> dict[str, str]:
    out = {"python": platform.python_version(), "onnx_opset": str(opset)}
    for package in ("grandmodel", "torch", "onnx", "onnxruntime", "onnxscript", "numpy", "mlflow"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def _input(role: str, data: MarketData, norm: NormStats | None, normalise: bool) -> dict[str, Any]:
    if role == "risk":
        return {
            "name": role,
            "shape": [-1, len(RISK_FEATURES)],
            "dtype": "float32",
            "features": list(RISK_FEATURES),
            "feature_meaning": RISK_MEANING,
            "timeframe": "the portfolio marked at the decision's close",
            "window": None,
            "normalisation": "none (raw values)",
        }
    bars = getattr(data, role)
    window = int(data.window[role])
    names = list(bars.feature_names)
    timeframe = str(data.meta["timeframes"][role])
    spec = {
        "name": role,
        "shape": [-1, window, len(names)],
        "dtype": "float64",
        "features": names,
        "feature_meaning": {n: FEATURES[n][0] for n in names if n in FEATURES},
        "timeframe": timeframe,
        "window": window,
        "order": f"the last {window} completed {timeframe} bars known at the decision, oldest "
        "first; raw (un-normalised) feature values, NaN allowed (read as 0 after normalisation)",
    }
    if norm is not None and normalise:
        spec["normalisation"] = {
            "inside_graph": True,
            "formula": "float32(clip(nan_to_num((x - mean) / std, nan=0), -clip, clip)) in float64",
            "mean": norm.mean,
            "std": norm.std,
            "scaled": norm.scaled,
            "clip": norm.clip,
            "fitted_on": norm.fitted_on,
        }
        if norm.regime is not None:  # the HMM of the regime_* features (data/hmm.py)
            spec["normalisation"]["regime"] = norm.regime
    else:
        spec["normalisation"] = "none (NaN -> 0 inside the graph)"
    return spec


def _output(role: str, cfg: DictConfig) -> dict[str, Any]:
    if role == "strategic":
        return {
            "name": "action",
            "shape": [-1],
            "dtype": "int64",
            "meaning": "direction",
            "values": {"0": "short", "1": "flat", "2": "long"},
            "decoding": "argmax of the policy's logits (ties: lower index)",
        }
    if role == "tactical":
        low = [0.0, float(cfg.env.stop_bounds[0]), float(cfg.env.scale_bounds[0])]
        high = [1.0, float(cfg.env.stop_bounds[1]), float(cfg.env.scale_bounds[1])]
        return {
            "name": "action",
            "shape": [-1, 3],
            "dtype": "float32",
            "components": ["entry_timing", "stop_distance", "position_scale"],
            "meaning": "share of the gap to the target traded now; stop distance as a fraction "
            "of the fill price; multiplier of the target size",
            "low": low,
            "high": high,
            "decoding": "centre + radius * clamp(tanh(loc), -l, l) with centre = (high + low) / 2, "
            f"radius = (high - low) / 2, l = {TANH_LIMIT!r} (the tanh-normal's deterministic action)",
        }
    caps = [float(c) for c in cfg.env.risk_cap]
    return {
        "name": "action",
        "shape": [-1],
        "dtype": "int64",
        "meaning": "risk level: index into risk_cap",
        "risk_cap": caps,
        "decoding": "argmax of the dueling Q-values (ties: lower index)",
    }


def _role(
    role: str, head: RoleHead, data: MarketData, norm: dict, cfg: DictConfig
) -> dict[str, Any]:
    exported = head.module is not None
    entry: dict[str, Any] = {
        "source": head.source,
        "kind": head.kind,
        "onnx": f"{role}.onnx" if exported else None,
        "state_dict": f"{role}.pth" if exported else None,
        "input": _input(role, data, norm.get(role), bool(cfg.data.get("normalize", True))),
        "output": _output(role, cfg),
    }
    if head.source == "baseline":
        entry["rule"] = {"baseline": head.kind, **head.rule}
        entry["rule"]["consumer_applies"] = not exported
    else:
        entry["network"] = head.network
    if role == "strategic":
        entry["acts"] = (
            f"read only when a new {data.meta['timeframes']['strategic']} bar has closed; "
            "the direction holds in between"
        )
    return entry


def combination(cfg: DictConfig) -> dict[str, Any]:
    """How the env turns the three actions into an order (the same rule a consumer applies)."""
    return {
        "direction": "strategic action - 1 (-1 short, 0 flat, +1 long), updated only at strategic "
        "decisions",
        "target_contracts": "round(direction * position_scale * risk_cap[risk] * max_contracts)",
        "order_contracts": "round(entry_timing * (target_contracts - position))",
        "fill": "at the open of the first base bar after the decision",
        "stop": "protective stop at stop_distance * fill price from the fill, checked on base bars "
        "until the next decision; a gap through it fills at the bar's open",
        "clamps": "entry_timing to [0, 1], stop_distance to stop_bounds, position_scale to "
        "scale_bounds before use",
        "max_contracts": int(cfg.env.max_contracts),
        "risk_cap": [float(c) for c in cfg.env.risk_cap],
        "stop_bounds": [float(b) for b in cfg.env.stop_bounds],
        "scale_bounds": [float(b) for b in cfg.env.scale_bounds],
        "equity_floor": float(cfg.env.equity_floor),
    }


def build_metadata(
    *,
    name: str,
    heads: dict[str, RoleHead],
    data: MarketData,
    norm: dict[str, NormStats],
    cfg: DictConfig,
    training: dict[str, Any],
    opset: int,
) -> dict[str, Any]:
    """The bundle's contract; ``files`` lists what :func:`~grandmodel.deploy.manifest.seal` hashes."""
    env = cfg.env
    files = [NORM_FILE] + [
        f"{role}.{ext}"
        for role, h in heads.items()
        if h.module is not None
        for ext in ("onnx", "pth")
    ]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "roles": {role: _role(role, head, data, norm, cfg) for role, head in heads.items()},
        "decision_clock": {
            "timeframe": str(data.meta["timeframes"]["tactical"]),
            "base_timeframe": str(data.meta["timeframes"]["base"]),
            "timezone": str(data.meta["timezone"]),
            "rule": "one joint decision at the close of every tactical bar",
        },
        "combination": combination(cfg),
        "instrument": OmegaConf.to_container(env.contract, resolve=True),
        "costs": OmegaConf.to_container(env.costs, resolve=True),
        "initial_capital": float(env.initial_capital),
        # every env and reward setting of the run, so a consumer (the paper loop's broker and risk
        # features) reproduces the training market exactly, not only the contract and costs
        "env": OmegaConf.to_container(env, resolve=True),
        "reward": OmegaConf.to_container(cfg.reward, resolve=True),
        "training": training,
        "normalisation": {
            "file": NORM_FILE,
            "sha256": hashlib.sha256(norm_json(norm).encode()).hexdigest(),
        },
        "versions": versions(opset),
        "files": files,
    }


def production_config(metadata: dict[str, Any]) -> dict[str, Any]:
    """``production.yaml`` in the shape of the deployment config (paths relative to the bundle)."""
    roles = metadata["roles"]
    strategic = roles["strategic"]
    return {
        "strategic_marl": {
            "enabled": True,
            "model_path": strategic["state_dict"],
            "onnx_path": strategic["onnx"],
        },
        "agents": {
            role: {
                "model_path": entry["state_dict"],
                "onnx_path": entry["onnx"],
                "source": entry["source"],
                "kind": entry["kind"],
            }
            for role, entry in roles.items()
        },
        "metadata": "metadata.json",
        "paths_relative_to": "the bundle folder",
    }

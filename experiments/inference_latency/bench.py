"""Joint decision latency of the three agents at batch 1, from raw features: p50 and p99.

Rows: the TorchRL joint policy as training and evaluation run it (eager, TensorDict modules, after
normalising the raw features the way the data pipeline does), the lean torch heads of the export
(``grandmodel.deploy.heads``: normalisation inside, no TensorDict), and ONNX Runtime through
``InferencePolicy.decide`` (one intra-op thread per graph), plus the three ONNX Runtime sessions
called directly (what ``decide`` costs on top).

    .venv/bin/python experiments/inference_latency/bench.py                 # trains + exports first
    .venv/bin/python experiments/inference_latency/bench.py --run outputs/runs/<run> --calls 20000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from omegaconf import OmegaConf
from tensordict import TensorDict

from grandmodel.agents import group_specs
from grandmodel.config import typed
from grandmodel.config.data import DataConfig
from grandmodel.data.features import OBSERVATION
from grandmodel.data.pipeline import prepare
from grandmodel.deploy import InferencePolicy
from grandmodel.deploy.bundle import model_config
from grandmodel.deploy.heads import build_heads
from grandmodel.deploy.parity import record
from grandmodel.env import MarketEnv
from grandmodel.evaluation.runs import resolve_run
from grandmodel.training.policies import restore_policy

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("strategic", "tactical", "risk")
DEFAULT_SIZES = [  # the seed's network sizes (experiment=smoke shrinks them)
    "agent.strategic.shared_layers=[256,128]",
    "agent.strategic.policy_layers=[64,32]",
    "agent.strategic.value_layers=[64,32]",
    "agent.tactical.hidden_layers=[128,64,32]",
    "agent.risk.hidden_layers=[64,32]",
]


def cli(module: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, check=True)


def timed(call, rows: list, warmup: int = 500) -> dict[str, float]:
    for row in rows[:warmup]:
        call(row)
    times = np.empty(len(rows))
    for i, row in enumerate(rows):
        start = time.perf_counter_ns()
        call(row)
        times[i] = time.perf_counter_ns() - start
    p50, p99 = np.percentile(times / 1e3, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "mean": float(times.mean() / 1e3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a trained run folder (default: train one, default sizes)")
    parser.add_argument("--calls", type=int, default=10_000, help="timed decisions per row")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="inference-latency-"))
    outputs = [f"paths.outputs_dir={work}", "logger=csv"]
    run_dir = Path(args.run) if args.run else work / "run"
    if not args.run:
        cli("grandmodel.train", "experiment=smoke", *DEFAULT_SIZES, *outputs,
            f"paths.output_dir={run_dir}")  # fmt: skip
    bundle = work / "bundle"
    cli("grandmodel.export", f"run={run_dir}", f"out={bundle}", *outputs)

    run = resolve_run(str(run_dir))
    cfg = model_config(run, OmegaConf.create({"cache_dir": str(work / "cache")}))
    tables, data = prepare(typed(cfg.data, DataConfig), work / "cache", run.norm)
    raw_tables = {
        tf: tables.frames[tf][list(OBSERVATION[tf])].to_numpy(np.float64)
        for tf in ("strategic", "tactical")
    }
    groups = group_specs(MarketEnv(data, cfg, n_envs=1, split="test", mode="eval"))
    _, policy = restore_policy(run.checkpoint, groups, data.strategic.feature_names)
    policy.eval()
    walk = record(cfg, data, raw_tables, policy, 2000)
    n = len(walk.raw["tactical"])
    rows = [{r: walk.raw[r][i % n][None] for r in ROLES} for i in range(args.calls)]

    norm = run.norm
    decision = torch.zeros((1, 1), dtype=torch.bool)

    def eager(row: dict[str, np.ndarray]) -> None:
        td = TensorDict(
            {
                "strategic": {
                    "observation": torch.from_numpy(norm["strategic"].transform(row["strategic"])),
                    "decision": decision,
                },
                "tactical": {
                    "observation": torch.from_numpy(norm["tactical"].transform(row["tactical"]))
                },
                "risk": {"observation": torch.from_numpy(row["risk"])},
            },
            batch_size=[1],
        )
        policy(td)

    names = {r: getattr(data, r).feature_names for r in ("strategic", "tactical")}
    heads = {r: h.module for r, h in build_heads(run.checkpoint, groups, norm, names).items()}
    tensors = [{r: torch.from_numpy(row[r]) for r in ROLES} for row in rows]
    onnx = InferencePolicy.load(bundle)
    feeds = [{r: {onnx.inputs[r]["name"]: row[r]} for r in ROLES} for row in rows]
    results = {}
    with torch.inference_mode():
        results["torch eager (TorchRL joint policy)"] = timed(eager, rows)
        results["lean torch heads"] = timed(lambda row: [heads[r](row[r]) for r in ROLES], tensors)
    results["ONNX Runtime, InferencePolicy.decide"] = timed(onnx.decide, rows)
    results["ONNX Runtime, three sessions directly"] = timed(
        lambda feed: [onnx.sessions[r].run(None, feed[r]) for r in ROLES], feeds
    )
    print(f"\n{args.calls} joint decisions at batch 1 ({n} recorded observations, cycled); "
          f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}")  # fmt: skip
    print("| path | p50 µs | p99 µs | mean µs |\n|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['p50']:.1f} | {r['p99']:.1f} | {r['mean']:.1f} |")


if __name__ == "__main__":
    main()

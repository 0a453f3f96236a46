"""Frames/s of one training run on one process vs two collector workers vs two data-parallel (DDP)
processes.

    .venv/bin/python experiments/scale/ddp.py [--frames 16384] [--envs 8] [--batch 1024] [--quick]

Each row is ``python -m grandmodel.train experiment=smoke ...`` as a user runs it (``logger=csv``,
outputs in a temporary folder). The rate is read from the run's local record: frames between the
first and the last logged training batch over the seconds between them, so start-up (data, building,
rank 1's launch) and the final report are excluded; the one evaluation is at the end. Rows:

- 1 process, 1 torch thread;
- 1 process, 2 torch threads (what the second core buys without DDP);
- ``trainer.collector=multi_sync trainer.collector_workers=2`` (TorchRL's ``MultiSyncCollector``:
  two worker processes collect, the main process learns), 1 thread;
- ``trainer.strategy=ddp trainer.devices=2``, 1 thread each (gloo all-reduce on CPU).

``trainer.total_frames`` and ``frames_per_batch`` are global: with two processes each collects half
of every batch from its own env shard, so the two rows collect the same frames; the DDP row takes
fewer, larger gradient steps (see README, "Several processes or machines"): the gradient-steps
column (all learners, from ``last.ckpt``) shows how many.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grandmodel.checkpoints import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def run(outputs: Path, name: str, frames: int, envs: int, batch: int, extra: list[str]) -> dict:
    run_dir = outputs / "runs" / name
    args = [
        sys.executable, "-m", "grandmodel.train", "experiment=smoke", "logger=csv",
        f"paths.outputs_dir={outputs}", f"hydra.run.dir={run_dir}", f"env.n_envs={envs}",
        f"trainer.total_frames={frames}", f"trainer.frames_per_batch={batch}",
        f"trainer.eval_every_frames={frames}", *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in (run_dir / "tracking" / "record.jsonl").open()]
    batches = [r for r in rows if r["op"] == "metrics" and "fps" in r["metrics"]]
    first, last = batches[0], batches[-1]
    seconds = (last["timestamp"] - first["timestamp"]) / 1000
    weights = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    updates = sum(int(v) for k, v in weights.items() if k.endswith(".updates"))
    return {
        "updates": updates,
        "name": name,
        "frames": last["step"],
        "timed": last["step"] - first["step"],
        "seconds": seconds,
        "fps": (last["step"] - first["step"]) / seconds,
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16384)
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="2,048 frames, to check it runs")
    parser.add_argument(
        "--no-threads-row", action="store_true", help="leave out 1 process × 2 threads"
    )
    args = parser.parse_args()
    if args.quick:
        args.frames, args.batch = 2048, 256
    configs = [
        ("1 process, 1 thread", ["trainer.num_threads=1"]),
        ("1 process, 2 threads", ["trainer.num_threads=2"]),
        ("2 collector workers (multi_sync), 1 thread", ["trainer.num_threads=1",
                                                        "trainer.collector=multi_sync",
                                                        "trainer.collector_workers=2"]),
        ("DDP 2 processes, 1 thread each", ["trainer.num_threads=1", "trainer.strategy=ddp",
                                            "trainer.devices=2"]),
    ]  # fmt: skip
    if args.no_threads_row:
        del configs[1]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, extra) in enumerate(configs):
            results.append(
                run(Path(tmp), f"row{i}", args.frames, args.envs, args.batch, extra)
                | {"name": name}
            )
            print(f"{name}: {results[-1]['fps']:,.0f} frames/s", file=sys.stderr)
    base = results[0]["fps"]
    print(f"\n{args.frames:,} frames, {args.envs} envs, {args.batch} frames per (global) batch\n")
    print(
        "| run | frames timed | seconds | frames/s | vs 1 process | gradient steps (per process) "
        "| wall s (whole command) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['name']} | {r['timed']:,} | {r['seconds']:.1f} | {r['fps']:,.0f} "
            f"| {r['fps'] / base:.2f}× | {r['updates']:,} | {r['wall']:.1f} |"
        )


if __name__ == "__main__":
    main()

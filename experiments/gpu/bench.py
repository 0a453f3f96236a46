"""GPU path: env-steps/s of the market env at 1k–64k envs (eager and ``env.compile=true``) and
training frames/s of ``agent=marl`` with env, collector, learners and replay on the device.

    .venv/bin/python experiments/gpu/bench.py                       # on a CUDA machine: the full table
    .venv/bin/python experiments/gpu/bench.py --device cpu --envs 64 256 --train-frames 2048   # a check

Every env row steps with uniformly random actions of all three agents through TorchRL's
``step_and_maybe_reset`` (portfolio, costs, stops, rewards, auto-resets included); actions are made
on the device, so no host round trip happens per step. The training row runs
``python -m grandmodel.train`` in-process (``trainer.accelerator=gpu env.device=cuda``) and reports
the frames/s of its last evaluation. Writes ``results/<device>.md`` beside this file.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import grandmodel
from grandmodel.data.pipeline import prepare_data
from grandmodel.env import MarketEnv

HERE = Path(__file__).resolve().parent


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def env_rate(cfg, data, n: int, device: torch.device, seconds: float, compiled: bool) -> float:
    """Env-steps per second (all envs) of ``n`` envs on ``device``."""
    env = MarketEnv(data, cfg, n_envs=n, device=device, compile=compiled)
    stop, scale = list(cfg.env.stop_bounds), list(cfg.env.scale_bounds)
    low = torch.tensor([0.0, stop[0], scale[0]], device=device)
    span = torch.tensor([1.0, stop[1], scale[1]], device=device) - low
    td = env.reset()

    def step(td):
        td.set(("strategic", "action"), torch.randint(3, (n,), device=device))
        td.set(("tactical", "action"), (torch.rand(n, 3, device=device) * span + low).float())
        td.set(("risk", "action"), torch.randint(5, (n,), device=device))
        return env.step_and_maybe_reset(td)[1]

    for _ in range(30 if compiled else 10):  # warm-up (and compilation)
        td = step(td)
    _sync(device)
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            td = step(td)
        steps += 10
        _sync(device)
    return steps * n / elapsed


def training_rate(device: torch.device, frames: int, outputs: Path) -> float:
    """Frames/s of a short ``agent=marl`` training run on ``device``."""
    from grandmodel.evaluation.training_job import train

    gpu = device.type == "cuda"
    overrides = [
        f"trainer.total_frames={frames}", f"trainer.eval_every_frames={frames // 2}",
        "trainer.enable_progress_bar=false", "logger=csv", f"paths.outputs_dir={outputs}",
        f"trainer.accelerator={'gpu' if gpu else 'cpu'}", f"env.device={device.type}",
        "env.n_envs=1024" if gpu else "env.n_envs=64", "trainer.frames_per_batch=16384" if gpu else "trainer.frames_per_batch=1024",
    ]  # fmt: skip
    result = train(grandmodel.load_config(overrides))
    rows = [row for row in result["run"].system.history if "fps" in row]
    return rows[-1]["fps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--envs", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--train-frames", type=int, default=1_000_000)
    parser.add_argument("--outputs", type=Path, default=HERE / "outputs")
    args = parser.parse_args()
    device = torch.device(args.device)
    cfg = grandmodel.load_config([f"paths.outputs_dir={args.outputs}", f"env.device={device.type}"])
    data = prepare_data(cfg)
    lines = [
        f"# GPU path on {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}",
        "", f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}", "",
        "| envs | eager env-steps/s | compiled env-steps/s |", "|---:|---:|---:|",
    ]  # fmt: skip
    for n in args.envs:
        eager = env_rate(cfg, data, n, device, args.seconds, compiled=False)
        compiled = env_rate(cfg, data, n, device, args.seconds, compiled=True)
        lines.append(f"| {n:,} | {eager:,.0f} | {compiled:,.0f} |")
        print(lines[-1], flush=True)
    fps = training_rate(device, args.train_frames, args.outputs)
    lines += ["", f"Training (`agent=marl`, {args.train_frames:,} frames): {fps:,.0f} frames/s"]
    print(lines[-1])
    out = HERE / "results" / f"{device.type}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"table: {out}")


if __name__ == "__main__":
    main()

"""Frames/s of the MARL training loop: Lightning vs a plain loop vs Stable-Baselines3 PPO.

    .venv/bin/python experiments/training_throughput/bench.py [--frames 200000] [--sb3-frames N] [--quick]

A  Lightning: ``build_system`` (as ``python -m grandmodel.train`` builds it, ``agent=marl``), then
   ``pl.Trainer.fit`` with no logger, checkpoints, progress bar or validation.
B  plain loop: a fresh ``build_system`` with the same seed, driven by hand (every learner
   ``observe(batch)`` then ``learn(progress)``; plain torch optimisers and ``loss.backward()``).
C  Stable-Baselines3 PPO on ``to_gymnasium(cfg, role="strategic")`` with our PPO's hyper-parameters.
D  our PPO alone (``agent=ppo``) through Lightning, as A: the like-for-like row for C.

Frames are env steps (tactical bars) over all envs; seconds are the wall time of ``fit`` / the loop /
``learn`` (data preparation and construction excluded). ``--quick``: ``experiment=smoke`` sizes and a
few thousand frames, to check the script runs.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from stable_baselines3 import PPO

import grandmodel
from grandmodel.config import validate
from grandmodel.data.market_data import MarketData
from grandmodel.data.pipeline import prepare_data
from grandmodel.env import to_gymnasium
from grandmodel.env.sb3 import ppo_arguments
from grandmodel.training.run import build_system, configure_torch
from grandmodel.training.system import MARLSystem


@dataclass
class Row:
    name: str
    frames: int
    seconds: float
    updates: int  # gradient steps of all learners

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


def compose(agent: str, frames: int, threads: int, quick: bool, outputs: Path) -> DictConfig:
    """The training config of ``agent`` with ``frames`` to collect, outputs under ``outputs``."""
    overrides = [
        f"agent={agent}",
        f"trainer.total_frames={frames}",
        f"trainer.num_threads={threads}",  # configure_torch sets it
        "logger=csv",
        f"paths.outputs_dir={outputs}",
        f"paths.output_dir={outputs}/run",
    ]
    return grandmodel.load_config(["experiment=smoke", *overrides] if quick else overrides)


def fresh_system(cfg: DictConfig, data: MarketData) -> MARLSystem:
    """Seeded and threaded as training does, then built exactly as ``run_training`` builds it."""
    rc = validate(cfg)
    configure_torch(rc)
    return build_system(cfg, rc, data, evaluator=None)


def epochs(cfg: DictConfig, system: MARLSystem) -> int:
    source = system.source
    return math.ceil(
        int(cfg.trainer.total_frames) / (source.batches_per_epoch * source.frames_per_batch)
    )


def updates(system: MARLSystem) -> int:
    return sum(int(learner.updates) for learner in system.learners.values())


def lightning(name: str, cfg: DictConfig, data: MarketData) -> Row:
    """``Trainer.fit`` with the Trainer arguments of ``run_training``, minus logging and validation."""
    system = fresh_system(cfg, data)
    trainer = pl.Trainer(
        accelerator=str(cfg.trainer.accelerator),
        devices=int(cfg.trainer.devices),
        precision=str(cfg.trainer.precision),
        max_epochs=epochs(cfg, system),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=int(cfg.trainer.log_every_n_batches),
        default_root_dir=str(cfg.paths.output_dir),
        inference_mode=False,
        use_distributed_sampler=False,
    )
    start = time.perf_counter()
    try:
        trainer.fit(system)
    finally:
        system.source.shutdown()
    seconds = time.perf_counter() - start
    return Row(name, system.source.frames, seconds, updates(system))


def plain_loop(cfg: DictConfig, data: MarketData) -> Row:
    """The same epochs of the same source and learners, with no Trainer attached."""
    system = fresh_system(cfg, data)
    source = system.source
    start = time.perf_counter()
    try:
        for _ in range(epochs(cfg, system)):
            for batch in source:
                progress = min(source.frames / max(source.total_frames, 1), 1.0)
                for learner in system.learners.values():
                    learner.observe(batch)
                    learner.learn(progress)
    finally:
        source.shutdown()
    seconds = time.perf_counter() - start
    return Row("B plain loop (same system, no Trainer)", source.frames, seconds, updates(system))


def sb3_ppo(cfg: DictConfig, data: MarketData, frames: int) -> Row:
    """SB3 PPO on the one-env Gymnasium adapter (tactical and risk by their baselines), with our
    PPO's hyper-parameters and layer sizes; SB3 gives policy and value separate trunks."""
    n_steps = int(cfg.trainer.frames_per_batch)  # one env: a rollout = one of our collector batches
    env = to_gymnasium(cfg, role="strategic", data=data)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=n_steps,
        device="cpu",
        seed=int(cfg.seed),
        **ppo_arguments(cfg.agent.strategic),
    )
    start = time.perf_counter()
    model.learn(total_timesteps=frames)
    seconds = time.perf_counter() - start
    steps = (
        (model.num_timesteps // n_steps) * model.n_epochs * math.ceil(n_steps / model.batch_size)
    )
    return Row("C SB3 PPO, Gymnasium adapter (strategic)", model.num_timesteps, seconds, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000, help="frames of rows A, B and D")
    parser.add_argument(
        "--sb3-frames", type=int, default=None, help="frames of row C (default: --frames)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--quick", action="store_true", help="smoke-sized, seconds: check it runs")
    args = parser.parse_args()
    frames = 2048 if args.quick else args.frames
    sb3_frames = 1024 if args.quick else (args.sb3_frames or args.frames)
    for name in ("pytorch_lightning.utilities.rank_zero", "torchrl"):  # hardware tips, buffer inits
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="training-throughput-") as folder:
        outputs = Path(folder)
        marl = compose("marl", frames, args.threads, args.quick, outputs)
        solo = compose("ppo", frames, args.threads, args.quick, outputs)
        data = prepare_data(marl)
        # untimed: first-call costs (allocator, kernels, lazy modules) must not land on row A
        warm = compose(
            "marl", 2 * int(marl.trainer.frames_per_batch), args.threads, args.quick, outputs
        )
        lightning("warm-up", warm, data)
        plain_loop(warm, data)
        a = lightning("A Lightning (MARLSystem + Trainer.fit), marl", marl, data)
        b = plain_loop(marl, data)
        d = lightning("D Lightning, our PPO only (agent=ppo)", solo, data)
        c = sb3_ppo(solo, data, sb3_frames)
    env = marl.env
    print(
        f"\ntorch threads {torch.get_num_threads()}, {env.n_envs} envs x "
        f"{int(marl.trainer.frames_per_batch) // int(env.n_envs)} steps per batch, "
        f"deterministic algorithms {bool(marl.trainer.deterministic)}"
        + (" (--quick: smoke sizes)" if args.quick else "")
        + "\n"
    )
    print("| row | frames | seconds | frames/s | gradient steps |")
    print("|---|---:|---:|---:|---:|")
    for row in (a, b, c, d):
        print(
            f"| {row.name} | {row.frames:,} | {row.seconds:.1f} | {row.fps:,.0f} | {row.updates:,} |"
        )
    overhead = (b.fps - a.fps) / b.fps
    print(f"\nLightning overhead (B - A) / B: {100 * overhead:+.1f}% (goal <= 5%)")
    print(f"our PPO vs SB3 PPO, D / C: {d.fps / c.fps:.2f}x frames/s (goal >= 3x)")
    print(f"agent=marl vs agent=ppo, A / D: {100 * a.fps / d.fps:.0f}% frames/s (goal >= 60%)")


if __name__ == "__main__":
    main()

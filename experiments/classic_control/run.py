"""Are the project's learners correct? PPO and DQN on CartPole-v1, SAC on Pendulum-v1.

    .venv/bin/python experiments/classic_control/run.py {ppo-cartpole|dqn-cartpole|sac-pendulum|all}
        [--seed 0] [--frames N] [--no-stop]

Each run trains with ``fit_agent`` (the project's Lightning machinery) and CleanRL-like
hyper-parameters, evaluates the deterministic policy on 10 episodes every ``eval_every`` frames,
stops once the target mean return is reached (or at the frame budget; ``--no-stop``: always at the
budget), writes the evaluation curve to ``results/<run>-seed<seed>[-full].csv`` and prints one row
of the README's table.
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torchrl.envs import EnvBase, GymEnv, SerialEnv

from grandmodel.config.agent import DQNConfig, PPOConfig, ReplayConfig, SACConfig
from grandmodel.evaluation.evaluator import EpisodeEvaluator
from grandmodel.training.single import fit_agent

RESULTS = Path(__file__).parent / "results"
EVAL_EPISODES = 10


@dataclass(frozen=True)
class Run:
    algo: str
    env_id: str
    target: float
    budget: int  # frames
    n_envs: int
    frames_per_batch: int
    eval_every: int  # frames
    max_steps: int  # episode length (for the evaluator)
    cfg: Any


RUNS: dict[str, Run] = {
    # CleanRL ppo.py: 4 envs x 128 steps, 4 epochs of 4 minibatches, separate 64-64 tanh nets
    "ppo-cartpole": Run(
        "PPO",
        "CartPole-v1",
        475.0,
        500_000,
        n_envs=4,
        frames_per_batch=512,
        eval_every=10_240,
        max_steps=500,
        cfg=PPOConfig(
            lr=2.5e-4,
            gamma=0.99,
            gae_lambda=0.95,
            clip_range=0.2,
            entropy_coeff=0.01,
            value_loss_coeff=0.5,
            max_grad_norm=0.5,
            epochs_per_update=4,
            batch_size=128,
            shared_layers=[],
            policy_layers=[64, 64],
            value_layers=[64, 64],
            activation="tanh",
            dropout=0.0,
        ),
    ),
    # CleanRL dqn.py: one gradient step per 10 frames (10 envs, 1 step per vectorised step),
    # batch 128, target copied every 500 frames, 120-84 ReLU net, uniform 10k replay
    "dqn-cartpole": Run(
        "DQN",
        "CartPole-v1",
        475.0,
        500_000,
        n_envs=10,
        frames_per_batch=500,
        eval_every=10_000,
        max_steps=500,
        cfg=DQNConfig(
            lr=2.5e-4,
            gamma=0.99,
            batch_size=128,
            epsilon_start=1.0,
            epsilon_end=0.05,
            epsilon_decay=0.994,  # per batch of 500 frames: 0.05 after 250k frames
            target_update_interval=50,
            gradient_steps=1,
            max_grad_norm=10.0,
            dueling=True,  # the project's risk agent; CleanRL's is a plain DQN
            double_dqn=True,
            hidden_layers=[120, 84],
            activation="relu",
            dropout=0.0,
            replay=ReplayConfig(buffer_size=10_000, min_size_to_train=10_000, prioritized=False),
        ),
    ),
    # CleanRL sac_continuous_action.py: one gradient step per frame, batch 256, 256-256 ReLU,
    # tau 0.005, automatic temperature from alpha 1, learning from 5k frames on
    "sac-pendulum": Run(
        "SAC",
        "Pendulum-v1",
        -200.0,
        100_000,
        n_envs=1,
        frames_per_batch=200,
        eval_every=2_000,
        max_steps=200,
        cfg=SACConfig(
            lr=1e-3,
            gamma=0.99,
            batch_size=256,
            tau=0.005,
            alpha_init=1.0,
            gradient_steps=1,
            max_grad_norm=10.0,
            hidden_layers=[256, 256],
            activation="relu",
            dropout=0.0,
            replay=ReplayConfig(buffer_size=100_000, min_size_to_train=5_000, prioritized=False),
        ),
    ),
}


def make_env(env_id: str, n: int, seed: int | None = None) -> EnvBase:
    env = SerialEnv(n, partial(GymEnv, env_id, categorical_action_encoding=True))
    if seed is not None:
        env.set_seed(seed)
    return env


class Progress:
    """Wraps the evaluator to print each evaluation as it happens."""

    def __init__(self, evaluator: EpisodeEvaluator, frames_per_eval: int) -> None:
        self.evaluator, self.frames_per_eval = evaluator, frames_per_eval
        self.evaluations, self.started = 0, time.perf_counter()

    def __call__(self, policy: Any) -> dict[str, float]:
        metrics = self.evaluator(policy)
        self.evaluations += 1
        print(
            f"  ~{self.evaluations * self.frames_per_eval} frames: "
            f"mean return {metrics['mean_return']:.1f} ({time.perf_counter() - self.started:.0f} s)",
            flush=True,
        )
        return metrics


def train(name: str, seed: int, frames: int | None, stop: bool) -> str:
    run = RUNS[name]
    # every run: closing a torchrl SerialEnv (as the previous run ended) raises the count again
    torch.set_num_threads(1)
    cfg = OmegaConf.structured(run.cfg)
    budget = frames or run.budget
    print(
        f"== {name} seed {seed}: {run.n_envs} envs, {run.frames_per_batch} frames/batch, "
        f"eval every {run.eval_every} frames, budget {budget}\n{OmegaConf.to_yaml(cfg)}",
        flush=True,
    )
    evaluator = EpisodeEvaluator(
        partial(make_env, run.env_id, EVAL_EPISODES, seed + 10_000), EVAL_EPISODES, run.max_steps
    )
    frames_per_eval = run.eval_every // run.frames_per_batch * run.frames_per_batch
    started = time.perf_counter()
    system = fit_agent(
        partial(make_env, run.env_id, run.n_envs),
        cfg,
        total_frames=budget,
        frames_per_batch=run.frames_per_batch,
        eval_every_frames=run.eval_every,
        evaluator=Progress(evaluator, frames_per_eval),
        target=("val/mean_return", run.target) if stop else None,
        seed=seed,
    )
    wall = time.perf_counter() - started
    evaluator.env.close()  # now, rather than when garbage-collected in the middle of the next run
    curve = [
        (int(row["frames"]), row["val/mean_return"])
        for row in system.history
        if "val/mean_return" in row
    ]
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if stop else "-full"
    with open(RESULTS / f"{name}-seed{seed}{suffix}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["frames", "mean_return"])
        writer.writerows(curve)
    best = max(ret for _, ret in curve)
    reached = next((str(fr) for fr, ret in curve if ret >= run.target), "not reached")
    return (
        f"| {run.algo} | {run.env_id} | {seed} | {run.target:g} | {reached} | {best:.1f} "
        f"| {curve[-1][0]} | {curve[-1][1]:.1f} | {wall:.0f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", choices=[*RUNS, "all"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=None, help="override the frame budget")
    parser.add_argument(
        "--no-stop", action="store_true", help="train the whole budget (curve to *-full.csv)"
    )
    args = parser.parse_args()
    names = list(RUNS) if args.run == "all" else [args.run]
    rows = [train(name, args.seed, args.frames, not args.no_stop) for name in names]
    print(
        "| algorithm | env | seed | target | frames to target | best mean return "
        "| frames run | last mean return | wall time |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

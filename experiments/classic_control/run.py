"""Are the project's learners correct? PPO/DQN on CartPole and Acrobot, SAC on Pendulum and beyond.

PPO and DQN on CartPole-v1 and Acrobot-v1, SAC on Pendulum-v1, MountainCarContinuous-v0 and
InvertedPendulum-v5 (MuJoCo), PPO on InvertedPendulum-v5.

    .venv/bin/python experiments/classic_control/run.py RUN|all [--seed 0] [--frames N] [--no-stop]
        [--defaults]

RUN is one of ppo-cartpole, dqn-cartpole, sac-pendulum, ppo-acrobot, dqn-acrobot, sac-mountaincar,
sac-invertedpendulum, ppo-invertedpendulum.
Each run trains with ``fit_agent`` (the project's Lightning machinery) and CleanRL-like
hyper-parameters (``--defaults``: the learner's shipped defaults from ``conf/agent/marl.yaml``
instead, strategic PPO / tactical SAC / risk DQN; the network's input and output follow the env),
evaluates the deterministic policy on 10 episodes every ``eval_every`` frames, stops once the target
mean return is reached (or at the frame budget; ``--no-stop``: always at the budget), writes the
evaluation curve to ``results/<run>[-defaults]-seed<seed>[-full].csv``, appends a summary row to
``results/summary.csv`` and prints one row of the README's table: frames to the first success
(first evaluation >= target), best, last and the worst evaluation from the first success on.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torchrl.envs import DoubleToFloat, EnvBase, GymEnv, SerialEnv, TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from grandmodel.config.agent import DQNConfig, PPOConfig, ReplayConfig, SACConfig
from grandmodel.evaluation.evaluator import EpisodeEvaluator
from grandmodel.training.single import fit_agent

RESULTS = Path(__file__).parent / "results"
EVAL_EPISODES = 10
MARL_YAML = Path(__file__).resolve().parents[2] / "conf" / "agent" / "marl.yaml"
# which role of conf/agent/marl.yaml ships each learner's defaults
SHIPPED = {
    "PPO": ("strategic", PPOConfig),
    "SAC": ("tactical", SACConfig),
    "DQN": ("risk", DQNConfig),
}


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
            exploration_fraction=0.5,  # 0.05 after 250k of the 500k frames, as CleanRL
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
# Acrobot: CleanRL uses the same settings as for CartPole; the budget here is 100k frames (CleanRL
# 500k), so DQN's epsilon reaches 0.05 at 50k frames (CleanRL's exploration fraction 0.5).
RUNS["ppo-acrobot"] = replace(
    RUNS["ppo-cartpole"], env_id="Acrobot-v1", target=-100.0, budget=100_000
)
RUNS["dqn-acrobot"] = replace(
    RUNS["dqn-cartpole"],
    env_id="Acrobot-v1",
    target=-100.0,
    budget=100_000,
)
# MountainCarContinuous: the Pendulum SAC settings; episodes of 999 steps, one batch per episode
RUNS["sac-mountaincar"] = replace(
    RUNS["sac-pendulum"],
    env_id="MountainCarContinuous-v0",
    target=90.0,
    budget=30_000,
    frames_per_batch=1000,
    eval_every=5_000,
    max_steps=999,
)

# InvertedPendulum-v5 (MuJoCo, `pip install mujoco imageio`): the continuous check beyond Pendulum
# that a plain SAC can pass (MountainCarContinuous needs an exploration aid). 1,000-step episodes,
# +1 per step upright; solved at a mean of 950.
RUNS["sac-invertedpendulum"] = replace(
    RUNS["sac-pendulum"],
    env_id="InvertedPendulum-v5",
    target=950.0,
    budget=50_000,
    frames_per_batch=1000,
    eval_every=5_000,
    max_steps=1000,
)
# PPO with a Gaussian policy on the same task: CleanRL's ppo_continuous_action.py uses 2,048
# frames per update, 10 epochs of 32 minibatches, lr 3e-4, no entropy bonus
RUNS["ppo-invertedpendulum"] = Run(
    "PPO",
    "InvertedPendulum-v5",
    950.0,
    200_000,
    n_envs=4,
    frames_per_batch=2048,
    eval_every=10_240,
    max_steps=1000,
    cfg=replace(
        RUNS["ppo-cartpole"].cfg, lr=3e-4, epochs_per_update=10, batch_size=64, entropy_coeff=0.0
    ),
)


def shipped_defaults(algo: str) -> Any:
    """The learner's config as shipped in conf/agent/marl.yaml (on top of its schema)."""
    role, schema = SHIPPED[algo]
    return OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.load(MARL_YAML)[role])


def gym_env(env_id: str) -> EnvBase:
    """One gymnasium env; MuJoCo's float64 observations cast to the networks' float32."""
    return TransformedEnv(GymEnv(env_id, categorical_action_encoding=True), DoubleToFloat())


def make_env(env_id: str, n: int, seed: int | None = None) -> EnvBase:
    env = SerialEnv(n, partial(gym_env, env_id))
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


def sampled_return(run: Run, policy: Any, seed: int) -> float:
    """Mean return of EVAL_EPISODES first episodes of the policy *sampling* its actions."""
    env = make_env(run.env_id, EVAL_EPISODES, seed)
    try:
        with set_exploration_type(ExplorationType.RANDOM), torch.no_grad():
            policy.eval()
            td = env.rollout(run.max_steps, policy, break_when_any_done=False)
            policy.train()
    finally:
        env.close()
    reward, done = td["next", "reward"][..., 0], td["next", "done"][..., 0].int()
    alive = (torch.cumsum(done, dim=-1) - done) == 0
    return float((reward * alive).sum(-1).mean())


def train(
    name: str,
    seed: int,
    frames: int | None,
    stop: bool,
    defaults: bool = False,
    sampled_check: bool = False,
) -> str:
    run = RUNS[name]
    # every run: closing a torchrl SerialEnv (as the previous run ended) raises the count again
    torch.set_num_threads(1)
    cfg = shipped_defaults(run.algo) if defaults else OmegaConf.structured(run.cfg)
    settings = "shipped defaults" if defaults else "CleanRL-like"
    budget = frames or run.budget
    print(
        f"== {name} ({settings}) seed {seed}: {run.n_envs} envs, {run.frames_per_batch} "
        f"frames/batch, eval every {run.eval_every} frames, budget {budget}, "
        f"load average {os.getloadavg()[0]:.2f}\n{OmegaConf.to_yaml(cfg)}",
        flush=True,
    )
    evaluator = EpisodeEvaluator(
        partial(make_env, run.env_id, EVAL_EPISODES, seed + 10_000), EVAL_EPISODES, run.max_steps
    )
    frames_per_eval = run.eval_every // run.frames_per_batch * run.frames_per_batch
    started, cpu_started = time.perf_counter(), time.process_time()
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
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    load = os.getloadavg()[0]
    if sampled_check:
        greedy = evaluator(system.policy)["mean_return"]
        sampled = sampled_return(run, system.policy, seed + 20_000)
        print(f"final policy, {EVAL_EPISODES} episodes: greedy {greedy:.1f}, sampled {sampled:.1f}")
    evaluator.env.close()  # now, rather than when garbage-collected in the middle of the next run
    curve = [
        (int(row["frames"]), row["val/mean_return"])
        for row in system.history
        if "val/mean_return" in row
    ]
    RESULTS.mkdir(exist_ok=True)
    stem = f"{name}{'-defaults' if defaults else ''}-seed{seed}{'' if stop else '-full'}"
    with open(RESULTS / f"{stem}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["frames", "mean_return"])
        writer.writerows(curve)
    s = summarise(curve, run.target)
    summary = RESULTS / "summary.csv"
    new = not summary.exists()
    with open(summary, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(
                ["run", "algorithm", "env", "settings", "seed", "target", "frames_run",
                 "first_success", "best", "last", "worst_after_success", "evals_ok_after",
                 "evals_after", "wall_s", "cpu_s", "load_1min"]
            )  # fmt: skip
        writer.writerow(
            [stem, run.algo, run.env_id, settings, seed, run.target, s["frames_run"],
             s["first"], f"{s['best']:.1f}", f"{s['last']:.1f}", s["worst"], s["ok"], s["after"],
             f"{wall:.0f}", f"{cpu:.0f}", f"{load:.2f}"]
        )  # fmt: skip
    reached = s["first"] if s["first"] != "" else "not reached"
    worst = s["worst"] if s["worst"] != "" else "–"
    return (
        f"| {run.algo} | {run.env_id} | {settings} | {seed} | {run.target:g} | {s['frames_run']} "
        f"| {reached} | {s['best']:.1f} | {s['last']:.1f} | {worst} | {s['ok']} / {s['after']} "
        f"| {wall:.0f} s | {cpu:.0f} s | {load:.2f} |"
    )


def summarise(curve: list[tuple[int, float]], target: float) -> dict[str, Any]:
    """Frames to the first evaluation >= target, best, last, and the worst evaluation from that
    first success on (with how many of those evaluations stay >= target)."""
    if not curve:
        nan = float("nan")
        return dict(frames_run=0, first="", best=nan, last=nan, worst="", ok=0, after=0)
    first = next((i for i, (_, ret) in enumerate(curve) if ret >= target), None)
    after = [ret for _, ret in curve[first:]] if first is not None else []
    return dict(
        frames_run=curve[-1][0],
        first=curve[first][0] if first is not None else "",
        best=max(ret for _, ret in curve),
        last=curve[-1][1],
        worst=f"{min(after):.1f}" if after else "",
        ok=sum(ret >= target for ret in after),
        after=len(after),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", choices=[*RUNS, "all"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=None, help="override the frame budget")
    parser.add_argument(
        "--no-stop", action="store_true", help="train the whole budget (curve to *-full.csv)"
    )
    parser.add_argument(
        "--defaults",
        action="store_true",
        help="the learner's shipped defaults (conf/agent/marl.yaml) instead of CleanRL-like ones",
    )
    parser.add_argument(
        "--sampled-check",
        action="store_true",
        help="at the end, evaluate the final policy greedy and sampling its actions",
    )
    args = parser.parse_args()
    names = list(RUNS) if args.run == "all" else [args.run]
    rows = [
        train(n, args.seed, args.frames, not args.no_stop, args.defaults, args.sampled_check)
        for n in names
    ]
    print(
        "| algorithm | env | settings | seed | target | frames run | first success "
        "| best | last | worst from first success on | evals ≥ target from then on "
        "| wall | CPU | load (1 min) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

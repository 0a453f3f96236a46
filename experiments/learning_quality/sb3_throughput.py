"""Stable-Baselines3 PPO throughput on the strategic role: old per-bar view vs decision-level views.

    .venv/bin/python experiments/learning_quality/sb3_throughput.py [--timesteps 1024] [--envs 8 32]

Each row trains PPO (MlpPolicy, 256 decisions per rollout, 2 epochs, batch 64, one thread) on
``experiment=smoke`` data for the same number of SB3 timesteps and prints its rates: SB3 timesteps
(actions asked of the agent) per second, real strategic decisions per second (steps whose next
observation is at a 30-minute close, ``info["strategic_decision"]``), and base 5-minute env steps per
second. The old view (``to_gymnasium``) asks for a strategic action at every base step and ignores
five in six; the decision views ask only at 30-minute closes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

import grandmodel
from grandmodel.data.pipeline import prepare_data
from grandmodel.env import to_gymnasium
from grandmodel.env.gym_views import DecisionEnv, DecisionVectorEnv
from grandmodel.env.sb3 import SB3VecEnv


class Counter(BaseCallback):
    """Counts base env steps (``info["elapsed_steps"]``, 1 where absent) and strategic decisions."""

    def __init__(self) -> None:
        super().__init__()
        self.base_steps = self.decisions = 0

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            self.base_steps += int(info.get("elapsed_steps", 1))
            self.decisions += bool(info["strategic_decision"])
        return True


def measure(venv: Any, timesteps: int) -> tuple[float, float, float]:
    """SB3 timesteps, strategic decisions and base steps per second of PPO on ``venv``."""
    n_steps = max(256 // venv.num_envs, 1)
    model = PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=64, n_epochs=2, seed=0, device="cpu")
    counter = Counter()
    start = time.perf_counter()
    model.learn(total_timesteps=timesteps, callback=counter)
    seconds = time.perf_counter() - start
    return (
        model.num_timesteps / seconds,
        counter.decisions / seconds,
        counter.base_steps / seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=1024)
    parser.add_argument("--envs", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args()
    torch.set_num_threads(1)
    outputs = tempfile.mkdtemp(prefix="sb3_throughput_")
    cfg = grandmodel.load_config(["experiment=smoke", f"paths.outputs_dir={outputs}"])
    data = prepare_data(cfg)
    rows: list[tuple[str, Any]] = [
        ("old view: to_gymnasium (every base step)", DummyVecEnv([lambda: to_gymnasium(cfg, "strategic", data)])),
        ("DecisionEnv (1 env)", DummyVecEnv([lambda: DecisionEnv(cfg, "strategic", data)])),
    ]  # fmt: skip
    for n in args.envs:
        vector = DecisionVectorEnv(cfg, "strategic", n, data, autoreset_mode="SameStep")
        rows.append((f"DecisionVectorEnv ({n} envs, one MarketEnv)", SB3VecEnv(vector)))
    print(f"SB3 PPO, strategic role, {args.timesteps} timesteps each, 1 thread")
    print("| view | SB3 timesteps/s | strategic decisions/s | base env steps/s |")
    print("|---|---:|---:|---:|")
    for name, venv in rows:
        rates = measure(venv, args.timesteps)
        print(f"| {name} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |", flush=True)


if __name__ == "__main__":
    main()

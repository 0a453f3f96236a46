"""Env-steps per second of the full market env vs gym-anytrading and a pure observation gather.

    .venv/bin/python experiments/env_throughput/bench.py [--envs 1 64 1024 4096] [--seconds 3] [--compile]

Every row steps with uniformly random actions for all three agents (portfolio, costs, stops, rewards,
risk features, auto-resets included) through TorchRL's ``step_and_maybe_reset``. ``gather`` copies the
same observation bytes per step (tactical + strategic windows) and nothing else: the memory-bound
reference. gym-anytrading's ``StocksEnv`` runs one env on the same tactical closes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import grandmodel
from grandmodel.data.pipeline import prepare_data
from grandmodel.env.kernel import _windows


def timed(step, seconds: float, warmup: int = 20) -> float:
    """Calls per second of ``step`` over about ``seconds``."""
    for _ in range(warmup):
        step()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            step()
        calls += 10
    return calls / elapsed


def random_actions(env):
    n = env.n
    low = torch.tensor([0.0, *[env.cfg.env.stop_bounds[0]], env.cfg.env.scale_bounds[0]])
    span = torch.tensor([1.0, env.cfg.env.stop_bounds[1], env.cfg.env.scale_bounds[1]]) - low

    def fill(td):
        td.set(("strategic", "action"), torch.randint(3, (n,)))
        td.set(("tactical", "action"), (torch.rand(n, 3) * span + low).float())
        td.set(("risk", "action"), torch.randint(5, (n,)))
        return td

    return fill


def market_env_rate(cfg, data, n: int, seconds: float) -> float:
    env = grandmodel.build_env(cfg, data, n_envs=n)
    act = random_actions(env)
    state = {"td": env.reset()}

    def step():
        _, state["td"] = env.step_and_maybe_reset(act(state["td"]))

    return timed(step, seconds) * n


def gather_rate(data, n: int, seconds: float) -> float:
    tactical = _windows(data.tactical.features, data.window["tactical"])
    strategic = _windows(data.strategic.features, data.window["strategic"])
    lo, hi = data.splits["train"]
    state = {"ptr": torch.randint(lo, hi - 1, (n,))}
    sidx = data.strategic_index

    def step():  # every env moves one decision forward, as in the env (so caches do not flatter it)
        ptr = state["ptr"] = torch.where(state["ptr"] + 1 < hi, state["ptr"] + 1, lo)
        tactical[ptr - (data.window["tactical"] - 1)]
        strategic[sidx[ptr] - (data.window["strategic"] - 1)]

    return timed(step, seconds) * n


def anytrading_rate(data, seconds: float) -> float | None:
    try:
        import gym_anytrading  # noqa: F401  (registers stocks-v0)
        import gymnasium as gym
    except ImportError:
        return None
    import pandas as pd

    closes = data.tactical.close.numpy()
    frame = pd.DataFrame(
        {"Close": closes, "Open": closes, "High": closes, "Low": closes, "Volume": 1.0}
    )
    env = gym.make("stocks-v0", df=frame, window_size=60, frame_bound=(60, len(frame))).unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def step():
        _, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
        if terminated or truncated:
            env.reset()

    return timed(step, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 64, 1024, 4096])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--compile", action="store_true", help="also time env.compile=true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    base = ["data.synthetic.days=120", "data.episode_length=2000", f"env.device={args.device}"]
    data = prepare_data(grandmodel.load_config(base))
    variants = {"eager": grandmodel.load_config(base)}
    if args.compile:
        variants["compiled"] = grandmodel.load_config([*base, "env.compile=true"])
    rows = []
    for n in args.envs:
        row = {"n_envs": n, "gather": gather_rate(data, n, args.seconds)}
        for name, cfg in variants.items():
            row[name] = market_env_rate(cfg, data, n, args.seconds)
        rows.append(row)
    anytrading = anytrading_rate(data, args.seconds)
    threads = torch.get_num_threads()
    print(f"\nenv-steps/s, random actions, {args.device}, torch threads {threads}\n")
    names = list(variants)
    print(
        "| n_envs | "
        + " | ".join(f"MarketEnv {v}" for v in names)
        + " | pure gather | % of gather |"
    )
    print("|---:|" + "---:|" * (len(names) + 2))
    for row in rows:
        best = max(row[v] for v in names)
        cells = " | ".join(f"{row[v]:,.0f}" for v in names)
        print(
            f"| {row['n_envs']} | {cells} | {row['gather']:,.0f} | {100 * best / row['gather']:.0f}% |"
        )
    if anytrading is not None:
        print(
            f"\ngym-anytrading StocksEnv (1 env, window 60, same closes): {anytrading:,.0f} env-steps/s"
        )


if __name__ == "__main__":
    main()

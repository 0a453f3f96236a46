"""Env-steps per second of the full market env vs gym-anytrading and a pure observation gather.

    .venv/bin/python experiments/env_throughput/bench.py [--envs 1 64 1024 4096] [--seconds 3]
        [--compile] [--threads 1 2] [--keep-freed-mb 256] [--paired ROUNDS]

Every cell steps with uniformly random actions for all three agents (portfolio, costs, stops,
rewards, risk features, auto-resets included) through ``step_and_maybe_reset``: TorchRL's generic
one (``env.lean_step=false``, the "MarketEnv" columns) and the env's own (``lean``). ``gather`` copies
the same observation bytes per step (tactical + strategic windows) and nothing else: the
memory-bound reference (``indexing gather``: the same by advanced indexing, the earlier tables'
reference). Every row runs under the env's allocator setting (``env.keep_freed_mb``).
gym-anytrading's ``StocksEnv`` runs one env on the same tactical closes, in one thread of Python.
"per core-s" is env-steps/s divided by the torch threads used. ``free transition`` is the lean
step with a transition that costs nothing: the most any transition kernel could reach.
``--paired`` times the gather, the free transition, the lean step and gym-anytrading in turn, round
after round, and reports the median and range of the per-round ratios.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import grandmodel
from grandmodel.data.pipeline import prepare_data
from grandmodel.env.allocator import keep_freed_memory
from grandmodel.env.kernel import window_rows


def timed(step, seconds: float, warmup: int = 20) -> torch.Tensor:
    """Calls of ``step`` per second of wall time and per second of this process's CPU time (the
    latter barely moves when other processes share the cores), over about ``seconds``."""
    for _ in range(warmup):
        step()
    calls, start, cpu = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            step()
        calls += 10
    return torch.tensor([calls / elapsed, calls / (time.process_time() - cpu)])


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


def market_env_step(env, lean: bool):
    """One ``step_and_maybe_reset`` of ``env`` with fresh random actions, on either path."""
    env.lean_step = lean
    act = random_actions(env)
    state = {"td": env.reset()}

    def step():
        _, state["td"] = env.step_and_maybe_reset(act(state["td"]))

    return step


def market_env_rate(env, lean: bool, seconds: float) -> torch.Tensor:
    """One env times both paths (the same kernel, compiled once when ``env.compile=true``)."""
    return timed(market_env_step(env, lean), seconds) * env.n


def next_decisions(ptr: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Every env's next decision in ``[lo, hi)``, back to ``lo`` at the end (so caches do not
    flatter a gather by reading the same rows)."""
    return torch.where(ptr + 1 < hi, ptr + 1, lo)


def free_transition_step(env, data):
    """The lean step of ``env`` with a transition that costs nothing: the kernel's transition is
    replaced (for good: give it an env of its own) by one real call's outputs, with every env's
    decision moved one forward (as in ``gather_step``, so the windows are gathered from fresh rows)
    and no episode ending. What is left is the step's floor: random actions, the two window
    gathers, ``_pack``, the carry-over and the TensorDicts. Its ratio to the gather bounds what any
    transition kernel could reach. (It swaps the kernel's private ``_advance``: a measurement, not
    an env mode.)"""
    td = env.reset()
    actions = random_actions(env)(td.clone())
    new0, out0 = env.kernel.transition(
        env.state, *(actions.get((role, "action")) for role in ("strategic", "tactical", "risk"))
    )
    not_done = torch.zeros_like(out0["terminated"])
    lo, hi = data.splits["train"]
    cursor = {"ptr": torch.randint(lo, hi - 1, (env.n,))}

    def free(s, *_):
        ptr = cursor["ptr"] = next_decisions(cursor["ptr"], lo, hi)
        return new0 | {"ptr": ptr}, out0 | {"t": ptr, "terminated": not_done, "truncated": not_done}

    env.kernel._advance = free
    return market_env_step(env, lean=True)


def gather_step(data, n: int, fast: bool = True):
    """``fast``: one ``index_select`` of whole window rows (what the env does since 2026-11-30);
    otherwise advanced indexing of the ``unfold`` view (the reference of the earlier tables)."""
    length = data.window
    flat = {name: window_rows(getattr(data, name).features, length[name]) for name in length}
    lo, hi = data.splits["train"]
    state = {"ptr": torch.randint(lo, hi - 1, (n,))}
    sidx = data.strategic_index
    if fast:

        def take(name, first):
            return flat[name].index_select(0, first)
    else:
        unfolded = {
            name: getattr(data, name)
            .features.contiguous()
            .unfold(0, length[name], 1)
            .transpose(1, 2)
            for name in length
        }

        def take(name, first):
            return unfolded[name][first]

    def step():  # every env moves one decision forward, as in the env
        ptr = state["ptr"] = next_decisions(state["ptr"], lo, hi)
        take("tactical", ptr - (length["tactical"] - 1))
        take("strategic", sidx[ptr] - (length["strategic"] - 1))

    return step


def gather_rate(data, n: int, seconds: float, fast: bool = True) -> torch.Tensor:
    return timed(gather_step(data, n, fast), seconds) * n


def paired(data, configs: dict, n: int, rounds: int, seconds: float) -> None:
    """The pure gather, the lean step with a free transition and the lean step (compiled when
    ``--compile``) timed in turn, ``rounds`` times: on a machine whose speed drifts, each round's
    ratios compare cells measured within the same second or two. Prints the median and range, and
    the lean step per core-second over gym-anytrading's single env (one thread), paired alike."""
    cfg = configs.get("compiled", configs["eager"])
    threads = torch.get_num_threads()
    steps = {
        "pure gather": gather_step(data, n),
        "free transition": free_transition_step(
            grandmodel.build_env(configs["eager"], data, n_envs=n), data
        ),
        "lean": market_env_step(grandmodel.build_env(cfg, data, n_envs=n), lean=True),
    }
    anytrading = anytrading_step(data)
    rates = {name: [] for name in [*steps, "gym-anytrading"]}
    for _ in range(rounds):
        for name, step in steps.items():
            rates[name].append(float(timed(step, seconds)[0]) * n)
        if anytrading is not None:  # one env in Python: torch's threads do not touch it
            rates["gym-anytrading"].append(float(timed(anytrading, seconds)[0]))
    rate = {name: torch.tensor(values) for name, values in rates.items() if values}
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\n{n} envs, torch threads {torch.get_num_threads()}, {rounds} rounds of "
        f"{seconds} s per cell, load {load}: median [min, max]\n"
    )
    print("| cell | env-steps/s | / pure gather |")
    print("|---|---:|---:|")
    for name, values in rate.items():
        if name == "gym-anytrading":
            continue
        share = 100 * values / rate["pure gather"]
        print(
            f"| {name} | {values.median():,.0f} | {share.median():.0f}% "
            f"[{share.min():.0f}, {share.max():.0f}] |"
        )
    if "gym-anytrading" in rate:
        times = rate["lean"] / threads / rate["gym-anytrading"]
        print(
            f"\ngym-anytrading {rate['gym-anytrading'].median():,.0f} env-steps/s; lean per "
            f"core-second / gym-anytrading: {times.median():.1f}x [{times.min():.1f}, {times.max():.1f}]"
        )


def anytrading_step(data):
    """One step of gym-anytrading's ``StocksEnv`` (one env, Python) on the same closes; ``None``
    when gym-anytrading is not installed."""
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

    return step


def anytrading_rate(data, seconds: float) -> torch.Tensor | None:
    step = anytrading_step(data)
    return None if step is None else timed(step, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 64, 1024, 4096])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--compile", action="store_true", help="also time env.compile=true")
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--keep-freed-mb", type=int, default=256, help="0: glibc defaults")
    parser.add_argument(
        "--paired",
        type=int,
        metavar="ROUNDS",
        help="only the gather, free transition, lean and gym-anytrading cells, timed in turn "
        "ROUNDS times (--seconds each) per n_envs and threads",
    )
    args = parser.parse_args()
    torch._dynamo.config.recompile_limit = 64  # one compiled kernel per env (n_envs x threads)
    # the env's allocator setting (env.keep_freed_mb) for every row, references included
    keep_freed_memory(args.keep_freed_mb)
    base = [
        "data.synthetic.days=120",
        "data.episode_length=2000",
        f"env.device={args.device}",
        f"env.keep_freed_mb={args.keep_freed_mb}",
    ]
    data = prepare_data(grandmodel.load_config(base))
    configs = {"eager": grandmodel.load_config(base)}
    if args.compile:
        configs["compiled"] = grandmodel.load_config([*base, "env.compile=true"])
    if args.paired:
        for threads in args.threads:
            torch.set_num_threads(threads)
            for n in args.envs:
                paired(data, configs, n, args.paired, args.seconds)
        return
    tables = {}
    for threads in args.threads:
        torch.set_num_threads(threads)  # inductor compiles for the threads in force
        rows = []
        for n in args.envs:
            row = {
                "n_envs": n,
                "gather": gather_rate(data, n, args.seconds),
                "indexing gather": gather_rate(data, n, args.seconds, fast=False),
            }
            for name, cfg in configs.items():
                env = grandmodel.build_env(cfg, data, n_envs=n)
                row[name] = market_env_rate(env, False, args.seconds)
                row[f"lean {name}"] = market_env_rate(env, True, args.seconds)
            free = free_transition_step(
                grandmodel.build_env(configs["eager"], data, n_envs=n), data
            )
            row["free transition"] = timed(free, args.seconds) * n
            rows.append(row)
        tables[threads] = rows
    anytrading = anytrading_rate(data, args.seconds)
    report(tables, list(configs), anytrading, args.device)


def report(tables: dict, names: list[str], anytrading: torch.Tensor | None, device: str) -> None:
    """Wall-time env-steps/s per cell; the goal columns for the faster lean variant, on wall time
    (per core-s: divided by the threads) and on CPU time (per CPU-s: less moved by other processes).
    "pure gather" is the fastest gather of the observation bytes (one ``index_select`` of window
    rows, as the env); "indexing gather" the advanced indexing of the earlier tables' reference."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lean = [f"lean {v}" for v in names]
    head = [f"MarketEnv {v}" for v in names] + lean
    for threads, rows in tables.items():
        print(f"\nenv-steps/s, random actions, {device}, torch threads {threads}, load {load}\n")
        print(
            f"| n_envs | {' | '.join(head)} | pure gather | indexing gather | lean / gather "
            "| lean / indexing gather | lean per core-s | lean / gather, CPU time | lean per CPU-s "
            "| free transition | free transition / gather |"
        )
        print("|---:|" + "---:|" * (len(head) + 9))
        for row in rows:
            best = row[max(lean, key=lambda v: row[v][0])]
            cells = " | ".join(f"{row[v][0]:,.0f}" for v in [*names, *lean])
            gather, indexing = row["gather"], row["indexing gather"]
            print(
                f"| {row['n_envs']} | {cells} | {gather[0]:,.0f} | {indexing[0]:,.0f} "
                f"| {100 * best[0] / gather[0]:.0f}% | {100 * best[0] / indexing[0]:.0f}% "
                f"| {best[0] / threads:,.0f} "
                f"| {100 * best[1] / gather[1]:.0f}% | {best[1]:,.0f} "
                f"| {row['free transition'][0]:,.0f} "
                f"| {100 * row['free transition'][0] / gather[0]:.0f}% |"
            )
    if anytrading is None:
        return
    wall, cpu = anytrading.tolist()
    print(
        f"\ngym-anytrading StocksEnv (1 env, window 60, same closes, 1 thread): {wall:,.0f} "
        f"env-steps/s, {cpu:,.0f} per CPU-s"
    )
    for threads, rows in tables.items():
        for row in (r for r in rows if r["n_envs"] == 1024):
            best = row[max(lean, key=lambda v: row[v][0])]
            free = row["free transition"][0] / row["gather"][0]
            print(
                f"threads {threads}, 1024 envs, a transition that costs nothing: "
                f"{100 * free:.0f}% of the gather"
            )
            print(
                f"threads {threads}, 1024 envs, goals >= 50% and >= 3x: lean = "
                f"{100 * best[0] / row['gather'][0]:.0f}% of the gather "
                f"({100 * best[0] / row['indexing gather'][0]:.0f}% of the indexing gather) and "
                f"{best[0] / threads / wall:.1f}x gym-anytrading per core-second (wall); "
                f"{100 * best[1] / row['gather'][1]:.0f}% and {best[1] / cpu:.1f}x (CPU time)"
            )


if __name__ == "__main__":
    main()

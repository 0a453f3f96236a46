"""Bars per minute of the backtest with all three trained agents in the loop (one env, batch 1).

    .venv/bin/python experiments/backtest_speed/bench.py [--run outputs/runs/...] [--days 725] [--quick]

Without ``--run`` an ``agent=marl`` model with the default network sizes is first trained briefly on
``experiment=smoke`` data into a temp folder (``--quick``: smoke's small networks too). The backtest is built as ``python -m grandmodel.backtest run=... data=synthetic
data.synthetic.days=N`` builds it (``resolve_run``, ``model_config``, ``market``, ``with_range`` over
the whole data, ``Arena(..., RANGE, whole=True)``, the restored deterministic policy), and the steps of
``Arena.run`` are timed one by one: the stepping loop (``run_policy``), the tables (``ledger``) and
the metrics (``Arena.summary``). Rows with constant actions time the env alone, through
``run_policy`` and as a bare ``step_and_maybe_reset`` loop; the last row repeats the trained pass
with ``env.compile=true`` after an untimed warm-up (the compilation).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

import grandmodel
from grandmodel.evaluation.backtest import RANGE, Arena, market, model_config, with_range
from grandmodel.evaluation.evaluator import run_policy
from grandmodel.evaluation.ledger import ledger
from grandmodel.evaluation.runs import TrainedRun, resolve_run
from grandmodel.train import train

GOAL = 1_000_000  # base bars per minute


@dataclass
class Row:
    name: str
    stepping: float
    ledger: float | None = None
    summary: float | None = None

    @property
    def total(self) -> float:
        return self.stepping + (self.ledger or 0.0) + (self.summary or 0.0)


class ConstantActions(TensorDictModuleBase):
    """Long, full entry, 1% stop, top risk level at every step: the env's cost with no policy."""

    def __init__(self) -> None:
        super().__init__()
        self.in_keys: list = []
        self.actions = {
            ("strategic", "action"): torch.tensor([2]),
            ("tactical", "action"): torch.tensor([[1.0, 0.01, 1.0]]),
            ("risk", "action"): torch.tensor([4]),
        }
        self.out_keys = list(self.actions)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        for key, value in self.actions.items():
            tensordict.set(key, value)
        return tensordict


def trained_run(folder: Path, full_size: bool) -> Path:
    """Train ``agent=marl`` on ``experiment=smoke`` data and budget into ``folder/run``, with the
    default network sizes when ``full_size`` (the timing depends on sizes, not on skill)."""
    cfg = grandmodel.load_config(
        [
            "experiment=smoke",
            "agent=marl",
            "logger=csv",
            f"paths.outputs_dir={folder}",
            f"paths.output_dir={folder}/run",
        ]
    )
    if full_size:
        cfg.agent = grandmodel.load_config(["agent=marl"]).agent
    return Path(train(cfg)["output_dir"])


def backtest_config(run_dir: Path, days: int, outputs: Path) -> DictConfig:
    """What ``python -m grandmodel.backtest run=... data=synthetic data.synthetic.days=N`` composes."""
    return grandmodel.load_config(
        [
            f"run={run_dir}",
            "data=synthetic",
            f"data.synthetic.days={days}",
            "logger=csv",
            f"paths.outputs_dir={outputs}",
            f"paths.output_dir={outputs}/backtest",
        ],
        config_name="backtest",
    )


def build_arena(run: TrainedRun, cfg: DictConfig, compile: bool) -> Arena:
    """``grandmodel.backtest``'s arena over the whole data, its env eager or compiled."""
    model_cfg = model_config(run, cfg.get("data"), cfg.paths, cfg.initial_capital)
    model_cfg.env.compile = compile
    return Arena(
        model_cfg, with_range(market(run, model_cfg), cfg.start, cfg.end), RANGE, whole=True
    )


def timed_pass(arena: Arena, policy: TensorDictModuleBase, name: str) -> Row:
    """``Arena.run``'s steps, each timed."""
    arena.env.set_mode("eval", arena.split)
    start = time.perf_counter()
    rollout, alive = run_policy(arena.env, policy, arena.steps)
    stepped = time.perf_counter()
    tables = ledger(rollout, alive.numpy(), arena.data, arena.costs)
    booked = time.perf_counter()
    arena.summary(tables)
    return Row(name, stepped - start, booked - stepped, time.perf_counter() - booked)


def bare_env(arena: Arena, policy: TensorDictModuleBase) -> Row:
    """The env stepped ``arena.steps`` times with nothing kept (no rollout, no tables)."""
    env = arena.env
    env.set_mode("eval", arena.split)
    start = time.perf_counter()
    with torch.no_grad():
        td = env.reset()
        for _ in range(arena.steps):
            _, td = env.step_and_maybe_reset(policy(td))
    return Row("constant actions, bare step_and_maybe_reset loop", time.perf_counter() - start)


def warm_up(arena: Arena, policy: TensorDictModuleBase, steps: int = 5) -> float:
    """Seconds of a few untimed steps (where ``torch.compile`` compiles)."""
    start = time.perf_counter()
    run_policy(arena.env, policy, steps)
    return time.perf_counter() - start


def seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", type=Path, help="a trained agent=marl run folder (default: train one)"
    )
    parser.add_argument(
        "--days", type=int, default=725, help="synthetic trading days (1380 bars each)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--no-compile", action="store_true", help="skip the env.compile=true row")
    parser.add_argument("--quick", action="store_true", help="30 days, no compile: check it runs")
    args = parser.parse_args()
    days = 30 if args.quick else args.days
    with tempfile.TemporaryDirectory(prefix="backtest-speed-") as folder:
        outputs = Path(folder)
        run_dir = args.run or trained_run(outputs, full_size=not args.quick)
        torch.set_num_threads(args.threads)
        cfg = backtest_config(run_dir, days, outputs)
        run = resolve_run(str(run_dir))
        missing = {"strategic", "tactical", "risk"} - set(run.config.agent.learn)
        if missing:
            parser.error(f"--run {run_dir}: trained without {sorted(missing)}; use agent=marl")
        arena = build_arena(run, cfg, compile=False)
        _, policy = arena.trained(run)
        rows = [
            timed_pass(arena, policy, "trained policy (3 agents), eager env"),
            timed_pass(arena, ConstantActions(), "constant actions, eager env"),
            bare_env(arena, ConstantActions()),
        ]
        compiling = "not run"
        if not (args.quick or args.no_compile):
            compiled = build_arena(run, cfg, compile=True)
            try:
                compiling = f"{warm_up(compiled, policy):.1f} s warm-up (compilation), not timed"
                rows.append(
                    timed_pass(compiled, policy, "trained policy (3 agents), env.compile=true")
                )
            except RuntimeError as exc:  # reported, not fatal: the eager rows stand
                compiling = "failed: " + " ".join(str(exc).split())[-300:]
    lo, _ = arena.data.splits[RANGE]
    decisions = arena.steps
    bars = int(arena.data.step_count[lo : lo + decisions].sum())
    print(
        f"\n{days} synthetic days ({len(arena.data.base):,} one-minute bars), "
        f"model {args.run or 'agent=marl trained here on smoke data'}, "
        f"torch threads {torch.get_num_threads()}, one env, deterministic policy"
        + (" (--quick)" if args.quick else "")
    )
    print(f"range: {decisions:,} decisions (5-minute steps) covering {bars:,} one-minute bars\n")
    print("| row | stepping s | ledger s | summary s | total s | bars/minute | decisions/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row.name} | {seconds(row.stepping)} | {seconds(row.ledger)} | "
            f"{seconds(row.summary)} | {seconds(row.total)} | {60 * bars / row.total:,.0f} | "
            f"{decisions / row.total:,.0f} |"
        )
    print(f"\nenv.compile=true: {compiling}")
    trained = [rows[0], *rows[3:]]  # eager, and compiled when timed
    rates = ", ".join(
        f"{60 * bars / row.total:,.0f} ({row.name.split(', ')[-1]})" for row in trained
    )
    print(f"\nbars/minute of the backtest with the trained agents: {rates}; goal >= {GOAL:,}")


if __name__ == "__main__":
    main()

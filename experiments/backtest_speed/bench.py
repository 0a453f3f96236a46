"""Bars per minute of the backtest with all three trained agents in the loop (one env, batch 1).

    .venv/bin/python experiments/backtest_speed/bench.py [--run outputs/runs/...] [--days 60] [--quick]

Without ``--run`` an ``agent=marl`` model with the default network sizes is first trained briefly on
``experiment=smoke`` data into a temp folder (``--quick``: smoke's small networks too). The backtest
is built as ``python -m grandmodel.backtest run=... data=synthetic data.synthetic.days=N range=all``
builds it (``resolve_run``, ``model_config``, ``market``, ``with_range`` over the whole data,
``Walk(..., RANGE, whole=True)``, the restored deterministic policy). Each row is one
``Walk.run(policy, tables=True)``: the stepping, the ledger (trades, decisions, equity) and the
metrics, on the same data in the same process:

- the TorchRL path (``lean=False``: ``run_policy``, a TensorDict per step, the actors'
  distributions), what every evaluation and backtest ran before the lean walk;
- the lean walk with the torch networks (``policy=torch``);
- the lean walk with the ONNX Runtime graphs (``policy=onnx``, exported for the pass);
- the two lean rows again with ``env.compile=true`` (the fused transition; compilation untimed).

The rows' trade logs are checked equal (ONNX: to the cent).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

import grandmodel
from grandmodel.evaluation.comparison import market, model_config, trained_policy
from grandmodel.evaluation.lean import LeanPolicy, lean_policy
from grandmodel.evaluation.onnx_policy import onnx_policy
from grandmodel.evaluation.runs import TrainedRun, resolve_run
from grandmodel.evaluation.walk import RANGE, Outcome, Walk, with_range
from grandmodel.train import train

GOAL = 1_000_000  # base bars per minute
RATIO = 7.0  # lean over the TorchRL path, same run


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


def build_walk(run: TrainedRun, cfg: DictConfig, compile: bool) -> Walk:
    """``grandmodel.backtest``'s walk over the whole data, its kernel eager or compiled."""
    model_cfg = model_config(run, cfg.get("data"), cfg.paths, cfg.initial_capital)
    model_cfg.env.compile = compile
    return Walk(model_cfg, with_range(market(run, model_cfg), None, None), RANGE, whole=True)


def timed(walk: Walk, policy, lean: bool = True) -> tuple[float, Outcome]:
    start = time.perf_counter()
    outcome = walk.run(policy, tables=True, lean=lean)
    return time.perf_counter() - start, outcome


def warm_up(walk: Walk, policy: LeanPolicy) -> float:
    """Seconds of a short untimed walk (where ``torch.compile`` compiles)."""
    steps, walk.steps = walk.steps, 8
    start = time.perf_counter()
    walk.run(policy)
    walk.steps = steps
    return time.perf_counter() - start


def same_trades(a: Outcome, b: Outcome) -> bool:
    x, y = a.ledger.trades, b.ledger.trades
    if len(x) != len(y):
        return False
    money = ["entry_price", "exit_price", "pnl", "costs"]
    equity = (a.ledger.decisions["equity"] - b.ledger.decisions["equity"]).abs().max()
    cents = ((x[money] - y[money]).abs() < 0.005).all().all()
    return bool(
        cents and (x.drop(columns=money) == y.drop(columns=money)).all().all() and equity < 0.005
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a trained agent=marl run (default: train one)")
    parser.add_argument("--days", type=int, default=60, help="synthetic days (1380 bars each)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--no-compile", action="store_true", help="skip the env.compile rows")
    parser.add_argument("--quick", action="store_true", help="10 days, no compile: check it runs")
    args = parser.parse_args()
    days = 10 if args.quick else args.days
    with tempfile.TemporaryDirectory(prefix="backtest-speed-") as folder:
        outputs = Path(folder)
        run_dir = args.run or trained_run(outputs, full_size=not args.quick)
        torch.set_num_threads(args.threads)
        cfg = backtest_config(run_dir, days, outputs)
        run = resolve_run(str(run_dir))
        missing = {"strategic", "tactical", "risk"} - set(run.config.agent.learn)
        if missing:
            parser.error(f"--run {run_dir}: trained without {sorted(missing)}; use agent=marl")
        walk = build_walk(run, cfg, compile=False)
        _, policy = trained_policy(walk, run)
        lean = lean_policy(policy)
        assert lean is not None
        start = time.perf_counter()
        onnx = onnx_policy(walk, run, lean, None)
        exporting = time.perf_counter() - start
        rows: list[tuple[str, float, Outcome]] = []
        rows.append(("TorchRL path (run_policy), eager env", *timed(walk, policy, lean=False)))
        rows.append(("lean walk, torch networks, eager kernel", *timed(walk, lean)))
        rows.append(("lean walk, ONNX Runtime graphs, eager kernel", *timed(walk, onnx)))
        compiling = "not run"
        if not (args.quick or args.no_compile):
            fused = build_walk(run, cfg, compile=True)
            compiling = f"{warm_up(fused, lean) + warm_up(fused, onnx):.1f} s warm-up, untimed"
            rows.append(("lean walk, torch networks, env.compile=true", *timed(fused, lean)))
            rows.append(("lean walk, ONNX Runtime graphs, env.compile=true", *timed(fused, onnx)))
    lo, _ = walk.data.splits[RANGE]
    decisions = walk.steps
    bars = int(walk.data.step_count[lo : lo + decisions].sum())
    print(
        f"\n{days} synthetic days ({len(walk.data.base):,} one-minute bars), "
        f"model {args.run or 'agent=marl trained here on smoke data'}, "
        f"torch threads {torch.get_num_threads()}, one env, deterministic policy"
        + (" (--quick)" if args.quick else "")
        + f"; load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(f"range: {decisions:,} decisions (5-minute steps) covering {bars:,} one-minute bars")
    print(f"ONNX export for the pass: {exporting:.1f} s (not in the rows); compile: {compiling}\n")
    base_s, base = rows[0][1], rows[0][2]
    print("| row | seconds | bars/minute | decisions/s | × TorchRL path | trades | same trades |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, seconds, outcome in rows:
        print(
            f"| {name} | {seconds:.2f} | {60 * bars / seconds:,.0f} | {decisions / seconds:,.0f} | "
            f"{base_s / seconds:.1f} | {len(outcome.ledger.trades)} | "
            f"{'yes' if same_trades(base, outcome) else 'NO'} |"
        )
    best = min(rows[1:], key=lambda row: row[1])
    rate, ratio = 60 * bars / best[1], base_s / best[1]
    print(
        f"\nfastest: {best[0]}: {rate:,.0f} bars/minute (goal >= {GOAL:,}: "
        f"{'met' if rate >= GOAL else 'missed'}), {ratio:.1f}x the TorchRL path "
        f"(goal >= {RATIO:.0f}x: {'met' if ratio >= RATIO else 'missed'})"
    )


if __name__ == "__main__":
    main()

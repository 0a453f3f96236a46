"""Learning quality: the trained systems beside every baseline, over seeds, with intervals.

    .venv/bin/python experiments/learning_quality/run.py                       # 3 seeds, marl + ppo + SB3
    .venv/bin/python experiments/learning_quality/run.py --frames 1000000 --seeds 0 1 2 3 4
    .venv/bin/python experiments/learning_quality/run.py --configs marl --no-sb3 --frames 65536 --jobs 1
    .venv/bin/python experiments/learning_quality/run.py --configs staged --no-sb3   # ppo, sac, dqn stages

Each configuration (``--configs``: ``agent=<name>`` plus ``--set`` overrides; ``staged``: three runs per
seed, ``agent=ppo``, then ``agent=sac`` with the strategic agent frozen at its stage's kept
checkpoint, then ``agent=dqn`` with both frozen, ``--frames`` each) trains once per seed
with ``python -m grandmodel.train`` as a user would (``logger=csv``, one torch thread, ``--jobs``
trainings side by side) and its final report (``final.json``) gives the chosen checkpoint's test
Sharpe beside every reference policy on the same windows: flat, buy-and-hold, random, MA
crossover, the regime oracle and the regime filter. Checkpoints are chosen on validation only; the
test split is read once per configuration and seed. ``--sb3`` adds Stable-Baselines3 PPO on the
strategic role through the decision-level vector view (``grandmodel.env.gym_views``), the same base
env steps and data, the tactical and risk roles by their baselines (as ``agent=ppo``), walked by
the same :class:`~grandmodel.evaluation.walk.Walk`.

Per policy: the mean test Sharpe over seeds with a 95% t-interval across seeds, and each seed's
stationary-block-bootstrap interval (the final report's). Writes ``runs.json`` (every seed) and
``summary.csv`` into ``--out`` and prints the table (markdown) and the goal lines of the README.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy import stats

from grandmodel.checkpoints import run_checkpoint

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
REFERENCES = ("flat", "buy_and_hold", "random", "ma_crossover", "regime_filter", "oracle")


# staged training: each stage a normal run that learns one role, the roles learned before frozen at
# their best checkpoints (experiments/learnability), against the joint agent=marl
STAGES = (("ppo", "strategic"), ("sac", "tactical"), ("dqn", "risk"))


def train(
    config: str, seed: int, args: argparse.Namespace, work: Path, agent: str = "", extra=()
) -> dict:
    """One training run; its final report's Sharpe rows (per split and policy) and wall time."""
    label = f"{config}{args.label}"
    folder = work / "runs" / f"{label}-s{seed}"
    overrides = [
        f"agent={agent or config}",
        f"seed={seed}",
        f"trainer.total_frames={args.frames}",
        "trainer.num_threads=1",
        "trainer.enable_progress_bar=false",
        "logger=csv",
        f"paths.outputs_dir={work / 'outputs'}",
        f"hydra.run.dir={folder}",
        *args.set,
        *extra,
    ]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "grandmodel.train", *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{config} seed {seed} failed:\n{done.stderr[-3000:]}")
    final = json.loads((folder / "final.json").read_text())
    return {
        "config": label,
        "overrides": overrides,
        "seed": seed,
        "seconds": time.perf_counter() - start,
        "sharpe": final["sharpe"],
        "checkpoint": str(run_checkpoint(folder)),
    }


def staged(seed: int, args: argparse.Namespace, work: Path) -> list[dict]:
    """The three stages of one seed; each stage's row is the system after it (earlier roles frozen
    at the checkpoint their stage kept on validation, later roles by their baselines)."""
    frozen: list[str] = []
    runs = []
    for n, (agent, role) in enumerate(STAGES, start=1):
        run = train(f"staged-{n}-{role}", seed, args, work, agent=agent, extra=frozen)
        frozen.append(f"agent.frozen.{role}={run['checkpoint']}")
        runs.append(run)
    return runs


def job(config: str, seed: int, args: argparse.Namespace, work: Path) -> list[dict]:
    return staged(seed, args, work) if config == "staged" else [train(config, seed, args, work)]


def sb3_ppo(seed: int, args: argparse.Namespace, work: Path) -> dict:
    """SB3 PPO on the strategic decisions (our PPO's network, batch, epochs and rates), then the
    walk of both evaluation splits with the tactical and risk baselines."""
    import torch
    from stable_baselines3 import PPO

    import grandmodel
    from grandmodel.data.pipeline import prepare_data
    from grandmodel.env.baselines import joint_baseline
    from grandmodel.env.gym_views import DecisionVectorEnv
    from grandmodel.env.sb3 import SB3VecEnv, ppo_arguments
    from grandmodel.evaluation.lean import Actor, lean_policy
    from grandmodel.evaluation.statistics import sharpe_interval
    from grandmodel.evaluation.walk import Walk

    torch.set_num_threads(1)
    cfg = grandmodel.load_config(
        [
            "agent=ppo",
            f"seed={seed}",
            f"paths.outputs_dir={work / 'outputs'}",
            *args.set,
        ]
    )
    data = prepare_data(cfg)
    venv = DecisionVectorEnv(cfg, "strategic", data=data, autoreset_mode="SameStep")
    per_decision = 6  # base 5-minute steps per 30-minute decision: the same base-step budget
    n_steps = max(int(cfg.trainer.frames_per_batch) // venv.num_envs // per_decision, 2)
    model = PPO(
        "MlpPolicy",
        SB3VecEnv(venv),
        n_steps=n_steps,
        seed=seed,
        device="cpu",
        **ppo_arguments(cfg.agent.strategic),
    )
    start = time.perf_counter()
    model.learn(total_timesteps=args.frames // per_decision)

    def act(observation: torch.Tensor) -> torch.Tensor:
        flat = observation.reshape(-1, *observation.shape[-2:]).numpy()
        action, _ = model.predict(flat, deterministic=True)
        return torch.as_tensor(action, dtype=torch.int64).reshape(observation.shape[:-2])

    others = lean_policy(joint_baseline(data.strategic.feature_names, {}))
    assert others is not None
    policy = {**others, "strategic": Actor(("strategic", "observation"), act, timeless=True)}
    sharpe = {}
    for split in ("val", "test"):
        walk = Walk(cfg, data, split)
        outcome = walk.run(policy)
        low, high = sharpe_interval(outcome.returns, walk.periods_per_year)
        row = {"sharpe": outcome.metrics["sharpe"], "low": low, "high": high}
        sharpe[split] = {"trained": row | {"trades": outcome.metrics["trades"]}}
    return {
        "config": "sb3_ppo",
        "seed": seed,
        "seconds": time.perf_counter() - start,
        "sharpe": sharpe,
    }


def summarise(runs: list[dict]) -> list[dict]:
    """Per policy: mean test Sharpe over seeds, the 95% t-interval across seeds, the mean of each
    seed's bootstrap bounds, and the mean validation Sharpe."""
    rows: dict[str, dict[str, list]] = {}
    for run in runs:
        names = [("trained", run["config"])]
        if run["config"] != "sb3_ppo":
            names += [(ref, ref) for ref in REFERENCES if ref in run["sharpe"]["test"]]
        for key, label in names:
            row = rows.setdefault(
                label, {"test": [], "val": [], "low": [], "high": [], "seeds": []}
            )
            if run["seed"] in row["seeds"] and label in REFERENCES:
                continue  # a reference walks the same windows whatever the configuration
            row["seeds"].append(run["seed"])
            row["test"].append(run["sharpe"]["test"][key]["sharpe"])
            row["val"].append(run["sharpe"]["val"][key]["sharpe"])
            row["low"].append(run["sharpe"]["test"][key]["low"])
            row["high"].append(run["sharpe"]["test"][key]["high"])
    out = []
    for label, row in rows.items():
        test = np.asarray(row["test"], dtype=float)
        n = len(test)
        half = t_half_width(test)
        out.append(
            {
                "policy": label,
                "seeds": n,
                "val_mean": float(np.mean(row["val"])),
                "test_mean": float(test.mean()),
                "test_ci_low": float(test.mean() - half),
                "test_ci_high": float(test.mean() + half),
                "bootstrap_low_mean": _mean(row["low"]),
                "bootstrap_high_mean": _mean(row["high"]),
            }
        )
    return out


def t_half_width(values: np.ndarray) -> float:
    """Half-width of the 95% t-interval of the mean of ``values`` (nan for fewer than 2)."""
    n = len(values)
    return stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan


def _mean(values: list[float]) -> float:
    """Mean of the finite values (nan when none: flat has no Sharpe interval)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else math.nan


def report(summary: list[dict], runs: list[dict], configurations: int) -> str:
    by = {row["policy"]: row for row in summary}
    lines = [
        "| policy | seeds | val Sharpe (mean) | test Sharpe (mean) | 95% CI across seeds | "
        "mean bootstrap CI within a seed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in summary:
        lines.append(
            f"| {row['policy']} | {row['seeds']} | {row['val_mean']:.2f} | {row['test_mean']:.2f} | "
            f"[{row['test_ci_low']:.2f}, {row['test_ci_high']:.2f}] | "
            f"[{row['bootstrap_low_mean']:.2f}, {row['bootstrap_high_mean']:.2f}] |"
        )
    lines.append(
        f"\nconfigurations tried: {configurations}; training wall time per run (s): "
        + ", ".join(f"{r['config']}-s{r['seed']} {r['seconds']:.0f}" for r in runs)
    )
    ma, oracle = by.get("ma_crossover"), by.get("oracle")
    for name, row in by.items():
        if name in REFERENCES:
            continue
        lines.append(
            f"{name}: test Sharpe {row['test_mean']:.2f} [{row['test_ci_low']:.2f}, "
            f"{row['test_ci_high']:.2f}]"
            + (
                f"; lower bound above MA crossover's mean {ma['test_mean']:.2f}: "
                f"{row['test_ci_low'] > ma['test_mean']}"
                if ma
                else ""
            )
            + (
                f"; {100 * row['test_mean'] / oracle['test_mean']:.0f}% of the oracle"
                if oracle
                else ""
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=196_608, help="env steps per training run")
    parser.add_argument(
        "--configs", nargs="+", default=["marl", "ppo"], help="agent= choices, or staged"
    )
    parser.add_argument("--set", nargs="*", default=[], help="overrides for every run")
    parser.add_argument("--label", default="", help="suffix of the configurations' names")
    parser.add_argument("--sb3", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--jobs", type=int, default=2, help="trainings side by side")
    parser.add_argument("--work", type=Path, default=Path("/tmp/learning_quality"))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    # data once, before trainings run side by side (they share the cache)
    market = [o for o in args.set if o.startswith(("data", "instrument", "experiment"))]
    subprocess.run(
        [sys.executable, "-m", "grandmodel.data.prepare", f"paths.outputs_dir={args.work / 'outputs'}",
         *market],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    jobs = [(c, s) for c in args.configs for s in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = [run for done in pool.map(lambda j: job(*j, args, args.work), jobs) for run in done]
    if args.sb3:
        runs += [sb3_ppo(seed, args, args.work) for seed in args.seeds]
    summary = summarise(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "runs.json").write_text(
        json.dumps({"frames": args.frames, "set": args.set, "runs": runs}, indent=1)
    )
    with open(args.out / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    print(report(summary, runs, len(args.configs) + int(args.sb3)))


if __name__ == "__main__":
    main()

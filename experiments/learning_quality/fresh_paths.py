"""Trained runs and the reference policies on fresh paths of the same synthetic market.

    .venv/bin/python experiments/learning_quality/fresh_paths.py results/runs_X.json [...] \
        --paths 4 [--split train] [--jobs 2] [--out results/fresh_X.json]

Why: every trained run of ``run.py`` is tested on the one 75-day test split of the market it was
trained on (data seed 7). That window is shared by all seeds and all policies, and its own sampling
noise is large (the MA crossover's Sharpe there is 2.67 with a bootstrap interval of [−1.4, 6.9]),
so the seed interval says nothing about how the policy does on the *process*. Here each kept
checkpoint (the run folders named in ``runs_*.json``) is walked with ``python -m grandmodel.evaluate``
on ``--paths`` independent markets of the same generator and parameters (``data.synthetic.seed`` =
1000, 1001, …), normalised with the run's own statistics. With ``--split train`` each path is the
350-day first part of a 500-day market that no run has seen. Every policy walks the same windows,
so the difference trained − MA crossover is paired per path.

Reports per configuration: mean Sharpe over seeds × paths for the trained system, MA crossover, the
regime filter and the oracle; the paired difference trained − MA crossover with a 95% t-interval
across seeds (each seed's mean over the paths), and the share of the oracle.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import NoReturn

import numpy as np
from run import t_half_width  # this folder's run.py (the script's folder is on sys.path)

POLICIES = ("trained", "ma_crossover", "regime_filter", "oracle")


def evaluate(run_dir: str, data_seed: int, split: str) -> dict[str, float]:
    """Sharpe of every policy in ``POLICIES`` on ``split`` of the market with ``data_seed``."""
    import torch

    import grandmodel
    from grandmodel.evaluation.commands import run_evaluation

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="fresh-path-") as folder:
        cfg = grandmodel.load_config(
            [
                f"run={run_dir}",
                f"split={split}",
                "data=synthetic",
                f"data.synthetic.seed={data_seed}",
                "counterfactual=false",
                "logger=csv",
                f"paths.outputs_dir={folder}",
            ],
            config_name="evaluate",
        )
        metrics = run_evaluation(cfg)["metrics"]
    return {name: float(metrics[name]["sharpe"]) for name in POLICIES if name in metrics}


def run_dirs(path: Path) -> list[tuple[str, int, str]]:
    """(configuration, seed, run folder) of every trained run in a ``run.py`` runs file; a missing
    or malformed file, or a run folder that is gone, is one ``error:`` line and exit 2."""
    try:
        runs = json.loads(path.read_text())["runs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(f"{path}: not a runs file of run.py ({type(exc).__name__}); expected runs_*.json")
    out = []
    for run in runs:
        folder = next(
            (
                o.split("=", 1)[1]
                for o in run.get("overrides", [])
                if o.startswith("hydra.run.dir=")
            ),
            None,
        )
        if folder is None:  # SB3 rows have no run folder
            continue
        if not (Path(folder) / "checkpoints").is_dir():
            fail(f"{path}: run folder {folder} has no checkpoints; expected the runs' folders")
        out.append((run["config"], int(run["seed"]), folder))
    return out


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def summarise(rows: list[dict]) -> list[dict]:
    """Per configuration: means over seeds x paths, and the paired trained - MA difference with a
    95% t-interval across seeds."""
    out = []
    for config in dict.fromkeys(r["config"] for r in rows):
        mine = [r for r in rows if r["config"] == config]
        seeds = sorted({r["seed"] for r in mine})
        per_seed = np.array(
            [
                np.mean([r["trained"] - r["ma_crossover"] for r in mine if r["seed"] == s])
                for s in seeds
            ]
        )
        n = len(per_seed)
        half = t_half_width(per_seed)
        row = {"config": config, "seeds": n, "paths": len(mine) // max(n, 1)}
        for name in POLICIES:
            row[name] = float(np.mean([r[name] for r in mine if name in r]))
        row["diff_vs_ma"] = float(per_seed.mean())
        row["diff_ci_low"], row["diff_ci_high"] = row["diff_vs_ma"] - half, row["diff_vs_ma"] + half
        row["share_of_oracle"] = row["trained"] / row["oracle"]
        row["per_seed_trained"] = [
            float(np.mean([r["trained"] for r in mine if r["seed"] == s])) for s in seeds
        ]
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="runs_*.json files written by run.py")
    parser.add_argument("--paths", type=int, default=4, help="fresh markets per run")
    parser.add_argument("--first-seed", type=int, default=1000, help="data seed of the first path")
    parser.add_argument("--split", default="train", help="which split of each fresh market")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON with every row and the summary"
    )
    args = parser.parse_args()
    if args.paths < 1 or args.jobs < 1:
        fail(f"--paths {args.paths} --jobs {args.jobs}: must be >= 1; expected positive counts")
    runs = [r for path in args.runs for r in run_dirs(path)]
    if not runs:
        fail(
            f"{' '.join(map(str, args.runs))}: no run names its folder; expected run.py's runs files"
        )
    jobs = [(c, s, d, args.first_seed + k) for c, s, d in runs for k in range(args.paths)]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        sharpe = list(pool.map(evaluate, [j[2] for j in jobs], [j[3] for j in jobs],
                               [args.split] * len(jobs)))  # fmt: skip
    rows = [
        {"config": c, "seed": s, "data_seed": k, **found}
        for (c, s, _, k), found in zip(jobs, sharpe, strict=True)
    ]
    summary = summarise(rows)
    if args.out:
        args.out.write_text(
            json.dumps({"split": args.split, "rows": rows, "summary": summary}, indent=1)
        )
    print(
        f"\n{args.paths} fresh paths per run (data seeds {args.first_seed}…), split {args.split}\n\n"
        "| configuration | seeds | trained | MA crossover | regime filter | oracle | trained − MA "
        "[95% CI across seeds] | share of the oracle | trained per seed |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    for r in summary:
        print(
            f"| {r['config']} | {r['seeds']} | {r['trained']:.2f} | {r['ma_crossover']:.2f} | "
            f"{r['regime_filter']:.2f} | {r['oracle']:.2f} | {r['diff_vs_ma']:+.2f} "
            f"[{r['diff_ci_low']:+.2f}, {r['diff_ci_high']:+.2f}] | "
            f"{100 * r['share_of_oracle']:.0f}% | "
            + ", ".join(f"{v:.2f}" for v in r["per_seed_trained"])
            + " |"
        )


if __name__ == "__main__":
    main()

"""The regime filter with a hidden Markov model fitted on the training split, not given.

    .venv/bin/python experiments/learning_quality/fitted_filter.py --run <run folder> \
        [--seeds default 1000 1001 1002 1003] [--states 5] [--minutes 30] [--restarts 1] \
        [--out results/X.json]

Why: the ``regime_filter`` baseline (``grandmodel/evaluation/regime_filter.py``) knows the
generator's parameters, so the gap to it mixes two things: what the 30-minute features do not
carry, and what no one could know without the generator. Here a Gaussian HMM (``hmmlearn``, a
dependency since the ``regime_*`` features) is fitted by Baum-Welch on the training split's returns only,
summed over ``--minutes`` (one-minute returns make EM spend its states on short bursts), from a
sticky start (0.99 on the diagonal). Its per-minute model (mean and variance / ``--minutes``,
expected durations × ``--minutes``) then replaces the generator's in the same filter, which
trades the posterior on the test split exactly as ``regime_filter`` does. Each market is walked by
``python -m grandmodel.evaluate``'s ``run_evaluation`` twice: with the true parameters and with the
fitted ones (the report's ``regime_filter`` row). ``--run`` is any trained run of the default
market; its own row is printed too, for scale.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

import grandmodel
from grandmodel.data.synthetic.generators import PERIODS_PER_YEAR
from grandmodel.evaluation import comparison
from grandmodel.evaluation.commands import run_evaluation
from grandmodel.evaluation.regime_filter import RegimeModel

SCALE = 1e4  # returns are ~1e-4: hmmlearn's variance floor (min_covar 1e-3) wants them near 1
TRUE_MODEL = comparison.filter_model


def fit(walk, states: int, minutes: int, restarts: int = 1) -> tuple[RegimeModel, dict]:
    """A ``states``-regime model fitted on the training split of ``walk``'s market: the most
    likely of ``restarts`` EM runs (k-means starts with seeds 0, 1, …)."""
    from hmmlearn.hmm import GaussianHMM

    data = walk.data
    start, stop = data.splits["train"]
    low = int(data.tactical.known_ns[start]) if start > 0 else -(2**62)
    high = int(data.tactical.known_ns[stop - 1])
    known = data.base.known_ns.numpy()[1:]
    returns = np.diff(np.log(data.base.close.double().numpy()))[(known > low) & (known <= high)]
    summed = returns[: returns.size // minutes * minutes].reshape(-1, minutes).sum(1)
    x = (summed * SCALE)[:, None]
    fits = []
    for seed in range(restarts):  # EM finds local optima: keep the most likely fit
        hmm = GaussianHMM(states, "diag", n_iter=300, tol=1e-4, random_state=seed, init_params="mc")
        hmm.startprob_ = np.full(states, 1.0 / states)
        leave = 0.01 / (states - 1)
        hmm.transmat_ = np.full((states, states), leave) + np.eye(states) * (0.99 - leave)
        hmm.fit(x)
        fits.append((hmm.score(x), seed, hmm))
    _, seed, hmm = max(fits, key=lambda f: f[0])
    mean = hmm.means_[:, 0] / SCALE / minutes
    var = hmm.covars_[:, 0, 0] / SCALE**2 / minutes
    duration = minutes / np.maximum(1e-12, 1.0 - np.diag(hmm.transmat_))
    drift = (mean + 0.5 * var) * PERIODS_PER_YEAR
    model = RegimeModel(np.arange(states), drift, np.sqrt(var), duration, 0.0)
    info = {
        "returns": int(summed.size),
        "iterations": int(hmm.monitor_.iter),
        "log_likelihood": [round(float(f[0]), 1) for f in fits],
        "kept_seed": seed,
        "annual_vol": (np.sqrt(var * PERIODS_PER_YEAR)).round(3).tolist(),
        "annual_drift": drift.round(2).tolist(),
        "mean_minutes": duration.round(0).tolist(),
    }
    return model, info


def evaluate(run: str, seed: int | None, fitted: dict | None) -> dict[str, float]:
    """Sharpe of each policy on the test split; ``fitted`` (states, minutes, info) swaps the model."""
    if fitted is None:
        comparison.filter_model = TRUE_MODEL
    else:

        def filter_model(walk):
            model, fitted["info"] = fit(
                walk, fitted["states"], fitted["minutes"], fitted["restarts"]
            )
            return model

        comparison.filter_model = filter_model
    with tempfile.TemporaryDirectory(prefix="fitted-filter-") as folder:
        overrides = [f"run={run}", "split=test", "counterfactual=false", "logger=csv"]
        overrides.append(f"paths.outputs_dir={folder}")
        if seed is not None:
            overrides += ["data=synthetic", f"data.synthetic.seed={seed}"]
        metrics = run_evaluation(grandmodel.load_config(overrides, config_name="evaluate"))
    names = ("trained", "ma_crossover", "regime_filter", "oracle")
    return {n: float(metrics["metrics"][n]["sharpe"]) for n in names}


def check(args: argparse.Namespace) -> None:
    """Bad arguments are one ``error:`` line and exit 2, before any work."""
    problems = []
    if importlib.util.find_spec("hmmlearn") is None:
        problems.append("hmmlearn: not installed; expected pip install -e .")
    if not (Path(args.run) / "checkpoints").is_dir():
        problems.append(f"--run {args.run}: no checkpoints/ folder; expected a trained run folder")
    for name, low in (("states", 2), ("minutes", 1), ("restarts", 1)):
        if getattr(args, name) < low:
            problems.append(f"--{name} {getattr(args, name)}: too small; expected >= {low}")
    for seed in args.seeds:
        if seed != "default" and not seed.isdigit():
            problems.append(f"--seeds {seed}: not a seed; expected 'default' or an integer")
    if problems:
        print(f"error: {problems[0]}", file=sys.stderr)
        raise SystemExit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--seeds", nargs="+", default=["default", "1000", "1001", "1002", "1003"])
    parser.add_argument("--states", type=int, default=5)
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--restarts", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    check(args)
    import torch

    torch.set_num_threads(1)
    rows = []
    for name in args.seeds:
        seed = None if name == "default" else int(name)
        true = evaluate(args.run, seed, None)
        fitted = {"states": args.states, "minutes": args.minutes, "restarts": args.restarts}
        row = {"market": name, **true, "fitted_filter": evaluate(args.run, seed, fitted)}
        row["fitted_filter"] = row["fitted_filter"]["regime_filter"]
        row["fit"] = fitted["info"]
        print(json.dumps(row), flush=True)
        rows.append(row)
    print("| market | trained (this run) | MA crossover | fitted filter | regime filter | oracle |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['market']} | {r['trained']:.2f} | {r['ma_crossover']:.2f} | "
            f"{r['fitted_filter']:.2f} | {r['regime_filter']:.2f} | {r['oracle']:.2f} |"
        )
    if args.out:
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": rows}))


if __name__ == "__main__":
    main()

"""What ``python -m grandmodel.evaluate`` and ``python -m grandmodel.backtest`` do: walk a trained
run beside its baselines, write the report or the tables, print the comparison and record the pass
as a tracking run nested under the training run."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from tensordict.nn import TensorDictSequential

from grandmodel.config import validate
from grandmodel.console import make_console, progress
from grandmodel.data.market_data import MarketData
from grandmodel.errors import GrandModelError
from grandmodel.evaluation.comparison import (
    compare,
    contributions,
    market,
    model_config,
    passes,
    trained_policy,
)
from grandmodel.evaluation.lean import LeanPolicy, lean_policy
from grandmodel.evaluation.outputs import comparison_table, report_equity, write_tables
from grandmodel.evaluation.report import ReportInputs, write_report
from grandmodel.evaluation.runs import TrainedRun, resolve_run
from grandmodel.evaluation.walk import RANGE, Outcome, Walk, stamp, with_range
from grandmodel.evaluation.walk_forward import walk_forward
from grandmodel.tracking import count_training_runs, record_child_run

log = logging.getLogger(__name__)


def _trained_run(cfg: DictConfig) -> TrainedRun:
    validate(cfg)
    uri = str(cfg.logger.tracking_uri) if cfg.logger.kind == "mlflow" else None
    run = resolve_run(str(cfg.run), uri)
    torch.manual_seed(int(cfg.seed))  # the random baseline and any sampling: same seed, same report
    return run


def _trained_policy(
    cfg: DictConfig, walk: Walk, run: TrainedRun
) -> tuple[dict, TensorDictSequential | LeanPolicy]:
    """The run's learners and its policy on ``cfg.policy``'s runtime. ``auto`` is the fastest
    available: ONNX Runtime (its strategic and tactical graphs act on all steps at once; ~5x faster
    than torch on a test split, experiments/backtest_speed), else torch when the run does not
    export. ``torch`` gives bit for bit the numbers training logged for the same policy."""
    learners, policy = trained_policy(walk, run)
    lean = lean_policy(policy)
    if cfg.policy == "torch":
        return learners, policy
    if lean is None:
        if cfg.policy == "auto":
            return learners, policy
        raise GrandModelError(
            f"policy=onnx: run={cfg.run} has a role the lean walk cannot express; expected policy=torch"
        )
    from grandmodel.evaluation.onnx_policy import onnx_policy  # ONNX Runtime only when used

    if cfg.policy == "onnx" or cfg.bundle:  # a bundle that does not load is an error
        return learners, onnx_policy(walk, run, lean, cfg.bundle)
    try:
        return learners, onnx_policy(walk, run, lean, None)
    except Exception as exc:  # auto: a run whose heads do not export walks with torch
        reason = " ".join(str(exc).split())[:200]
        print(f"note: policy=auto: no ONNX graphs ({reason}); walking with torch", file=sys.stderr)
        return learners, policy


def _flat(prefix: str, outcomes: dict[str, Outcome]) -> dict[str, float]:
    """Every policy's metrics as ``<prefix>/<policy>/<metric>``."""
    return {
        f"{prefix}/{name}/{key}": value
        for name, outcome in outcomes.items()
        for key, value in outcome.metrics.items()
    }


def run_evaluation(cfg: DictConfig) -> dict[str, Any]:
    """Walk ``cfg.split`` with the trained run and its baselines, write report.md, report.html, the
    plots and tables; returns the metrics per policy, the files, the contributions and the run id."""
    run = _trained_run(cfg)
    model_cfg = model_config(run, cfg.get("data"), cfg.paths)
    walk = Walk(model_cfg, market(run, model_cfg), str(cfg.split), int(cfg.episodes))
    learners, policy = _trained_policy(cfg, walk, run)
    counterfactual = learners if cfg.counterfactual else {}
    with progress(passes(walk, counterfactual), f"walking the {cfg.split} split", log) as advance:
        outcomes = compare(walk, run, policy, advance)
        trained = outcomes["trained"]
        contrib = contributions(walk, run, counterfactual, trained, policy, advance)
    folder = Path(cfg.paths.output_dir)
    episodes = len(trained.episode_rewards["strategic"])
    inputs = ReportInputs(
        equity=report_equity(trained, walk.capital),
        decisions=trained.ledger.decisions,
        returns=trained.returns,
        metrics=trained.metrics,
        comparison={name: o.metrics for name, o in outcomes.items()},
        episode_rewards=trained.episode_rewards,
        periods_per_year=walk.periods_per_year,
        n_trials=int(cfg.trials) or count_training_runs(cfg.logger, run.run_id),
        title=f"Evaluation on the {cfg.split} split",
        meta={
            "run": str(cfg.run),
            "checkpoint": str(run.checkpoint_path),
            "data": str(model_cfg.data.name),
            "episodes": str(episodes),
        },
        trades=trained.ledger.trades,
        history=run.history,
        contributions=contrib,
    )
    files = write_report(inputs, folder) | write_tables(trained, folder)
    params = {"split": cfg.split, "episodes": cfg.episodes, "run": cfg.run}
    run_id = _record(cfg, run, "evaluation", params, _flat(str(cfg.split), outcomes), files)
    console = make_console()
    title = f"{cfg.split} split, {episodes} episodes"
    console.print(comparison_table({name: o.metrics for name, o in outcomes.items()}, title))
    where = f"MLflow run {run_id}" if run_id else "no MLflow run"
    console.print(f"report: {files['report.html']}; {where}")
    return {
        "metrics": {name: o.metrics for name, o in outcomes.items()},
        "files": files,
        "run_id": run_id,
        "contributions": contrib,
    }


def run_backtest(cfg: DictConfig) -> dict[str, Any]:
    """One pass of the trained run and its baselines over its test split, ``[cfg.start, cfg.end]``
    or ``cfg.range`` (or, with ``walk_forward.folds``, a walk-forward test); returns metrics per
    policy and the files."""
    run = _trained_run(cfg)
    folder = Path(cfg.paths.output_dir)
    console = make_console()
    if int(cfg.walk_forward.folds):
        result = walk_forward(cfg, run, folder, console)
        params = {"folds": cfg.walk_forward.folds}
        result["run_id"] = _record(
            cfg, run, "walk_forward", params, result["metrics"], result["files"]
        )
        return result
    model_cfg = model_config(run, cfg.get("data"), cfg.paths, cfg.initial_capital)
    data, split = backtest_range(market(run, model_cfg), cfg.range, cfg.start, cfg.end)
    walk = Walk(model_cfg, data, split, whole=True)
    _, policy = _trained_policy(cfg, walk, run)
    with progress(passes(walk), "backtest", log) as advance:
        outcomes = compare(walk, run, policy, advance)
    files = write_tables(outcomes["trained"], folder)
    d = outcomes["trained"].ledger.decisions
    span = f"{d['time'].iloc[0]:%Y-%m-%d %H:%M} to {d['time'].iloc[-1]:%Y-%m-%d %H:%M}"
    title = f"backtest {span}, capital {walk.capital:,.0f}"
    console.print(comparison_table({name: o.metrics for name, o in outcomes.items()}, title))
    params = {
        "range": split,
        "start": cfg.start,
        "end": cfg.end,
        "initial_capital": walk.capital,
        "run": cfg.run,
    }
    run_id = _record(cfg, run, "backtest", params, _flat("backtest", outcomes), files)
    console.print(f"tables in {folder}; {'MLflow run ' + run_id if run_id else 'no MLflow run'}")
    return {
        "metrics": {name: o.metrics for name, o in outcomes.items()},
        "files": files,
        "run_id": run_id,
        "outcomes": outcomes,
    }


def backtest_range(
    data: MarketData, range_: str, start: str | None, end: str | None
) -> tuple[MarketData, str]:
    """The data and split a backtest walks: ``[start, end]`` when either is given, else the split
    ``range_`` (``all``: every decision). One warning line when the walk covers decisions of the
    train or val split (in-sample: training or checkpoint selection saw them)."""
    if start or end or range_ == "all":
        data, split = with_range(data, start, end), RANGE
    else:
        split = str(range_)
    lo, hi = data.splits[split]
    seen = [name for name in ("train", "val") if _overlap(data.splits[name], (lo, hi))]
    if seen:
        known, tz = data.tactical.known_ns.numpy(), str(data.meta["timezone"])
        first, last = stamp(known[lo], tz), stamp(known[max(hi - 2, lo)], tz)  # the last decision
        print(
            f"warning: the backtest ({first} to {last}) covers the model's {' and '.join(seen)} "
            "split: in-sample, its results overstate what the model would have earned; the default "
            "range=test is out of sample",
            file=sys.stderr,
        )
    return data, split


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return max(a[0], b[0]) < min(a[1], b[1])


def _record(
    cfg: DictConfig,
    run: TrainedRun,
    kind: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    files: dict[str, Path],
) -> str | None:
    """The pass as a ``kind`` tracking run under the training run (its local record beside the files)."""
    return record_child_run(
        cfg.logger,
        run.run_id,
        kind,
        params,
        metrics,
        list(files.values()),
        tags={"checkpoint": str(run.checkpoint_path)},
    )

"""Walk-forward testing: K folds, each trained on everything before its test window (with an embargo
of the longest look-back), tested out of sample; the out-of-sample windows are then pooled."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from grandmodel.config.root import RootConfig
from grandmodel.console import progress
from grandmodel.errors import GrandModelError
from grandmodel.evaluation.comparison import compare, market, model_config, trained_policy
from grandmodel.evaluation.metrics import performance_summary
from grandmodel.evaluation.outputs import comparison_table, write_tables
from grandmodel.evaluation.runs import TrainedRun, resolve_run
from grandmodel.evaluation.training_job import train
from grandmodel.evaluation.walk import RANGE, Outcome, Walk, stamp

FOLD_SPLITS = {
    "train": 0.8,
    "val": 0.15,
    "test": 0.05,
}  # of each fold's training data; its test is the next window


log = logging.getLogger(__name__)


def walk_forward(
    cfg: DictConfig, run: TrainedRun, folder: Path, console: Console
) -> dict[str, Any]:
    """Train (or load, ``walk_forward.runs``) each fold, walk its test window beside the baselines,
    and pool the folds; returns the metrics to log, the pooled metrics, the fold table and files."""
    model_cfg = model_config(run, cfg.get("data"), cfg.paths, cfg.initial_capital)
    full = market(run, model_cfg)
    folds = int(cfg.walk_forward.folds)
    first, last = int(full.meta["first_decision"]), int(full.meta["last_decision"])
    edges = np.linspace(first, last + 1, folds + 2).astype(int)  # window 0 only trains
    embargo = first  # decisions of look-back (window + warm-up) on both timeframes
    known = full.tactical.known_ns.numpy()
    tz = str(full.meta["timezone"])
    per_fold: list[dict[str, Outcome]] = []
    rows = []
    with progress(folds, "walk-forward folds", log) as advance:
        for i in range(folds):
            lo, hi = int(edges[i + 1]) + embargo, int(edges[i + 2])
            if hi - lo < 2:
                raise GrandModelError(
                    f"walk_forward.folds={folds}: fold {i} has no test window after the embargo; use fewer folds or more data"
                )
            train_end = str(pd.Timestamp(int(known[edges[i + 1] - 1]), tz="UTC").tz_convert(tz))
            fold_run = (
                resolve_run(cfg.walk_forward.runs[i])
                if cfg.walk_forward.runs
                else _train_fold(model_cfg, train_end, folder / f"fold{i}", cfg, console)
            )
            fold_cfg = model_config(fold_run, cfg.get("data"), cfg.paths, cfg.initial_capital)
            data = market(fold_run, fold_cfg)
            data = replace(data, splits={**data.splits, RANGE: (lo, hi)})
            walk = Walk(fold_cfg, data, RANGE, whole=True)
            _, policy = trained_policy(walk, fold_run)
            outcomes = compare(walk, fold_run, policy)
            write_tables(outcomes["trained"], folder, prefix=f"fold{i}_")
            per_fold.append(outcomes)
            rows.append(
                {
                    "fold": i,
                    "trained_until": train_end[:16],
                    "test_from": stamp(known[lo], tz),
                    "test_to": stamp(known[hi - 1], tz),
                    **{f"{k}_sharpe": o.metrics["sharpe"] for k, o in outcomes.items()},
                }
            )
            advance(f"fold {i}: trained until {train_end[:16]}, tested to {rows[-1]['test_to']}")
    pooled = {
        name: _pooled([f[name] for f in per_fold], walk.periods_per_year) for name in per_fold[0]
    }
    table = pd.DataFrame(rows)
    files = {"walk_forward.csv": folder / "walk_forward.csv"}
    table.to_csv(files["walk_forward.csv"], index=False)
    console.print(table.to_string(index=False))
    console.print(comparison_table(pooled, f"walk-forward: {folds} out-of-sample windows pooled"))
    metrics = {
        f"walk_forward/{name}/{k}": v
        for name, m in pooled.items()
        for k, v in m.items()
        if isinstance(v, float | int)
    }
    return {"metrics": metrics, "pooled": pooled, "folds": table, "files": files}


def _train_fold(
    model_cfg: DictConfig, train_end: str, folder: Path, cfg: DictConfig, console: Console
) -> TrainedRun:
    """Train the run's configuration on the data up to ``train_end`` (a full training job: its
    final report and tracked run included)."""
    plain = OmegaConf.to_container(model_cfg, resolve=True)
    plain["logger"] = OmegaConf.to_container(cfg.logger, resolve=True)
    fold = OmegaConf.merge(OmegaConf.structured(RootConfig), plain)  # typed, as training expects
    fold.data.end = train_end
    for name, fraction in FOLD_SPLITS.items():
        fold.data.splits[name] = fraction
    fold.paths.output_dir = str(folder)
    fold.ckpt_path = None
    if cfg.walk_forward.total_frames:
        fold.trainer.total_frames = int(cfg.walk_forward.total_frames)
        fold.trainer.eval_every_frames = min(
            int(fold.trainer.eval_every_frames), int(cfg.walk_forward.total_frames)
        )
    fold.trainer.enable_progress_bar = False
    train(fold, console=console)
    return resolve_run(str(folder))


def _pooled(outcomes: list[Outcome], periods_per_year: float) -> dict[str, float]:
    """Metrics of the out-of-sample windows' per-step returns chained in time order."""
    returns = np.concatenate([o.returns for o in outcomes])
    pnl = np.concatenate([o.ledger.trades["pnl"].to_numpy() for o in outcomes])
    out = performance_summary(returns, periods_per_year, trades_pnl=pnl)
    out["net_pnl"] = float(sum(o.metrics["net_pnl"] for o in outcomes))
    return out

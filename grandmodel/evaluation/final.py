"""The final report of a training run: the chosen policy walked over the validation and test
splits by the evaluator that picked the checkpoints, beside every reference policy on the same
windows (baselines, and on synthetic regime data the regime oracle and the regime filter), with
the 95% interval of each Sharpe ratio, as a printed table and files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from rich.table import Table
from rich.text import Text
from tensordict.nn import TensorDictModuleBase

from grandmodel.data.market_data import MarketData
from grandmodel.evaluation.comparison import references
from grandmodel.evaluation.evaluator import make_evaluator
from grandmodel.evaluation.plots import learning_curves
from grandmodel.evaluation.statistics import sharpe_intervals
from grandmodel.evaluation.walk import Walk

FINAL_SPLITS = ("val", "test")


@dataclass
class FinalReport:
    """``metrics``: per split, the evaluator's metrics; ``sharpe``: per split and policy (the
    trained one as ``trained``), the Sharpe ratio, its 95% interval (``low``, ``high``) and the
    closed round trips; ``table``: both as a rich table (metric rows, then one Sharpe row per
    policy; split columns); ``files``: what was written (``evaluation.md``, ``val_returns.npy``
    ``final.json`` with ``metrics`` and ``sharpe``
    and, when ``history`` has curves, ``learning_curves.png``)."""

    metrics: dict[str, dict[str, float]]
    sharpe: dict[str, dict[str, dict[str, float]]]
    table: Table
    files: list[Path]


def final_report(
    cfg: DictConfig,
    data: MarketData,
    policy: TensorDictModuleBase,
    output_dir: Path,
    history: list[dict],
    which: str = "best",
) -> FinalReport:
    """Walk ``policy`` (the ``which`` policy: "best" or "last") and the reference policies over
    :data:`FINAL_SPLITS` and write the report into ``output_dir``. The validation walk's per-step
    returns go to ``val_returns.npy`` (the sweep statistics read them)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, dict[str, float]] = {}
    sharpe: dict[str, dict[str, dict[str, float]]] = {}
    files: list[Path] = []
    for split in FINAL_SPLITS:
        evaluator = make_evaluator(cfg, data, split)
        metrics[split] = evaluator(policy)
        sharpe[split] = _sharpe_beside(evaluator.walk, evaluator.last_returns, metrics[split])
        if split == "val":
            files.append(output_dir / "val_returns.npy")
            np.save(files[-1], evaluator.last_returns)
    rows = [(key, [f"{metrics[s][key]:.4f}" for s in FINAL_SPLITS]) for key in metrics["val"]]
    policies = [
        (f"sharpe [95% CI] {name}", [_interval(sharpe[s][name]) for s in FINAL_SPLITS])
        for name in sharpe["val"]
    ]
    table = Table(title=f"Evaluation of the {which} policy")
    table.caption = (
        "sharpe [95% CI]: annualised, stationary block bootstrap; each policy on the same windows"
    )
    table.add_column("metric")
    for split in FINAL_SPLITS:
        table.add_column(split, justify="right")
    for key, cells in rows:
        table.add_row(key, *cells)
    table.add_section()
    for key, cells in policies:
        table.add_row(key, *map(Text, cells))  # not markup: "[lo, hi]"
    lines = ["| metric | " + " | ".join(FINAL_SPLITS) + " |", "|---|" + "---:|" * len(FINAL_SPLITS)]
    lines += [f"| {key} | " + " | ".join(cells) + " |" for key, cells in rows + policies]
    files.append(output_dir / "evaluation.md")
    files[-1].write_text("\n".join(lines) + "\n")
    files.append(output_dir / "final.json")  # the same numbers for scripts (experiments/)
    files[-1].write_text(
        json.dumps({"which": which, "metrics": metrics, "sharpe": sharpe}, indent=1)
    )
    curves = learning_curves(history, output_dir / "learning_curves.png")
    if curves is not None:
        files.append(curves)
    return FinalReport(metrics, sharpe, table, files)


def _sharpe_beside(
    walk: Walk, returns: np.ndarray, trained: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Sharpe ratio, interval and round trips of the trained policy and of every reference (the
    random baseline drawing from the run's seed, the caller's random state left as it was)."""
    ppy = walk.periods_per_year
    walked = {"trained": (returns, trained)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(walk.cfg.seed))
        for name, outcome in walk.run_many(references(walk)).items():  # one batched walk
            walked[name] = (outcome.returns, outcome.metrics)
    intervals = sharpe_intervals([r for r, _ in walked.values()], ppy)
    return {
        name: {"sharpe": m["sharpe"], "low": low, "high": high, "trades": m["trades"]}
        for (name, (_, m)), (low, high) in zip(walked.items(), intervals, strict=True)
    }


def _interval(row: dict[str, float]) -> str:
    low, high, trades = row["low"], row["high"], row["trades"]
    interval = "n/a" if np.isnan(low) else f"{low:.2f}, {high:.2f}"
    return f"{row['sharpe']:.2f} [{interval}] ({trades:.0f} trade{'' if trades == 1 else 's'})"

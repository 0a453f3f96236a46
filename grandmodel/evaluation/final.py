"""The final report of a training run: the chosen policy walked over the validation and test
splits by the evaluator that picked the checkpoints, as a printed table and files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from rich.table import Table
from tensordict.nn import TensorDictModuleBase

from grandmodel.data.market_data import MarketData
from grandmodel.evaluation.evaluator import make_evaluator
from grandmodel.evaluation.plots import learning_curves

FINAL_SPLITS = ("val", "test")


@dataclass
class FinalReport:
    """``metrics``: per split, the evaluator's metrics; ``table``: them as a rich table (metric
    rows, split columns); ``files``: what was written (``evaluation.md``, ``val_returns.npy`` and,
    when ``history`` has curves, ``learning_curves.png``)."""

    metrics: dict[str, dict[str, float]]
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
    """Walk ``policy`` (the ``which`` policy: "best" or "last") over :data:`FINAL_SPLITS` and write
    the report into ``output_dir``. The validation walk's per-step returns go to
    ``val_returns.npy`` (the sweep statistics read them)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, dict[str, float]] = {}
    files: list[Path] = []
    for split in FINAL_SPLITS:
        evaluator = make_evaluator(cfg, data, split)
        metrics[split] = evaluator(policy)
        if split == "val":
            files.append(output_dir / "val_returns.npy")
            np.save(files[-1], evaluator.last_returns)
    rows = [(key, [f"{metrics[s][key]:.4f}" for s in FINAL_SPLITS]) for key in metrics["val"]]
    table = Table(title=f"Evaluation of the {which} policy")
    table.add_column("metric")
    for split in FINAL_SPLITS:
        table.add_column(split, justify="right")
    for key, cells in rows:
        table.add_row(key, *cells)
    lines = ["| metric | " + " | ".join(FINAL_SPLITS) + " |", "|---|" + "---:|" * len(FINAL_SPLITS)]
    lines += [f"| {key} | " + " | ".join(cells) + " |" for key, cells in rows]
    files.append(output_dir / "evaluation.md")
    files[-1].write_text("\n".join(lines) + "\n")
    curves = learning_curves(history, output_dir / "learning_curves.png")
    if curves is not None:
        files.append(curves)
    return FinalReport(metrics, table, files)

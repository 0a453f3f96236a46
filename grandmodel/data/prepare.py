"""``python -m grandmodel.data.prepare [overrides]``: prepare market data and print a summary table.

``data.export=<file.parquet>`` also writes the prepared, un-normalised feature table with timestamps.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from grandmodel import cli
from grandmodel.config import register_configs, validate
from grandmodel.console import make_console
from grandmodel.errors import reported

if TYPE_CHECKING:
    from grandmodel.data.market_data import MarketData

register_configs()


def run(cfg: DictConfig, console: Console | None = None) -> MarketData:
    """Prepare (or load from cache) the data of ``cfg``, print the summary, write norm stats/export."""
    from grandmodel.data.normalise import save_norm
    from grandmodel.data.pipeline import export_table, prepare

    console = console or make_console()
    data_cfg = validate(cfg).data
    started = time.perf_counter()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("load, validate, resample, features, split, normalise", total=None)
        tables, data = prepare(data_cfg, Path(cfg.paths.cache_dir))
        progress.update(task, description="done")
    out_dir = Path(cfg.paths.output_dir)
    norm_path = save_norm(data.norm, out_dir / "norm_stats.json")
    if data_cfg.export:
        export_table(tables, data_cfg.export)
    console.print(summary(data, time.perf_counter() - started))
    for name in ("strategic", "tactical"):
        console.print(f"{name} features: {', '.join(getattr(data, name).feature_names)}")
    console.print(f"normalisation statistics: {norm_path}")
    if data_cfg.export:
        console.print(f"feature table: {data_cfg.export}")
    return data


def summary(data: MarketData, seconds: float) -> Table:
    """Bars per timeframe, date range, features, splits and cache state."""
    import pandas as pd

    meta = data.meta
    tz = meta["timezone"]

    def stamp(ns: int) -> str:
        return str(pd.Timestamp(ns, tz="UTC").tz_convert(tz).strftime("%Y-%m-%d %H:%M"))

    title = (
        f"{meta.get('source')}: cache {meta.get('cache')} (key {meta.get('key')}), {seconds:.2f}s"
    )
    table = Table(title=title, min_width=100)
    for column in ("item", "bars / steps", "from", "to", "detail"):
        table.add_column(column, no_wrap=column != "detail")
    for bars in (data.base, data.tactical, data.strategic):
        detail = (
            f"obs [{data.window[bars.name]}, {len(bars.feature_names)}], warm-up {bars.warmup} bars"
            if bars.feature_names
            else "fills, stops, marks"
        )
        first, last = stamp(int(bars.open_ns[0])), stamp(int(bars.known_ns[-1]))
        table.add_row(
            f"{bars.name} {meta['timeframes'][bars.name]}", f"{len(bars):,}", first, last, detail
        )
    known = data.tactical.known_ns
    for name, (start, stop) in data.splits.items():
        first, last = stamp(int(known[start])), stamp(int(known[stop - 1]))
        table.add_row(f"split {name}", f"{data.split_steps(name):,}", first, last, "decision steps")
    removed = {k: v for k, v in meta.get("removed", {}).items() if v}
    if removed:
        detail = ", ".join(f"{k}: {v}" for k, v in removed.items())
        table.add_row("rows removed", str(sum(removed.values())), "", "", detail)
    return table


@hydra.main(config_path="../../conf", config_name="prepare", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with reported(run_dir=HydraConfig.get().runtime.output_dir):
        run(cfg)


if __name__ == "__main__":
    cli.run(main, "prepare", "grandmodel.data.prepare")

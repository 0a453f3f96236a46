"""What the evaluation tools write and print: tables as Parquet/CSV, comparison tables, equity frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from grandmodel.evaluation.metrics import equity_curve
from grandmodel.evaluation.walk import Outcome

SHOWN = (
    "sharpe",
    "sortino",
    "total_return",
    "max_drawdown",
    "n_trades",
    "win_rate",
    "profit_factor",
    "net_pnl",
)


def report_equity(outcome: Outcome, capital: float) -> pd.DataFrame:
    """The report's equity curve after each step: the walk's chained returns from ``capital``."""
    d = outcome.ledger.decisions
    equity = equity_curve(outcome.returns, capital)[1:]
    peak = np.maximum.accumulate(equity)
    index = pd.DatetimeIndex(d["time"]).rename("time")
    columns = {
        "equity": equity,
        "drawdown": 1.0 - equity / peak,
        "position": d["position"].to_numpy(),
        "mark": d["mark"].to_numpy(),
    }
    return pd.DataFrame(columns, index=index)


def write_tables(outcome: Outcome, folder: Path, prefix: str = "") -> dict[str, Path]:
    """Decisions, equity (with positions) and closed trades as Parquet and CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    tables = {
        "decisions": outcome.ledger.decisions,
        "equity": outcome.ledger.equity.reset_index(),
        "trades": outcome.ledger.trades,
    }
    for name, table in tables.items():
        parquet, csv = folder / f"{prefix}{name}.parquet", folder / f"{prefix}{name}.csv"
        table.to_parquet(parquet)
        table.to_csv(csv, index=False)
        out[parquet.name], out[csv.name] = parquet, csv
    return out


def comparison_table(metrics: dict[str, dict[str, float]], title: str) -> Table:
    """Policies as rows, the headline metrics as columns."""
    table = Table(title=title)
    table.add_column("policy")
    for key in SHOWN:
        table.add_column(key, justify="right")
    for name, values in metrics.items():
        table.add_row(name, *(_cell(values.get(key, float("nan"))) for key in SHOWN))
    return table


def _cell(value: float) -> str:
    if value != value:
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"

"""Turn an env rollout into tables: every decision, the equity curve, and closed round trips.

Everything comes from the env's own per-step accounting outputs (``("next", "info", ...)``); the
only arithmetic here is bookkeeping of which legs belong to which round trip, with the env's own
:class:`~grandmodel.env.execution.CostModel` for the cost of each leg.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from tensordict import TensorDictBase

from grandmodel.data.market_data import MarketData
from grandmodel.env.execution import CostModel


@dataclass
class Ledger:
    decisions: pd.DataFrame
    equity: pd.DataFrame
    trades: pd.DataFrame


def _times(ns: np.ndarray, tz: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(ns, utc=True)).tz_convert(tz)


def ledger(
    rollout: TensorDictBase, alive: np.ndarray, data: MarketData, costs: CostModel
) -> Ledger:
    """Tables of a rollout ``[episodes, steps]``; ``alive`` masks each episode's own steps."""
    tz = str(data.meta.get("timezone", "UTC"))
    info = rollout.get(("next", "info"))
    get = lambda key: info.get(key)[..., 0].numpy()  # noqa: E731
    episode = np.broadcast_to(np.arange(alive.shape[0])[:, None], alive.shape)
    t = rollout.get(("info", "t"))[..., 0].numpy()
    tactical = rollout.get(("tactical", "action")).numpy()
    columns = {
        "episode": episode[alive],
        "t": t[alive],
        "time": _times(data.tactical.known_ns.numpy()[t[alive]], tz),
        "decision": rollout.get(("strategic", "decision"))[..., 0].numpy()[alive],
        "strategic_action": rollout.get(("strategic", "action")).numpy()[alive],
        "direction": get("direction")[alive],
        "entry_timing": tactical[..., 0][alive],
        "stop_distance": tactical[..., 1][alive],
        "position_scale": tactical[..., 2][alive],
        "risk_level": rollout.get(("risk", "action")).numpy()[alive],
        "traded": get("traded")[alive],
        "fill_price": get("fill_price")[alive],
        "stop_hit": get("stop_hit")[alive].astype(bool),
        "stop_price": get("stop_price")[alive],
        "stop_bar": get("stop_bar")[alive],
        "position": get("position")[alive],
        "mark": get("mark")[alive],
        "equity": get("equity")[alive],
        "costs": get("costs")[alive],
        "closed_fill_pnl": get("closed_fill_pnl")[alive],
        "closed_stop_pnl": get("closed_stop_pnl")[alive],
    }
    for role in ("strategic", "tactical", "risk"):
        columns[f"reward_{role}"] = rollout.get(("next", role, "reward"))[..., 0].numpy()[alive]
    decisions = pd.DataFrame(columns)
    decisions["time"] = columns["time"]
    peak = decisions.groupby("episode")["equity"].cummax()
    equity = pd.DataFrame(
        {
            "equity": decisions["equity"].to_numpy(),
            "drawdown": (1.0 - decisions["equity"] / peak).to_numpy(),
            "position": decisions["position"].to_numpy(),
            "mark": decisions["mark"].to_numpy(),
            "episode": decisions["episode"].to_numpy(),
        },
        index=pd.DatetimeIndex(decisions["time"]).rename("time"),
    )
    return Ledger(decisions, equity, round_trips(decisions, data, costs))


def round_trips(decisions: pd.DataFrame, data: MarketData, costs: CostModel) -> pd.DataFrame:
    """One row per closed round trip (flat → position → flat, or a flip)."""
    tz = str(data.meta.get("timezone", "UTC"))
    base_open = data.base.open_ns.numpy()
    fill_index = data.fill_index.numpy()
    rows: list[dict] = []
    for _, steps in decisions.groupby("episode", sort=True):
        held, book = 0.0, None  # contracts held before the step; the open trade's legs
        for row in steps.itertuples(index=False):
            fill_time = int(base_open[fill_index[row.t]])
            if row.traded != 0:
                after = held + row.traded
                closing = min(abs(row.traded), abs(held)) if held * row.traded < 0 else 0.0
                if closing:
                    book["exit"].append(
                        (closing, row.fill_price, costs.per_contract(row.fill_price) * closing)
                    )
                if book is not None and (after == 0 or after * held < 0):
                    rows.append(_close(book, fill_time, row.closed_fill_pnl, False, tz))
                    book = None
                opening = abs(row.traded) - closing
                if opening:
                    if book is None:
                        book = {
                            "side": "long" if after > 0 else "short",
                            "start": fill_time,
                            "entry": [],
                            "exit": [],
                            "t0": row.t,
                        }
                    book["entry"].append(
                        (opening, row.fill_price, costs.per_contract(row.fill_price) * opening)
                    )
                held = after
            if row.stop_hit and book is not None:
                book["exit"].append(
                    (abs(held), row.stop_price, costs.per_contract(row.stop_price) * abs(held))
                )
                rows.append(
                    _close(book, int(base_open[row.stop_bar]), row.closed_stop_pnl, True, tz)
                )
                book, held = None, 0.0
            if book is not None:
                book["t1"] = row.t
    columns = [
        "entry_time",
        "exit_time",
        "side",
        "contracts",
        "entry_price",
        "exit_price",
        "pnl",
        "costs",
        "stop_hit",
        "bars",
    ]
    return pd.DataFrame(rows, columns=columns)


def _close(book: dict, exit_ns: int, pnl: float, stop_hit: bool, tz: str) -> dict:
    entry_qty = sum(q for q, _, _ in book["entry"])
    exit_qty = sum(q for q, _, _ in book["exit"])
    return {
        "entry_time": _times(np.array([book["start"]]), tz)[0],
        "exit_time": _times(np.array([exit_ns]), tz)[0],
        "side": book["side"],
        "contracts": entry_qty,
        "entry_price": sum(q * p for q, p, _ in book["entry"]) / entry_qty,
        "exit_price": sum(q * p for q, p, _ in book["exit"]) / max(exit_qty, 1e-12),
        "pnl": float(pnl),
        "costs": float(sum(c for *_, c in book["entry"]) + sum(c for *_, c in book["exit"])),
        "stop_hit": stop_hit,
        "bars": int(book.get("t1", book["t0"]) - book["t0"] + 1),
    }

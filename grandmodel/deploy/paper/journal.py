"""The paper session's journal: one SQLite file, one transaction per base bar.

Every base bar seen, each decision (every role's action as the model gave it and as the gate sent
it, the model version), orders, fills, the account after each settlement and every risk-gate
transition are written inside the transaction of the bar that caused them, so a session killed at
any point (even ``kill -9``) leaves the journal at a bar boundary; a restart replays those bars
and continues. WAL mode with ``synchronous=NORMAL``: a committed bar survives a process crash (not
necessarily a power loss).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bars (seq INTEGER PRIMARY KEY, open_ns INTEGER NOT NULL, open REAL,
  high REAL, low REAL, close REAL, volume REAL);
CREATE TABLE IF NOT EXISTS decisions (t INTEGER PRIMARY KEY, bar_seq INTEGER NOT NULL,
  time_ns INTEGER NOT NULL, model_version TEXT NOT NULL, strategic INTEGER, entry_timing REAL,
  stop_distance REAL, position_scale REAL, risk INTEGER, sent_strategic INTEGER,
  sent_entry_timing REAL, sent_stop_distance REAL, sent_position_scale REAL, sent_risk INTEGER,
  strategic_decision INTEGER, confidence REAL, gate_state TEXT NOT NULL, gate_reason TEXT, target REAL,
  wanted REAL, allowed REAL);
CREATE TABLE IF NOT EXISTS orders (t INTEGER PRIMARY KEY, bar_seq INTEGER NOT NULL, qty REAL);
CREATE TABLE IF NOT EXISTS fills (id INTEGER PRIMARY KEY AUTOINCREMENT, t INTEGER NOT NULL,
  bar_seq INTEGER NOT NULL, kind TEXT NOT NULL, bar_ns INTEGER, qty REAL, price REAL, cost REAL);
CREATE TABLE IF NOT EXISTS account (t INTEGER PRIMARY KEY, bar_seq INTEGER NOT NULL,
  time_ns INTEGER NOT NULL, position REAL, avg_price REAL, realised REAL, costs REAL, equity REAL,
  peak REAL, stop REAL, mark REAL);
CREATE TABLE IF NOT EXISTS risk_events (id INTEGER PRIMARY KEY AUTOINCREMENT,
  bar_seq INTEGER NOT NULL, time_ns INTEGER, before TEXT, after TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS monitor (id INTEGER PRIMARY KEY AUTOINCREMENT, bar_seq INTEGER,
  t INTEGER, report TEXT);
"""
# what must match between an interrupted and an uninterrupted session (the tables above)
TABLES = ("bars", "decisions", "orders", "fills", "account", "risk_events", "monitor")


class Journal:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.in_bar = False

    @contextmanager
    def bar(self) -> Iterator[None]:
        """Everything written inside is one transaction (committed at the end, or not at all)."""
        self.db.execute("BEGIN")
        self.in_bar = True
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        finally:
            self.in_bar = False
        self.db.execute("COMMIT")

    def insert(self, table: str, row: dict[str, Any]) -> None:
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(row.values()))

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def set_meta(self, values: dict[str, Any]) -> None:
        with self.bar():
            for key, value in values.items():
                self.db.execute(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value))
                )

    def count(self, table: str) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def rows(self, table: str, order: str = "rowid") -> list[sqlite3.Row]:
        self.db.row_factory = sqlite3.Row
        try:
            return list(self.db.execute(f"SELECT * FROM {table} ORDER BY {order}"))
        finally:
            self.db.row_factory = None

    def decision(self, t: int) -> sqlite3.Row | None:
        self.db.row_factory = sqlite3.Row
        try:
            return self.db.execute("SELECT * FROM decisions WHERE t = ?", (t,)).fetchone()
        finally:
            self.db.row_factory = None

    def account_at(self, t: int) -> sqlite3.Row | None:
        self.db.row_factory = sqlite3.Row
        try:
            return self.db.execute("SELECT * FROM account WHERE t = ?", (t,)).fetchone()
        finally:
            self.db.row_factory = None

    def close(self) -> None:
        self.db.close()


def dump(path: Path) -> dict[str, list[tuple]]:
    """Every journal table's rows in order (for comparing sessions)."""
    db = sqlite3.connect(str(path))
    try:
        return {t: list(db.execute(f"SELECT * FROM {t} ORDER BY rowid")) for t in TABLES}
    finally:
        db.close()

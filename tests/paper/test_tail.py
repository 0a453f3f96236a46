"""feed=tail follows a CSV another process appends to; silence past the timeout halts the gate
(stale data) and the kill-switch file flattens the position and ends the session."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.deploy.helpers import ROOT


def _wait(predicate, what: str, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _count(db: Path, sql: str) -> int:
    if not db.is_file():
        return 0
    con = sqlite3.connect(db)
    try:
        return int(con.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def test_tail_feed_stale_data_and_kill_file(bundle: Path, smoke_tables, tmp_path: Path) -> None:
    _, full = smoke_tables
    lines = full.read_text().splitlines(keepends=True)
    feed = tmp_path / "live.csv"
    feed.write_text("".join(lines[:3400]))  # header + the warm-up
    cmd = [sys.executable, "-m", "grandmodel.paper", f"bundle={bundle}", "feed=tail",
           f"feed.path={feed}", "feed.poll_seconds=0.05", f"paths.outputs_dir={tmp_path}",
           "paper.session=live", "paper.risk.stale_seconds=1", "paper.risk.flatten_minutes=0",
           "paper.quiet=true"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    db = tmp_path / "paper" / "live" / "journal.sqlite"
    try:
        _wait(lambda: _count(db, "SELECT COUNT(*) FROM bars") == 3399, "the first bars")
        _wait(lambda: _count(db, "SELECT COUNT(*) FROM risk_events WHERE reason LIKE 'stale%'") == 1,
              "the stale-data halt")  # fmt: skip
        with feed.open("a") as out:  # bars arrive again, a few at a time
            for start in range(3400, 3700, 20):
                out.write("".join(lines[start : start + 20]))
                out.flush()
                time.sleep(0.05)
        _wait(lambda: _count(db, "SELECT COUNT(*) FROM bars") == 3699, "the appended bars")
        assert _count(db, "SELECT COUNT(*) FROM account WHERE position != 0") > 0
        (tmp_path / "paper" / "live" / "KILL").touch()
        with feed.open("a") as out:
            out.write("".join(lines[3700:3720]))
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert _count(db, "SELECT position FROM account ORDER BY t DESC LIMIT 1") == 0
    assert (
        _count(db, "SELECT COUNT(*) FROM risk_events WHERE reason LIKE 'kill switch: file%'") == 1
    )

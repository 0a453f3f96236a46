"""kill -9 at random bars and a restart with the same command: the journal ends as an
uninterrupted session's; a journal that disagrees with the broker refuses to trade."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from grandmodel.config import load_config
from grandmodel.deploy.paper.journal import dump
from grandmodel.deploy.paper.session import PaperSession
from grandmodel.errors import GrandModelError
from tests.deploy.helpers import run_module


def _paper(bundle: Path, bars: Path, outputs: Path, session: str, *extra: str):
    return run_module(
        "grandmodel.paper", f"bundle={bundle}", f"feed.path={bars}", f"paths.outputs_dir={outputs}",
        f"paper.session={session}", "paper.quiet=true", *extra, timeout=600,
    )  # fmt: skip


def test_kill_at_random_bars_then_restart_equals_an_uninterrupted_session(
    bundle: Path, smoke_tables, tmp_path: Path
) -> None:
    _, full = smoke_tables
    bars = tmp_path / "bars.csv"
    bars.write_text("".join(full.read_text().splitlines(keepends=True)[:4501]))
    whole = _paper(bundle, bars, tmp_path, "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    kills = sorted(random.Random(12).sample(range(3000, 4500), 2))
    for bar in kills:
        killed = _paper(bundle, bars, tmp_path, "killed", f"paper.kill_at_bar={bar}")
        assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = _paper(bundle, bars, tmp_path, "killed")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = dump(tmp_path / "paper" / "whole" / "journal.sqlite")
    b = dump(tmp_path / "paper" / "killed" / "journal.sqlite")
    assert len(a["bars"]) == 4500 and len(a["decisions"]) > 200
    assert a == b

    # a journal whose account disagrees with the replayed broker refuses to trade
    db = sqlite3.connect(tmp_path / "paper" / "killed" / "journal.sqlite")
    db.execute("UPDATE account SET position = 3 WHERE t = (SELECT MAX(t) FROM account)")
    db.commit()
    db.close()
    cfg = load_config([f"bundle={bundle}", f"feed.path={bars}", f"paths.outputs_dir={tmp_path}",
                       "paper.session=killed"], config_name="paper")  # fmt: skip
    with pytest.raises(GrandModelError, match="refusing to trade") as refused:
        PaperSession(cfg, tmp_path / "paper" / "killed").run()
    assert "journal holds position 3" in str(refused.value)

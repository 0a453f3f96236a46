"""A replay at speed=max from a start time trades exactly as ``grandmodel.backtest`` over that range."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from tests.deploy.helpers import run_module

RECOMMENDATIONS = (
    "PERFORMANCE_ACCEPTABLE",
    "RETRAINING_RECOMMENDED",
    "IMMEDIATE_RETRAINING_REQUIRED",
)


def test_replay_equals_backtest(trained: tuple[Path, Path], smoke_tables, tmp_path: Path) -> None:
    run_dir, bundle = trained
    _, bars = smoke_tables
    start, end = "2023-01-10 09:00", "2023-01-12 15:00"
    paths = [f"paths.outputs_dir={tmp_path}", "logger=csv"]
    backtest = run_module(
        "grandmodel.backtest", f"run={run_dir}", f"start={start}", f"end={end}", *paths,
        f"paths.output_dir={tmp_path / 'bt'}",
    )  # fmt: skip
    assert backtest.returncode == 0, backtest.stderr[-2000:]
    paper = run_module(
        "grandmodel.paper", f"bundle={bundle}", f"feed.path={bars}", "feed.speed=max", *paths,
        "paper.session=bt", f"paper.start={start}", "paper.quiet=true", "paper.monitor_every=200",
        f"paper.reference={run_dir}",
        # the gate off: a backtest has no loss limit, position cap or session-close flattening
        "paper.risk.flatten_minutes=0", "paper.risk.max_position=100",
        "paper.risk.daily_loss_limit=0.99", "paper.risk.reduce_at=1",
    )  # fmt: skip
    assert paper.returncode == 0, paper.stderr[-2000:]
    expected = pd.read_parquet(tmp_path / "bt" / "decisions.parquet").set_index("time")
    db = sqlite3.connect(tmp_path / "paper" / "bt" / "journal.sqlite")
    got = pd.read_sql(
        "SELECT d.*, a.position, a.equity, a.costs FROM decisions d JOIN account a USING (t)", db
    )
    fills = pd.read_sql("SELECT t, kind, qty, price FROM fills", db)
    checks = [json.loads(r) for (r,) in db.execute("SELECT report FROM monitor")]
    db.close()
    got.index = pd.DatetimeIndex(pd.to_datetime(got["time_ns"], utc=True)).tz_convert(
        "America/Chicago"
    )
    got = got.loc[expected.index]  # every backtest decision is in the journal, at the same time
    assert (expected["traded"] != 0).sum() >= 1
    np.testing.assert_array_equal(got["sent_strategic"], expected["strategic_action"])
    np.testing.assert_array_equal(got["sent_risk"], expected["risk_level"])
    np.testing.assert_array_equal(got["position"], expected["position"])
    np.testing.assert_allclose(got["equity"], expected["equity"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["costs"], expected["costs"], rtol=0, atol=1e-6)
    orders = fills[fills["kind"] == "order"].set_index("t")["qty"]
    traded = pd.Series(expected["traded"].to_numpy(), index=got["t"].to_numpy())
    np.testing.assert_array_equal(orders.reindex(traded.index).fillna(0.0), traded)

    assert len(checks) >= 3 and checks[-1]["recommendation"] in RECOMMENDATIONS
    assert all("feature_drift" in c for c in checks[1:])  # once a window of decisions is in

    # the monitor on that session, against the run's training split, tracked under the training run
    uri = f"sqlite:///{run_dir.parents[1]}/mlflow.db"
    monitor = run_module(
        "grandmodel.monitor", f"session={tmp_path / 'paper' / 'bt'}", f"reference={run_dir}",
        f"paths.outputs_dir={tmp_path}", "logger=mlflow", f"logger.tracking_uri={uri}",
    )  # fmt: skip
    assert monitor.returncode == 0, monitor.stderr[-2000:]
    assert "drift:" in monitor.stdout
    child = MlflowClient(uri).get_run(monitor.stdout.split("MLflow run ")[-1].strip())
    parent = (run_dir / "mlflow_run_id").read_text().strip()
    assert child.data.tags["mlflow.parentRunId"] == parent
    assert child.data.tags["kind"] == "monitoring" and "monitor/sharpe_ratio" in child.data.metrics
    for name in ("report.md", "equity.png", "rolling_sharpe.png", "drift.png", "summary.json"):
        assert (tmp_path / "paper" / "bt" / "monitor" / name).is_file()

"""One evaluation pass: the metrics that pick checkpoints are the metrics every report shows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import grandmodel
from grandmodel.env.baselines import joint_baseline
from grandmodel.evaluation.evaluator import TRAINING_KEYS, make_evaluator
from grandmodel.evaluation.final import final_report
from grandmodel.evaluation.metrics import equity_curve, sharpe_ratio
from grandmodel.evaluation.outputs import report_equity
from grandmodel.evaluation.report import ReportInputs, write_report
from grandmodel.evaluation.statistics import honest_statistics
from grandmodel.evaluation.walk import Walk

POLICIES = {"flat": "flat", "long": "always_long", "crossover": "ma_crossover"}


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    outputs = tmp_path_factory.mktemp("outputs")
    cfg = grandmodel.load_config(["experiment=smoke", f"paths.outputs_dir={outputs}"])
    return cfg, grandmodel.prepare_data(cfg)


def _policy(cfg, data, name: str):
    params = {"risk": {"level": 2}}
    return joint_baseline(data.strategic.feature_names, {"strategic": POLICIES[name]}, params)


@pytest.mark.parametrize("name", list(POLICIES))
def test_checkpoint_metrics_equal_the_report_metrics(market, name: str, tmp_path: Path) -> None:
    cfg, data = market
    policy = _policy(cfg, data, name)
    evaluator = make_evaluator(cfg, data, "val")
    picked = evaluator(policy)
    assert list(picked) == list(TRAINING_KEYS)
    outcome = Walk(cfg, data, "val", int(cfg.trainer.eval_episodes)).run(policy, tables=True)
    np.testing.assert_equal(picked, {key: outcome.metrics[key] for key in TRAINING_KEYS})
    np.testing.assert_array_equal(evaluator.last_returns, outcome.returns)
    np.testing.assert_array_equal(evaluator.last_episode_rewards, outcome.mean_episode_rewards)
    # the honest statistics and the report's every section show the same Sharpe ratio
    sharpe, ppy = picked["sharpe"], float(data.meta["periods_per_year"]["tactical"])
    assert sharpe == sharpe_ratio(outcome.returns, ppy)
    assert honest_statistics(outcome.returns, ppy, 1)["sharpe"] == sharpe
    capital = float(cfg.env.initial_capital)
    inputs = ReportInputs(
        equity=report_equity(outcome, capital),
        decisions=outcome.ledger.decisions,
        returns=outcome.returns,
        metrics=outcome.metrics,
        comparison={"trained": outcome.metrics},
        episode_rewards=outcome.episode_rewards,
        periods_per_year=ppy,
        n_trials=1,
        title=name,
        trades=outcome.ledger.trades,
    )
    md = write_report(inputs, tmp_path)["report.md"].read_text(encoding="utf-8")
    assert md.count(f"- **Sharpe ratio (annualised)**: {sharpe:,.2f}") == 2
    assert f"| trained | {sharpe:,.2f} |" in md
    # the env's per-step returns are the ledger's equity changes, window by window
    d = outcome.ledger.decisions
    for _, steps in d.groupby("episode"):
        equity = np.concatenate(([capital], steps["equity"].to_numpy()))
        np.testing.assert_allclose(
            outcome.returns[steps.index], equity[1:] / equity[:-1] - 1.0, rtol=0, atol=1e-15
        )
    # one chain: the report's equity curve is the walk's returns compounded from the capital
    np.testing.assert_array_equal(
        report_equity(outcome, capital)["equity"], equity_curve(outcome.returns, capital)[1:]
    )
    # the env's trade counters and the ledger's round trips agree
    assert outcome.metrics["n_trades"] == picked["trades"]
    if name == "flat":  # never moves equity: Sharpe 0 everywhere, not nan
        assert sharpe == 0.0 and picked["total_return"] == 0.0 and picked["trades"] == 0
        assert math.isnan(picked["win_rate"])
    else:
        assert sharpe != 0.0 and picked["total_return"] != 0.0
    if name == "crossover":
        assert picked["trades"] > 0


def test_final_report_walks_val_and_test_with_the_training_evaluator(market, tmp_path) -> None:
    cfg, data = market
    policy = _policy(cfg, data, "crossover")
    history = [{"frames": 0.0, "val/sharpe": 0.1}, {"frames": 256.0, "val/sharpe": 0.3}]
    report = final_report(cfg, data, policy, tmp_path, history, which="last")
    assert set(report.metrics) == {"val", "test"}
    for split in ("val", "test"):
        np.testing.assert_equal(report.metrics[split], make_evaluator(cfg, data, split)(policy))
    assert report.table.title == "Evaluation of the last policy"
    assert [c.header for c in report.table.columns] == ["metric", "val", "test"]
    assert {p.name for p in report.files} == {
        "val_returns.npy", "evaluation.md", "final.json", "learning_curves.png",
    }  # fmt: skip
    assert all(p.is_file() for p in report.files)
    val = make_evaluator(cfg, data, "val")
    val(policy)
    np.testing.assert_array_equal(np.load(tmp_path / "val_returns.npy"), val.last_returns)
    md = (tmp_path / "evaluation.md").read_text()
    assert f"| sharpe | {report.metrics['val']['sharpe']:.4f} | " in md
    written = json.loads((tmp_path / "final.json").read_text())
    assert written["metrics"]["test"]["sharpe"] == report.metrics["test"]["sharpe"]
    assert written["sharpe"]["test"].keys() == report.sharpe["test"].keys() >= {"trained", "flat"}
    # without a history there are no curves to draw
    assert len(final_report(cfg, data, policy, tmp_path / "bare", []).files) == 3

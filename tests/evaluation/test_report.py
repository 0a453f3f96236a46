"""Evaluation report: files written, markdown/HTML content, honest statistics, empty inputs."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from grandmodel.evaluation import plots
from grandmodel.evaluation.metrics import equity_curve, performance_summary, sharpe_ratio
from grandmodel.evaluation.report import ReportInputs, write_report
from grandmodel.evaluation.statistics import bootstrap_sharpe_ci, honest_statistics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PPY = 69_552.0
SECTIONS = (
    "## Performance summary",
    "### Episode reward statistics",
    "## Risk analysis",
    "## Trading performance",
    "## Agent contributions",
    "## Against baselines",
    "## Honest statistics",
    "## Plots",
)
Report = tuple[ReportInputs, dict[str, Path]]
PLOTS = ("equity_drawdown.png", "positions.png", "actions.png", "rewards.png")


def _inputs(n: int = 400, seed: int = 0) -> ReportInputs:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-03-04 08:30", periods=n, freq="5min", tz="America/Chicago")
    mark = 5000.0 + np.cumsum(rng.normal(0.0, 1.0, n))
    position = np.repeat(rng.choice([-2, 0, 1, 3], n // 20 + 1), 20)[:n].astype(float)
    returns = rng.normal(2e-4, 2e-3, n)
    equity = equity_curve(returns, 100_000.0)[1:]
    drawdown = 1.0 - equity / np.maximum.accumulate(equity)
    frame = pd.DataFrame(
        {"equity": equity, "drawdown": drawdown, "position": position, "mark": mark}, index=index
    )
    decision = np.arange(n) % 4 == 0
    decisions = pd.DataFrame(
        {
            "time": index,
            "decision": decision,
            "strategic_action": rng.integers(0, 3, n),
            "direction": rng.integers(-1, 2, n),
            "entry_timing": rng.random(n),
            "stop_distance": rng.uniform(0.5, 3.0, n),
            "position_scale": rng.random(n),
            "risk_level": rng.integers(0, 5, n),
            "traded": rng.random(n) < 0.1,
            "fill_price": mark,
            "stop_hit": rng.random(n) < 0.02,
            "stop_price": mark - 2.0,
            "position": position,
            "equity": equity,
            "reward_strategic": rng.normal(0.0, 1.0, n),
            "reward_tactical": rng.normal(0.0, 0.5, n),
            "reward_risk": rng.normal(0.0, 0.2, n),
        }
    )
    pnl = np.array([1250.0, -430.5, 2890.25, -1800.0, 75.0])
    trades = pd.DataFrame(
        {
            "entry_time": index[[10, 50, 90, 130, 170]],
            "exit_time": index[[30, 70, 110, 150, 190]],
            "side": ["long", "short", "long", "long", "short"],
            "contracts": [1, 2, 1, 3, 1],
            "entry_price": mark[[10, 50, 90, 130, 170]],
            "exit_price": mark[[30, 70, 110, 150, 190]],
            "pnl": pnl,
            "costs": [4.5, 9.0, 4.5, 13.5, 4.5],
            "stop_hit": [False, True, False, True, False],
            "bars": [20, 20, 20, 20, 20],
        }
    )
    metrics = performance_summary(
        returns, PPY, trades_pnl=pnl, trade_durations=trades["bars"].to_numpy()
    ) | {"time_in_market": 0.4}
    comparison = {
        "trained": metrics,
        "buy_and_hold": {"sharpe": 1.2345, "total_return": 0.12, "profit_factor": float("inf")},
        "random": {"sharpe": float("nan"), "max_drawdown": 0.0, "total_return": 0.0},
    }
    contributions = {
        "strategic": {
            "mean_contribution": 0.5,
            "std_contribution": 0.1,
            "correlation_with_total": 0.8,
            "delta_pnl": 12_345.6,
            "delta_sharpe": 0.4,
        },
        "risk": {"mean_contribution": 0.1, "std_contribution": 0.05, "correlation_with_total": 0.2},
    }
    history = [
        {"frames": float(f), "train/episode_reward/strategic": float(np.sin(f))}
        for f in range(0, 1000, 100)
    ] + [{"frames": 1000.0, "val/sharpe": 0.7}]
    return ReportInputs(
        equity=frame,
        decisions=decisions,
        returns=returns,
        metrics=metrics,
        comparison=comparison,
        episode_rewards={
            role: rng.normal(0.0, 1.0, 12) for role in ("strategic", "tactical", "risk")
        },
        periods_per_year=PPY,
        n_trials=20,
        title="Evaluation of run abc123",
        meta={"run id": "abc123", "checkpoint": "best.ckpt", "split": "test"},
        trades=trades,
        history=history,
        contributions=contributions,
    )


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Report:
    inputs = _inputs()
    return inputs, write_report(inputs, tmp_path_factory.mktemp("report"))


def test_every_file_is_written_and_pngs_are_valid(full: Report) -> None:
    _, written = full
    assert set(written) == {"report.md", "report.html", "learning_curves.png", *PLOTS}
    for name, path in written.items():
        assert path.name == name and path.is_file() and path.stat().st_size > 0
        if name.endswith(".png"):
            data = path.read_bytes()
            assert data[:8] == PNG_MAGIC
            width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
            assert 400 <= width <= 3000 and 200 <= height <= 2000, (name, width, height)


def test_markdown_has_every_section_in_order_and_the_numbers(full: Report) -> None:
    inputs, written = full
    md = written["report.md"].read_text(encoding="utf-8")
    positions = [md.index(header) for header in SECTIONS]
    assert positions == sorted(positions)
    assert md.startswith("# Evaluation of run abc123\n")
    # one Sharpe ratio: the summary, the honest statistics and the baselines table agree
    sharpe = sharpe_ratio(inputs.returns, PPY)
    assert inputs.metrics["sharpe"] == sharpe
    assert md.count(f"- **Sharpe ratio (annualised)**: {sharpe:.2f}") == 2
    trained_row = next(line for line in md.splitlines() if line.startswith("| trained |"))
    assert trained_row.startswith(f"| trained | {sharpe:.2f} |")
    # percentages and an infinite profit factor
    row = next(line for line in md.splitlines() if line.startswith("| buy_and_hold |"))
    assert "| 1.23 |" in row and "| 12.00% |" in row and "∞" in row
    assert "| random | n/a |" in md
    assert "12,345.60" in md  # money with thousands separators (ΔPnL)
    assert "- **Largest win**: 2,890.25" in md and "- **Largest loss**: -1,800.00" in md
    assert "- **Win rate (per closed trade)**: 60.00%" in md
    assert "- **Stopped out**: 2" in md and "- **Time in market**: 40.00%" in md
    assert "69,552 periods per year" in md
    assert "replaced by its baseline" in md and "Δ = trained − counterfactual" in md
    assert "Deflated Sharpe Ratio (20 trials)" in md
    for name in (*PLOTS, "learning_curves.png"):
        assert f"]({name})" in md


def test_markdown_tables_are_well_formed(full: Report) -> None:
    md = full[1]["report.md"].read_text(encoding="utf-8")
    tables = [block for block in md.split("\n\n") if block.startswith("|")]
    assert len(tables) == 4  # meta, episode reward statistics, contributions, baselines
    for table in tables:
        lines = table.splitlines()
        assert re.fullmatch(r"\|:---(\|---:)*\|", lines[1])
        widths = {line.count(" | ") for line in lines if not line.startswith("|:")}
        assert len(widths) == 1


def test_html_is_self_contained(full: Report) -> None:
    _, written = full
    page = written["report.html"].read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "<table>" in page
    assert page.count('src="data:image/png;base64,') == len(PLOTS) + 1
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in page and "<script" not in page
    for header in SECTIONS:
        assert f">{header.lstrip('# ')}</h" in page


def test_empty_trades_history_and_contributions_do_not_crash(tmp_path: Path) -> None:
    base = _inputs(seed=1)
    inputs = replace(
        base,
        metrics=performance_summary(base.returns, PPY, trades_pnl=[], trade_durations=[]),
        trades=pd.DataFrame(),
        history=[],
        contributions={},
        comparison={},
        n_trials=1,
    )
    written = write_report(inputs, tmp_path / "nested" / "out")
    assert "learning_curves.png" not in written
    assert not (tmp_path / "nested" / "out" / "learning_curves.png").exists()
    md = written["report.md"].read_text(encoding="utf-8").lower()
    trading = md[md.index("## trading performance") : md.index("## agent contributions")]
    assert "no closed trades" in trading
    assert "win rate (per closed trade)**: n/a (no closed trades)" in md
    assert "no agent contributions were computed" in md
    assert "no baselines were evaluated" in md
    assert "learning_curves.png" not in md
    page = written["report.html"].read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(PLOTS)


def test_honest_statistics_interval_contains_the_sharpe_and_dsr_deflates() -> None:
    r = np.random.default_rng(5).normal(3e-4, 2e-3, 500)
    h = honest_statistics(r, PPY, n_trials=50)
    assert h["sharpe"] == pytest.approx(sharpe_ratio(r, PPY))
    assert h["sharpe_ci_low"] < h["sharpe"] < h["sharpe_ci_high"]
    # a 95% interval: about +-1.96 standard errors of an annualised Sharpe, sqrt(ppy / n)
    width = (h["sharpe_ci_high"] - h["sharpe_ci_low"]) / (2 * 1.96 * math.sqrt(PPY / r.size))
    assert 0.8 < width < 1.5
    assert 0.0 <= h["dsr"] < h["psr"] <= 1.0
    assert h["expected_max_sharpe"] > 0 and h["n_trials"] == 50
    # one trial: nothing to deflate
    single = honest_statistics(r, PPY, n_trials=1)
    assert single["dsr"] == pytest.approx(single["psr"]) and single["expected_max_sharpe"] == 0
    # a wider spread of trial Sharpe ratios raises the bar
    narrow = honest_statistics(r, PPY, 50, trial_sharpes=np.array([0.0, 1.0, 2.0]))
    wide = honest_statistics(r, PPY, 50, trial_sharpes=np.array([-20.0, 0.0, 20.0]))
    assert wide["dsr"] < narrow["dsr"] <= narrow["psr"]
    with pytest.raises(ValueError):
        honest_statistics(r, PPY, n_trials=0)


def test_honest_interval_is_a_block_bootstrap() -> None:
    # AR(1) returns (phi 0.6): an i.i.d. bootstrap understates the Sharpe ratio's uncertainty
    rng = np.random.default_rng(1)
    noise, r = rng.normal(0.0, 1e-3, 600), np.zeros(600)
    for t in range(1, r.size):
        r[t] = 0.6 * r[t - 1] + noise[t]
    h = honest_statistics(r + 1e-4, PPY, n_trials=5)
    lo, hi = bootstrap_sharpe_ci(r + 1e-4, PPY)
    assert h["sharpe_ci_high"] - h["sharpe_ci_low"] > 1.5 * (hi - lo)


def test_reward_histogram_falls_back_to_per_step_rewards(tmp_path: Path) -> None:
    inputs = _inputs()
    few = {role: values[:3] for role, values in inputs.episode_rewards.items()}
    path = plots.reward_histogram(few, tmp_path / "r.png", inputs.decisions)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert _xlabels_of(few, inputs.decisions, tmp_path) == {"reward per step"}
    assert _xlabels_of(inputs.episode_rewards, inputs.decisions, tmp_path) == {"reward per episode"}


def _xlabels_of(rewards: dict[str, np.ndarray], decisions: pd.DataFrame, folder: Path) -> set[str]:
    """The x labels reward_histogram draws (its figure is captured before it is closed)."""
    captured: list[set[str]] = []
    original = plots._save

    def capture(fig: Figure, path: Path) -> Path:
        captured.append({ax.get_xlabel() for ax in fig.axes})
        return original(fig, path)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "_save", capture)
        plots.reward_histogram(rewards, folder / "captured.png", decisions)
    return captured[0]

"""Evaluation report of one run: markdown plus a self-contained HTML page (plots embedded).

Sections: performance summary, risk analysis, trading performance, agent contributions, the
comparison with baselines and the honest statistics of the Sharpe ratio (bootstrap interval, PSR,
DSR). The report computes no performance metric itself: it shows the walk's own metrics and
returns (:class:`~grandmodel.evaluation.walk.Outcome`), so a number is the same in every section and
in the tables printed and logged beside it (one period = one decision step).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from grandmodel.evaluation import plots
from grandmodel.evaluation.metrics import distribution_stats
from grandmodel.evaluation.statistics import honest_statistics

NAN = float("nan")
TOTAL = "total (sum over roles)"
EXPOSURE_KEYS = (
    "turnover", "annual_turnover", "average_exposure", "max_exposure", "time_in_market",
)  # fmt: skip
COUNTERFACTUAL = (
    "Counterfactual: the same episodes re-run with this agent replaced by its baseline; "
    "Δ = trained − counterfactual (positive: the agent adds value)."
)

# ("h", level, text) | ("p", text) | ("items", [(label, value)]) | ("table", head, rows) | ("img", file)
Block = tuple


@dataclass
class ReportInputs:
    """Everything a report shows; see :func:`write_report`."""

    equity: pd.DataFrame  # index: decision time; columns equity, drawdown, position, mark (plots)
    decisions: pd.DataFrame  # one row per env step
    returns: np.ndarray  # the walk's chained per-step equity returns (honest statistics)
    metrics: dict[str, float]  # the walk's metrics, with its tables' (Walk.run(tables=True))
    comparison: dict[str, dict[str, float]]  # metrics per policy, the evaluated one as "trained"
    episode_rewards: dict[str, np.ndarray]  # per role: total reward of each evaluation episode
    periods_per_year: float  # decision steps per year (annualisation factor)
    n_trials: int  # configurations tried, this one included (Deflated Sharpe Ratio)
    title: str
    meta: dict[str, str] = field(default_factory=dict)
    trades: pd.DataFrame = field(default_factory=pd.DataFrame)  # closed round trips
    history: list[dict[str, float]] = field(default_factory=list)  # training history rows
    contributions: dict[str, dict[str, float]] = field(default_factory=dict)
    trial_sharpes: np.ndarray | None = None  # annualised Sharpe ratios of the trials, if known


def _special(x: float) -> str | None:
    if math.isnan(x):
        return "n/a"
    return ("∞" if x > 0 else "−∞") if math.isinf(x) else None


def _fmt(spec: str) -> Callable[[float], str]:
    return lambda x: _special(x) or format(x, spec)


ratio = _fmt(",.2f")  # Sharpe, Sortino, profit factor...: two decimals
pct = _fmt(",.2%")  # fractions as percentages
money = _fmt(",.2f")  # account currency, thousands separators
number = _fmt(",.4g")  # rewards and other unitless values: four significant digits


def count(x: float) -> str:
    """An integer with thousands separators."""
    return _special(x) or f"{round(x):,d}"


def periods(x: float) -> str:
    """Periods per year: an integer when whole, else two decimals."""
    return count(x) if float(x).is_integer() else money(x)


PERCENT_KEYS = (
    "total_return", "annual_return", "annual_volatility", "max_drawdown", "var_95", "cvar_95",
    "win_rate", "average_exposure", "max_exposure", "time_in_market",
)  # fmt: skip
MONEY_KEYS = ("average_win", "average_loss", "largest_win", "largest_loss", "pnl", "delta_pnl")
FORMATS: dict[str, Callable[[float], str]] = {
    **dict.fromkeys(PERCENT_KEYS, pct),
    **dict.fromkeys(MONEY_KEYS, money),
    **dict.fromkeys(("n_trades", "n_periods", "max_drawdown_duration"), count),
}  # any other key: ratio
COMPARISON_ORDER = (
    "sharpe", "sortino", "calmar", "total_return", "annual_return", "annual_volatility",
    "max_drawdown", "var_95", "cvar_95", "n_trades", "win_rate", "profit_factor",
)  # fmt: skip


def _format(key: str, value: float) -> str:
    return FORMATS.get(key, ratio)(value)


def _header(inputs: ReportInputs) -> list[Block]:
    index = inputs.equity.index
    rows = [[key, str(value)] for key, value in inputs.meta.items()]
    rows.append(["evaluation period", f"{index[0]} → {index[-1]} ({len(index):,d} steps)"])
    rows.append(["periods per year", periods(inputs.periods_per_year)])
    return [("h", 1, inputs.title), ("table", ["field", "value"], rows)]


def _episode_totals(episode_rewards: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    per_role = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in episode_rewards.items()}
    if len({v.size for v in per_role.values()}) > 1:
        raise ValueError("episode_rewards: every role needs one value per evaluation episode")
    total = np.sum(list(per_role.values()), axis=0) if per_role else np.zeros(0)
    return {**per_role, TOTAL: total}


def _summary(perf: dict[str, float], rewards: dict[str, np.ndarray]) -> list[Block]:
    total = distribution_stats(rewards[TOTAL])
    win_rate = pct(perf["win_rate"]) if perf["n_trades"] else "n/a (no closed trades)"
    items = [
        ("Mean episode reward (sum over roles)", number(total["mean"])),
        ("Reward standard deviation", number(total["std"])),
        ("Sharpe ratio (annualised)", ratio(perf["sharpe"])),
        ("Maximum drawdown", pct(perf["max_drawdown"])),
        ("Win rate (per closed trade)", win_rate),
        ("Total return", pct(perf["total_return"])),
        ("Annual return", pct(perf["annual_return"])),
    ]
    columns = ("mean", "std", "median", "min", "max", "skewness", "kurtosis")
    rows = []
    for role, values in rewards.items():
        stats = distribution_stats(values)
        rows.append([role, count(values.size), *(number(stats[c]) for c in columns)])
    return [
        ("h", 2, "Performance summary"),
        ("items", items),
        ("h", 3, "Episode reward statistics"),
        (
            "p",
            "Total reward of each evaluation episode, per role and summed over roles; "
            "kurtosis is excess kurtosis (normal = 0).",
        ),
        ("table", ["role", "episodes", *columns], rows),
    ]


def _risk(perf: dict[str, float], periods_per_year: float) -> list[Block]:
    items = [
        ("Value at Risk (95%, per step)", pct(perf["var_95"])),
        ("Conditional VaR (95%, per step)", pct(perf["cvar_95"])),
        (
            "Annualised volatility",
            f"{pct(perf['annual_volatility'])} (× √{periods(periods_per_year)} periods per year)",
        ),
        ("Sortino ratio (annualised)", ratio(perf["sortino"])),
        ("Calmar ratio", ratio(perf["calmar"])),
        ("Maximum drawdown duration", f"{count(perf['max_drawdown_duration'])} decision steps"),
    ]
    return [("h", 2, "Risk analysis"), ("items", items)]


def _trading(perf: dict[str, float], trades: pd.DataFrame) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Trading performance")]
    if perf["n_trades"]:
        sides = trades["side"].value_counts()
        items = [
            ("Number of closed trades", count(perf["n_trades"])),
            ("Long / short", f"{sides.get('long', 0):,d} / {sides.get('short', 0):,d}"),
            ("Profit factor", ratio(perf["profit_factor"])),
            ("Average win", money(perf["average_win"])),
            ("Average loss", money(perf["average_loss"])),
            ("Largest win", money(perf["largest_win"])),
            ("Largest loss", money(perf["largest_loss"])),
            ("Average trade duration", f"{ratio(perf['average_duration'])} decision steps"),
            ("Net PnL", money(float(trades["pnl"].sum()))),
            ("Costs", money(float(trades["costs"].sum()))),
            ("Stopped out", count(float(trades["stop_hit"].astype(bool).sum()))),
        ]
    else:
        blocks.append(("p", "No closed trades in the evaluation period."))
        items = []
    items += [
        (k.replace("_", " ").capitalize(), _format(k, perf[k])) for k in EXPOSURE_KEYS if k in perf
    ]
    if items:
        blocks.append(("items", items))
    return blocks


def _contributions(contributions: dict[str, dict[str, float]]) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Agent contributions")]
    if not contributions:
        return [*blocks, ("p", "No agent contributions were computed for this run.")]
    columns = (
        ("mean_contribution", number), ("std_contribution", number),
        ("correlation_with_total", ratio), ("delta_pnl", money), ("delta_sharpe", ratio),
    )  # fmt: skip
    rows = [
        [agent, *(fmt(stats.get(key, NAN)) for key, fmt in columns)]
        for agent, stats in contributions.items()
    ]
    head = ["agent", "mean contribution", "std contribution", "corr. with total", "ΔPnL", "ΔSharpe"]
    return [*blocks, ("p", COUNTERFACTUAL), ("table", head, rows)]


def _baselines(comparison: dict[str, dict[str, float]]) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Against baselines")]
    if not comparison:
        return [*blocks, ("p", "No baselines were evaluated.")]
    seen = list(dict.fromkeys(k for metrics in comparison.values() for k in metrics))
    keys = sorted(seen, key=lambda k: COMPARISON_ORDER.index(k) if k in COMPARISON_ORDER else 99)
    rows = [
        [policy, *(_format(k, metrics.get(k, NAN)) for k in keys)]
        for policy, metrics in comparison.items()
    ]
    return [*blocks, ("table", ["policy", *(k.replace("_", " ") for k in keys)], rows)]


def _reading(h: dict[str, float]) -> str:
    lo, hi, dsr, n = h["sharpe_ci_low"], h["sharpe_ci_high"], h["dsr"], count(h["n_trials"])
    if math.isnan(lo) or math.isnan(dsr):
        return "Reading: too few (or constant) returns for these statistics."
    interval = "excludes 0" if lo > 0 or hi < 0 else "includes 0 (no evidence of a non-zero Sharpe)"
    verdict = ("" if dsr >= 0.95 else "not ") + "distinguishable from luck at the 5% level"
    return (
        f"Reading: the 95% interval {interval}; PSR is the probability that the true Sharpe ratio "
        f"is above 0 given the sample length, skewness and kurtosis, DSR the same probability "
        f"against the best Sharpe ratio {n} zero-skill configurations would reach by luck — "
        f"after {n} trials the result is {verdict}."
    )


def _honest(h: dict[str, float]) -> list[Block]:
    items = [
        ("Sharpe ratio (annualised)", ratio(h["sharpe"])),
        ("95% bootstrap interval", f"[{ratio(h['sharpe_ci_low'])}, {ratio(h['sharpe_ci_high'])}]"),
        ("Probabilistic Sharpe Ratio (vs 0)", ratio(h["psr"])),
        (f"Deflated Sharpe Ratio ({count(h['n_trials'])} trials)", ratio(h["dsr"])),
        ("Expected best Sharpe of the trials by luck", ratio(h["expected_max_sharpe"])),
    ]
    method = (
        f"Stationary block bootstrap of {count(h['n_periods'])} step returns "
        f"(mean block length √n); PSR and DSR after Bailey & López de Prado."
    )
    return [("h", 2, "Honest statistics"), ("items", items), ("p", method), ("p", _reading(h))]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        match block:
            case ("h", level, text):
                out.append(f"{'#' * level} {text}")
            case ("p", text):
                out.append(text)
            case ("items", pairs):
                out.append("\n".join(f"- **{label}**: {value}" for label, value in pairs))
            case ("table", head, rows):
                lines = ["| " + " | ".join(map(_md_cell, head)) + " |"]
                lines.append("|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|")
                lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows]
                out.append("\n".join(lines))
            case ("img", name):
                out.append(f"![{Path(name).stem}]({name})")
    return "\n\n".join(out) + "\n"


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; } th { background: #f0f0f0; }
img { max-width: 100%; display: block; margin: 1em 0; }
"""


def _html(blocks: list[Block], title: str, folder: Path) -> str:
    e = html.escape
    body: list[str] = []
    for block in blocks:
        match block:
            case ("h", level, text):
                body.append(f"<h{level}>{e(text)}</h{level}>")
            case ("p", text):
                body.append(f"<p>{e(text)}</p>")
            case ("items", pairs):
                lis = "".join(f"<li><strong>{e(k)}</strong>: {e(v)}</li>" for k, v in pairs)
                body.append(f"<ul>{lis}</ul>")
            case ("table", head, rows):
                ths = "".join(f"<th>{e(h)}</th>" for h in head)
                trs = "".join(
                    "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows
                )
                body.append(f"<table><thead><tr>{ths}</tr></thead><tbody>{trs}</tbody></table>")
            case ("img", name):
                data = base64.b64encode((folder / name).read_bytes()).decode("ascii")
                body.append(f'<img alt="{e(Path(name).stem)}" src="data:image/png;base64,{data}">')
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _plots(inputs: ReportInputs, folder: Path) -> dict[str, Path]:
    written = {
        "equity_drawdown.png": plots.equity_drawdown(inputs.equity, folder / "equity_drawdown.png"),
        "positions.png": plots.positions_over_price(inputs.equity, folder / "positions.png"),
        "actions.png": plots.action_distributions(inputs.decisions, folder / "actions.png"),
        "rewards.png": plots.reward_histogram(
            inputs.episode_rewards, folder / "rewards.png", inputs.decisions
        ),
    }
    curves = plots.learning_curves(inputs.history, folder / "learning_curves.png")
    if curves is not None:
        written["learning_curves.png"] = curves
    return written


def write_report(inputs: ReportInputs, folder: str | Path) -> dict[str, Path]:
    """Write the PNG plots, ``report.md`` (images by relative name) and ``report.html`` (images
    embedded as base64) into ``folder``; returns ``{file name: path}``.

    ``learning_curves.png`` only when ``history`` has training or validation rows. Every figure is
    ``metrics`` (trading ones per closed round trip of ``trades``) or a statistic of ``returns``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    perf = inputs.metrics
    rewards = _episode_totals(inputs.episode_rewards)
    honest = honest_statistics(
        inputs.returns, inputs.periods_per_year, inputs.n_trials, inputs.trial_sharpes
    )
    written = _plots(inputs, folder)
    blocks = [
        *_header(inputs),
        *_summary(perf, rewards),
        *_risk(perf, inputs.periods_per_year),
        *_trading(perf, inputs.trades),
        *_contributions(inputs.contributions),
        *_baselines(inputs.comparison),
        *_honest(honest),
        ("h", 2, "Plots"),
        *(("img", name) for name in written),
    ]
    md, page = folder / "report.md", folder / "report.html"
    md.write_text(_markdown(blocks), encoding="utf-8")
    page.write_text(_html(blocks, inputs.title, folder), encoding="utf-8")
    return {"report.md": md, "report.html": page, **written}

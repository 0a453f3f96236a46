"""Production monitoring of a paper (or live) session from its journal.

Performance over rolling windows of ``window`` decisions, with the alert table of the user's design:

- **win rate**: closed round trips (the position returns to flat or flips) with a positive net PnL
  (realised PnL minus costs between the trade's first and last step) over all closed round trips
  in the window; no closed trip: NaN, which raises no alert;
- **Sharpe**: mean / std (ddof 1) of the per-decision equity returns x sqrt(periods per year);
- **decision consistency**: the share of the strategic agent's decisions in the window that keep
  the direction of its previous decision (1 - flip rate); fewer than two decisions: 1;
- **model confidence**: the mean over the window's decisions of the journal's ``confidence``: the
  share of perturbed observations that keep the strategic and risk actions (the bundle outputs
  actions, not probabilities; ``grandmodel.deploy.paper.session.decision_confidence``).

Alerts: LOW_WIN_RATE (< 0.45), LOW_SHARPE_RATIO (< 0.5), INCONSISTENT_DECISIONS (< 0.7),
LOW_MODEL_CONFIDENCE (< 0.6); two or more: IMMEDIATE_RETRAINING_REQUIRED, else a win rate below 0.5:
RETRAINING_RECOMMENDED, else PERFORMANCE_ACCEPTABLE.

**Drift** (:class:`DriftDetector`): for each window, the Kolmogorov-Smirnov distance of every
feature (or action component) to its distribution on the training split; the window's statistic
is the largest distance divided by that feature's threshold. Thresholds come from a bootstrap of
contiguous training windows of the same length (which keeps the bars' autocorrelation), each
compared with the training data outside it: the per-feature and the family threshold are the
``1 - alpha`` quantiles, so in-distribution windows raise a false alarm in about ``alpha`` of cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ALERT_RULES = (
    ("win_rate", "LOW_WIN_RATE"),
    ("sharpe_ratio", "LOW_SHARPE_RATIO"),
    ("decision_consistency", "INCONSISTENT_DECISIONS"),
    ("model_confidence", "LOW_MODEL_CONFIDENCE"),
)


@dataclass(frozen=True)
class Thresholds:
    win_rate: float = 0.45
    sharpe_ratio: float = 0.5
    decision_consistency: float = 0.7
    model_confidence: float = 0.6
    recommend_win_rate: float = 0.5


def closed_trade_pnl(position: np.ndarray, net: np.ndarray) -> np.ndarray:
    """Net PnL of each round trip that opens and closes within a sequence of steps.

    ``net`` is realised PnL minus costs after each step; a trade's PnL is ``net`` at the step that
    closes it minus ``net`` before the step that opened it (on a flip, the new trade's opening
    costs count to the closed one). A trade already open at the first step is left out.
    """
    pnl: list[float] = []
    opened_at: float | None = None
    prev_pos = float(position[0]) if len(position) else 0.0
    prev_net = float(net[0]) if len(net) else 0.0
    for pos, value in zip(position[1:], net[1:], strict=True):
        if prev_pos == 0 and pos != 0:
            opened_at = prev_net
        elif prev_pos != 0 and (pos == 0 or pos * prev_pos < 0):
            if opened_at is not None:
                pnl.append(float(value) - opened_at)
            opened_at = float(value) if pos != 0 else None
        prev_pos, prev_net = float(pos), float(value)
    return np.asarray(pnl, dtype=np.float64)


def performance(
    decisions: pd.DataFrame, account: pd.DataFrame, periods_per_year: float
) -> dict[str, float]:
    """The four metrics over one window (``decisions`` and ``account`` rows of the same steps)."""
    pnl = closed_trade_pnl(
        account["position"].to_numpy(), (account["realised"] - account["costs"]).to_numpy()
    )
    equity = account["equity"].to_numpy()
    returns = equity[1:] / equity[:-1] - 1.0 if len(equity) > 1 else np.zeros(0)
    std = returns.std(ddof=1) if len(returns) > 1 else 0.0
    sharpe = float(returns.mean() / std * np.sqrt(periods_per_year)) if std > 0 else 0.0
    direction = decisions.loc[decisions["strategic_decision"] == 1, "strategic"].to_numpy()
    consistency = float(np.mean(direction[1:] == direction[:-1])) if len(direction) > 1 else 1.0
    return {
        "win_rate": float(np.mean(pnl > 0)) if len(pnl) else float("nan"),
        "sharpe_ratio": sharpe,
        "decision_consistency": consistency,
        "model_confidence": float(decisions["confidence"].mean()),
        "closed_trades": float(len(pnl)),
    }


def check_alerts(perf: dict[str, float], th: Thresholds = Thresholds()) -> list[str]:
    """The design's alert table (a NaN metric raises nothing)."""
    return [alert for key, alert in ALERT_RULES if perf[key] < getattr(th, key)]


def recommendation(perf: dict[str, float], th: Thresholds = Thresholds()) -> str:
    if len(check_alerts(perf, th)) >= 2:
        return "IMMEDIATE_RETRAINING_REQUIRED"
    if perf["win_rate"] < th.recommend_win_rate:
        return "RETRAINING_RECOMMENDED"
    return "PERFORMANCE_ACCEPTABLE"


def rolling_performance(
    decisions: pd.DataFrame,
    account: pd.DataFrame,
    window: int,
    periods_per_year: float,
    th: Thresholds = Thresholds(),
    step: int | None = None,
) -> pd.DataFrame:
    """Metrics, alerts and recommendation of each window of ``window`` decisions, every ``step``."""
    joined = decisions.merge(account[["t", "position", "realised", "costs", "equity"]], on="t")
    step = step or max(1, window // 4)
    rows = []
    ends = list(range(min(window, len(joined)), len(joined) + 1, step)) or [len(joined)]
    for end in ends:
        part = joined.iloc[max(0, end - window) : end]
        perf = performance(part, part, periods_per_year)
        rows.append({"t": int(part["t"].iloc[-1]), "time_ns": int(part["time_ns"].iloc[-1]),
                     **perf, "alerts": ",".join(check_alerts(perf, th)),
                     "recommendation": recommendation(perf, th)})  # fmt: skip
    return pd.DataFrame(rows)


def ks_to_reference(window: np.ndarray, sorted_ref: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov distance between ``window`` and the sorted reference."""
    w = np.sort(window)
    n, m = len(w), len(sorted_ref)
    right = np.searchsorted(sorted_ref, w, side="right") / m
    left = np.searchsorted(sorted_ref, w, side="left") / m
    i = np.arange(1, n + 1) / n
    return float(max(np.max(np.abs(i - right)), np.max(np.abs(i - 1.0 / n - left))))


class DriftDetector:
    """Per-feature KS distances of a window to the training split, thresholds by bootstrap."""

    def __init__(
        self,
        reference: np.ndarray,
        names: list[str],
        window: int,
        alpha: float = 0.05,
        draws: int = 200,
        seed: int = 0,
    ) -> None:
        ref = np.nan_to_num(np.asarray(reference, np.float64))
        if len(ref) < 2 * window:
            raise ValueError(f"reference: {len(ref)} rows; need at least {2 * window}")
        self.names, self.window, self.alpha = list(names), window, alpha
        self.sorted = np.sort(ref, axis=0)
        rng = np.random.default_rng(seed)
        starts = rng.integers(0, len(ref) - window + 1, draws)
        stats = np.empty((draws, ref.shape[1]))
        for k, s in enumerate(starts):
            outside = np.concatenate((ref[:s], ref[s + window :]))
            for f in range(ref.shape[1]):
                stats[k, f] = ks_to_reference(ref[s : s + window, f], np.sort(outside[:, f]))
        self.feature_threshold = np.maximum(np.quantile(stats, 1 - alpha, axis=0), 1e-12)
        self.threshold = float(np.quantile((stats / self.feature_threshold).max(axis=1), 1 - alpha))

    def distances(self, rows: np.ndarray) -> np.ndarray:
        rows = np.nan_to_num(np.asarray(rows, np.float64))
        return np.array(
            [ks_to_reference(rows[:, f], self.sorted[:, f]) for f in range(rows.shape[1])]
        )

    def scan(self, rows: np.ndarray, step: int = 1) -> pd.DataFrame:
        """One row per window end (every ``step`` rows): the statistic, alarm, per-feature ratio."""
        out = []
        for end in range(self.window, len(rows) + 1, step):
            ratio = self.distances(rows[end - self.window : end]) / self.feature_threshold
            out.append({"end": end - 1, "statistic": float(ratio.max()) / self.threshold,
                        "alarm": bool(ratio.max() > self.threshold),
                        **{f"drift/{n}": float(r) for n, r in zip(self.names, ratio, strict=True)}})  # fmt: skip
        return pd.DataFrame(out)

"""``python -m grandmodel.monitor``: a session's journal → rolling metrics, alerts, drift against the
training split, a report with plots and a ``monitoring`` tracking run under the training run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grandmodel.config import typed
from grandmodel.config.data import DataConfig
from grandmodel.config.paper import MonitorConfig
from grandmodel.data.hmm import RegimeFit
from grandmodel.data.pipeline import prepare
from grandmodel.data.sources import observed
from grandmodel.deploy.inference import InferencePolicy
from grandmodel.deploy.monitor.metrics import DriftDetector, Thresholds, rolling_performance
from grandmodel.deploy.paper.features import Bar, LiveFeatures
from grandmodel.errors import GrandModelError

ACTIONS = ["strategic", "entry_timing", "stop_distance", "position_scale"]


def bundle_features(metadata: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """The features each role of a bundle observes (its manifest's inputs)."""
    roles = metadata["roles"]
    return {role: tuple(roles[role]["input"]["features"]) for role in ("tactical", "strategic")}


def bundle_regime(metadata: dict[str, Any]) -> RegimeFit | None:
    """The HMM a bundle's ``regime_*`` features are filtered with (``data/hmm.py``), if any."""
    for role in ("strategic", "tactical"):
        norm = metadata["roles"][role]["input"]["normalisation"]
        if isinstance(norm, dict) and norm.get("regime"):
            return RegimeFit.from_dict(norm["regime"])
    return None


def feature_names(columns: dict[str, tuple[str, ...]]) -> list[str]:
    """``<role>/<feature>`` of the tactical, then the strategic features (the drift columns)."""
    return [f"{role}/{n}" for role in ("tactical", "strategic") for n in columns[role]]


def journal_path(spec: str, outputs_dir: str) -> Path:
    """A journal file, a session folder, or a session name under ``outputs/paper/``."""
    for path in (Path(spec), Path(spec) / "journal.sqlite", Path(outputs_dir) / "paper" / spec / "journal.sqlite"):  # fmt: skip
        if path.is_file():
            return path
    raise GrandModelError(
        f"session={spec}: no journal there; expected a journal.sqlite, a session folder or a "
        f"session name under {outputs_dir}/paper/"
    )


def read_journal(path: Path) -> dict[str, Any]:
    db = sqlite3.connect(str(path))
    try:
        out = {t: pd.read_sql(f"SELECT * FROM {t}", db) for t in ("bars", "decisions", "account")}
        out["meta"] = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
    finally:
        db.close()
    return out


def session_features(bars: pd.DataFrame, metadata: dict[str, Any]) -> np.ndarray:
    """The raw features at each tactical decision (row t), recomputed from the journal's bars."""
    clock = metadata["decision_clock"]
    frames = {"base": clock["base_timeframe"], "tactical": clock["timeframe"],
              "strategic": metadata["roles"]["strategic"]["input"]["timeframe"]}  # fmt: skip
    sizes = {
        k: int(pd.Timedelta(pd.tseries.frequencies.to_offset(v)).value) for k, v in frames.items()
    }
    columns = bundle_features(metadata)
    live = LiveFeatures(sizes, {"tactical": 1, "strategic": 1}, columns, bundle_regime(metadata))
    first = pd.Timestamp(int(bars["open_ns"].iloc[0]), tz="UTC").tz_convert(clock["timezone"])
    offset = int(first.utcoffset().total_seconds() * 1e9)
    rows = []
    strategic = np.full(len(columns["strategic"]), np.nan)
    for r in bars.itertuples(index=False):
        bar = Bar(int(r.open_ns), r.open, r.high, r.low, r.close, r.volume)
        for done in live.push(bar, offset):
            if done.strategic_new:
                strategic = live.windows["strategic"].rows[-1]
            rows.append(np.concatenate((live.windows["tactical"].rows[-1], strategic)))
    return np.array(rows)


def reference_data(
    run_spec: str, paths: Any, uri: str | None, policy: InferencePolicy | None
) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """Features (and the bundle's actions) at every decision of the run's training split."""
    from grandmodel.evaluation.runs import resolve_run

    run = resolve_run(run_spec, uri)
    data_cfg = typed(run.config.data, DataConfig)
    tables, data = prepare(data_cfg, Path(paths.cache_dir), run.norm)
    start, stop = data.splits["train"]
    t = np.arange(start, stop)
    si = data.strategic_index.numpy()[t]
    columns = observed(data_cfg)
    tac = tables.frames["tactical"][list(columns["tactical"])].to_numpy(np.float64)
    strat = tables.frames["strategic"][list(columns["strategic"])].to_numpy(np.float64)
    features = np.concatenate((tac[t], strat[si]), axis=1)
    actions = None
    if policy is not None:
        w = {r: int(data.window[r]) for r in ("tactical", "strategic")}
        obs = {
            "tactical": np.stack([tac[i - w["tactical"] + 1 : i + 1] for i in t]),
            "strategic": np.stack([strat[i - w["strategic"] + 1 : i + 1] for i in si]),
            "risk": np.zeros((len(t), 10), np.float32),
        }
        out = policy.decide(obs)
        actions = np.column_stack((out["strategic"], out["tactical"]))
    return features, actions, run.run_id


def run_monitor(cfg: Any) -> dict[str, Any]:
    """Everything ``python -m grandmodel.monitor`` does; returns the summary and the files."""
    mc = typed(cfg, MonitorConfig)
    path = journal_path(mc.session, mc.paths.outputs_dir)
    j = read_journal(path)
    decisions, account, meta = j["decisions"], j["account"], j["meta"]
    if decisions.empty:
        raise GrandModelError(f"{path}: no decisions yet; run the paper session longer")
    policy = InferencePolicy.load(meta["bundle"]) if "bundle" in meta else None
    ppy = float(meta.get("periods_per_year", 69552.0))
    th = Thresholds(mc.thresholds.win_rate, mc.thresholds.sharpe, mc.thresholds.consistency,
                    mc.thresholds.confidence, mc.thresholds.recommend_win_rate)  # fmt: skip
    rolling = rolling_performance(decisions, account, mc.window, ppy, th)
    folder = path.parent / "monitor"
    folder.mkdir(exist_ok=True)
    last = rolling.iloc[-1].to_dict()
    summary: dict[str, Any] = {k: last[k] for k in ("win_rate", "sharpe_ratio",
        "decision_consistency", "model_confidence", "closed_trades", "alerts", "recommendation")}  # fmt: skip
    drift = None
    run_id = (policy.metadata["training"].get("run_id") if policy else None) or None
    if mc.reference:
        uri = str(mc.logger.tracking_uri) if mc.logger.kind == "mlflow" else None
        ref, ref_actions, ref_run = reference_data(mc.reference, mc.paths, uri, policy)
        run_id = run_id or ref_run
        metadata = policy.metadata if policy else meta["metadata"]
        rows = session_features(j["bars"], metadata)[decisions["t"].to_numpy()]
        drift = _drift(ref, rows, feature_names(bundle_features(metadata)), mc)
        summary |= {"feature_drift_alarms": int(drift["alarm"].sum()), "windows": len(drift)}
        if ref_actions is not None:
            mine = decisions[
                ["strategic", "entry_timing", "stop_distance", "position_scale"]
            ].to_numpy()
            actions = _drift(ref_actions, mine, ACTIONS, mc)
            summary["action_drift_alarms"] = int(actions["alarm"].sum())
            drift = drift.join(actions.add_prefix("action_"))
    files = _write(folder, decisions, account, rolling, drift, summary, ppy, mc.window)
    from grandmodel.tracking import record_child_run

    metrics = {f"monitor/{k}": float(v) for k, v in summary.items() if isinstance(v, int | float)}
    tracked = record_child_run(mc.logger, run_id, "monitoring", {"session": str(path),
        "window": mc.window, "reference": mc.reference}, metrics, list(files.values()),
        run_dir=folder)  # fmt: skip
    return {
        "summary": summary,
        "rolling": rolling,
        "drift": drift,
        "files": files,
        "run_id": tracked,
    }


def _drift(ref: np.ndarray, rows: np.ndarray, names: list[str], mc: MonitorConfig) -> pd.DataFrame:
    window = min(mc.window, len(ref) // 2, len(rows))
    detector = DriftDetector(ref, names, window, mc.drift_alpha, mc.bootstrap, mc.seed)
    return detector.scan(rows, step=max(1, window // 4))


def _write(folder: Path, decisions: pd.DataFrame, account: pd.DataFrame, rolling: pd.DataFrame,
           drift: pd.DataFrame | None, summary: dict, ppy: float, window: int) -> dict[str, Path]:  # fmt: skip
    import matplotlib.pyplot as plt

    from grandmodel.evaluation import plots

    files = {"rolling.csv": folder / "rolling.csv", "summary.json": folder / "summary.json"}
    rolling.to_csv(files["rolling.csv"], index=False)
    files["summary.json"].write_text(json.dumps(summary, indent=2, default=str))
    index = pd.DatetimeIndex(pd.to_datetime(account["time_ns"], utc=True))
    equity = pd.DataFrame({"equity": account["equity"].to_numpy()}, index=index)
    equity["drawdown"] = 1.0 - equity["equity"] / equity["equity"].cummax()
    files["equity.png"] = plots.equity_drawdown(equity, folder / "equity.png")
    returns = equity["equity"].pct_change().fillna(0.0)
    sharpe = returns.rolling(window).mean() / returns.rolling(window).std() * np.sqrt(ppy)
    fig, ax = plt.subplots(figsize=(12, 3.5), constrained_layout=True)
    ax.plot(index.tz_localize(None), sharpe.to_numpy(), lw=1)
    ax.axhline(0.5, color="tab:red", lw=0.8, ls="--")
    ax.set(title=f"rolling Sharpe ({window} decisions)", ylabel="Sharpe")
    files["rolling_sharpe.png"] = folder / "rolling_sharpe.png"
    fig.savefig(files["rolling_sharpe.png"], dpi=110)
    plt.close(fig)
    if drift is not None and not drift.empty:
        cols = [c for c in drift.columns if c.startswith("drift/")]
        fig, ax = plt.subplots(figsize=(12, 5), constrained_layout=True)
        im = ax.imshow(drift[cols].to_numpy().T, aspect="auto", cmap="magma", vmin=0, vmax=2)
        ax.set_yticks(range(len(cols)), [c[6:] for c in cols], fontsize=7)
        ax.set(title="drift per feature (KS distance / its 95% in-distribution threshold)",
               xlabel="window")  # fmt: skip
        fig.colorbar(im, ax=ax)
        files["drift.png"] = folder / "drift.png"
        fig.savefig(files["drift.png"], dpi=110)
        plt.close(fig)
        files["drift.csv"] = folder / "drift.csv"
        drift.to_csv(files["drift.csv"], index=False)
    lines = ["# Monitoring report", "", f"decisions: {len(decisions)}", ""]
    lines += [f"- {k}: {v}" for k, v in summary.items()]
    lines += ["", *[f"![{p.stem}]({p.name})" for p in files.values() if p.suffix == ".png"]]
    files["report.md"] = folder / "report.md"
    files["report.md"].write_text("\n".join(lines) + "\n")
    return files

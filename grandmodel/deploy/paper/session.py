"""The paper loop: feed → incremental features → the bundle's three agents → risk gate → broker,
every base bar journaled in one transaction.

A session is a name (``outputs/paper/<name>/``). Starting it again continues it: the bars already in
the journal are replayed through the features and the broker with the journaled actions (the model
is not asked again), each settlement is checked against the journal's account, and the session
goes on live from the first bar the journal has not seen. A journal that disagrees with the broker
refuses to trade, naming the decision and both positions.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import signal
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grandmodel.config import typed
from grandmodel.config.env import ContractConfig, CostConfig, EnvConfig, RewardConfig
from grandmodel.config.paper import FeedKind, PaperSettings
from grandmodel.data.timeframes import bars_per_year
from grandmodel.deploy.inference import InferencePolicy
from grandmodel.deploy.monitor.metrics import DriftDetector, rolling_performance
from grandmodel.deploy.monitor.report import (
    bundle_features,
    bundle_regime,
    feature_names,
    reference_data,
)
from grandmodel.deploy.paper.broker import Settlement, SimulatedBroker
from grandmodel.deploy.paper.features import FITTED_FEATURES, LIVE_FEATURES, Bar, LiveFeatures
from grandmodel.deploy.paper.feeds import ReplayFeed, TailFeed
from grandmodel.deploy.paper.gate import HALTED, RiskGate, Transition, gated_actions
from grandmodel.deploy.paper.journal import Journal
from grandmodel.errors import GrandModelError

CONFIDENCE_DRAWS = 8  # perturbed copies of each observation (see decision_confidence)


def bundle_env(env: EnvConfig, metadata: dict[str, Any]) -> EnvConfig:
    """The env settings the bundle was trained with: all of them when the bundle ships them
    (``metadata["env"]``), else its contract, costs and sizing over ``env``."""
    if "env" in metadata:
        return typed(metadata["env"], EnvConfig)
    c = metadata["combination"]
    return replace(
        env,
        contract=typed(metadata["instrument"], ContractConfig),
        costs=typed(metadata["costs"], CostConfig),
        initial_capital=float(metadata["initial_capital"]),
        max_contracts=int(c["max_contracts"]),
        risk_cap=[float(x) for x in c["risk_cap"]],
        stop_bounds=[float(x) for x in c["stop_bounds"]],
        scale_bounds=[float(x) for x in c["scale_bounds"]],
        equity_floor=float(c["equity_floor"]),
    )


def decision_confidence(
    policy: InferencePolicy, obs: dict[str, np.ndarray], actions: dict[str, np.ndarray], seed: int
) -> float:
    """Share of perturbed observations that keep the strategic and risk actions (their mean).

    The bundle outputs actions, not probabilities, so confidence is measured as robustness: each
    feature of the windows is moved by 0.1 of its training standard deviation (the bundle's
    normalisation), the risk features by 1% of their size, ``CONFIDENCE_DRAWS`` times.
    """
    rng = np.random.default_rng(seed)
    batch = {}
    for role in ("strategic", "tactical"):
        norm = policy.metadata["roles"][role]["input"]["normalisation"]
        std = np.asarray(norm["std"]) if isinstance(norm, dict) else np.ones(obs[role].shape[-1])
        noise = rng.standard_normal((CONFIDENCE_DRAWS, *obs[role].shape)) * 0.1 * std
        batch[role] = obs[role][None] + noise
    risk = obs["risk"].astype(np.float64)
    batch["risk"] = risk[None] * (1 + 0.01 * rng.standard_normal((CONFIDENCE_DRAWS, risk.size)))
    out = policy.decide(batch)
    agree = [np.mean(out[r] == actions[r]) for r in ("strategic", "risk")]
    return float(np.mean(agree))


class PaperSession:
    def __init__(self, cfg: Any, folder: Path) -> None:
        self.settings = typed(cfg.paper, PaperSettings)
        uri = str(cfg.logger.tracking_uri) if cfg.logger.kind == "mlflow" else None
        self.policy = InferencePolicy.load(str(cfg.bundle), tracking_uri=uri)
        md = self.policy.metadata
        clock = md["decision_clock"]
        self.tz, base = str(clock["timezone"]), str(clock["base_timeframe"])
        frames = {"base": base, "tactical": clock["timeframe"]}
        frames["strategic"] = md["roles"]["strategic"]["input"]["timeframe"]
        sizes = {k: pd.Timedelta(pd.tseries.frequencies.to_offset(v)) for k, v in frames.items()}
        windows = {r: int(md["roles"][r]["input"]["window"]) for r in ("tactical", "strategic")}
        self.columns = bundle_features(md)
        for role, features in self.columns.items():
            unknown = [name for name in features if name not in LIVE_FEATURES]
            if unknown:
                raise GrandModelError(
                    f"{cfg.bundle}: the {role} agent observes {unknown}, which the paper loop does "
                    f"not compute from bars; expected features from {list(LIVE_FEATURES)}"
                )
        fitted = [n for cols in self.columns.values() for n in cols if n in FITTED_FEATURES]
        regime = bundle_regime(md)
        if fitted and regime is None:
            raise GrandModelError(
                f"{cfg.bundle}: the agents observe {fitted}, but metadata.json holds no regime "
                "fit to filter them with; expected a bundle exported with its model's fit"
            )
        self.features = LiveFeatures(
            {k: int(v.value) for k, v in sizes.items()}, windows, self.columns, regime
        )
        env = bundle_env(typed(cfg.env, EnvConfig), md)
        s = self.settings
        inst = cfg.instrument
        self.periods_per_year = bars_per_year(
            sizes["tactical"], float(inst.session_hours), int(inst.trading_days)
        )
        self.broker = SimulatedBroker(
            env, typed(md.get("reward", cfg.reward), RewardConfig), int(sizes["tactical"] / sizes["base"]),
            self.periods_per_year, env.vol_halflife, s.latency_bars,
        )  # fmt: skip
        self.gate = RiskGate(s.risk, self.tz)
        digest = hashlib.sha256((self.policy.folder / "metadata.json").read_bytes()).hexdigest()
        self.version = f"{md['name']}@{digest[:12]}"
        self.folder = folder
        feed = cfg.feed
        if feed.kind == FeedKind.replay:
            self.feed: ReplayFeed | TailFeed = ReplayFeed(feed.path, self.tz, base, feed.speed)
        else:
            self.feed = TailFeed(feed.path, self.tz, base, feed.poll_seconds, folder / "tail.csv")
        self.idle_exit = float(feed.idle_exit_seconds)
        self.start_ns = pd.Timestamp(s.start, tz=self.tz).value if s.start else None
        self.drift = self._drift_detector(cfg, uri) if s.reference else None
        self.journal = Journal(folder / "journal.sqlite")  # only once the inputs are known good
        self._check_meta(str(feed.path))
        kill = Path(s.risk.kill_file)
        self.kill_file = kill if kill.is_absolute() else folder / kill
        self.started = False
        self.risk_obs: np.ndarray | None = None
        self.latencies: list[float] = []
        self.rows: deque[np.ndarray] = deque(maxlen=s.monitor_window)
        self.seq = 0
        self.terminated = False

    def _check_meta(self, feed_path: str) -> None:
        meta = self.journal.meta()
        want = {"model_version": self.version, "feed": str(Path(feed_path).resolve())}
        info = {
            "bundle": str(self.policy.folder.resolve()),
            "periods_per_year": self.periods_per_year,
        }
        for key, value in want.items():
            if key in meta and meta[key] != value:
                raise GrandModelError(
                    f"{self.journal.path}: session was started with {key} {meta[key]}, now "
                    f"{value}; use another paper.session name or the same {key}"
                )
        if not meta:
            self.journal.set_meta(want | info)

    def run(self, echo: Any = None) -> dict[str, Any]:
        """Consume the feed (replaying what the journal holds first); returns a summary."""
        done = self.journal.count("bars")
        journaled = [
            tuple(r)[1:] for r in self.journal.db.execute("SELECT * FROM bars ORDER BY seq")
        ]
        previous = signal.signal(signal.SIGTERM, lambda *_: self.gate.kill("SIGTERM"))
        gc.collect()
        gc.freeze()  # what start-up built (model, buffers, data) is never scanned again mid-bar
        idle_since = time.monotonic()
        try:
            for bar in self.feed.bars(skip=done):
                if bar is None:
                    idle = time.monotonic() - idle_since
                    if idle >= self.settings.risk.stale_seconds and not self.gate.stale:
                        self._transition(self.gate.set_stale(True), 0, live=True)
                    if self.idle_exit and idle >= self.idle_exit:
                        break
                    continue
                idle_since = time.monotonic()
                if self.gate.stale:
                    self.gate.set_stale(False)
                live = self.seq >= done
                if (
                    not live
                    and (bar.open_ns, bar.open, bar.high, bar.low, bar.close, bar.volume)
                    != journaled[self.seq]
                ):
                    raise GrandModelError(
                        f"{self.journal.path}: bar {self.seq} in the journal differs from the feed's "
                        f"({pd.Timestamp(bar.open_ns, tz='UTC')}); expected the same feed file"
                    )
                self._bar(bar, live, echo)
                if self.terminated or (self.gate.killed and self._flat()):
                    break
        finally:
            signal.signal(signal.SIGTERM, previous)
        account = self.broker.account() if self.broker.state is not None else {}
        return {"bars": self.seq, "account": account, "latencies": self.latencies,
                "state": self.gate.state, "journal": self.journal.path}  # fmt: skip

    def _flat(self) -> bool:
        """Flat, with the last decision taken while halted (so no order is pending)."""
        return self.broker.state is None or (
            self.broker.account()["position"] == 0 and self.gate.state == HALTED
        )

    def _bar(self, bar: Bar, live: bool, echo: Any) -> None:
        began = time.perf_counter()
        seq = self.seq
        ctx = self.journal.bar() if live else contextlib.nullcontext()
        decided = False
        with ctx:
            if live:
                self.journal.insert("bars", {"seq": seq, "open_ns": bar.open_ns, "open": bar.open,
                    "high": bar.high, "low": bar.low, "close": bar.close, "volume": bar.volume})  # fmt: skip
                if self.settings.kill_at_bar and seq + 1 == self.settings.kill_at_bar:
                    os.kill(os.getpid(), signal.SIGKILL)  # drill: die with the bar half-written
            if live and self.kill_file.exists():
                self.gate.kill(f"file {self.kill_file}")
            self.broker.add_base_bar(bar)
            offset = self.feed.utc_offset_ns or 0
            for done in self.features.push(bar, offset):
                t = self.broker.add_tactical_bar(done.bar, done.strategic_new)
                settled = self.broker.settle()
                if settled is not None:
                    self._settled(settled, seq, done.bar.known_ns, live)
                ready = self.features.ready and (
                    self.start_ns is None or done.bar.known_ns >= self.start_ns
                )
                if not self.terminated and (self.started or ready):
                    self._decide(t, seq, done.bar, live, echo)
                    decided = True
        self.seq += 1
        if live and decided:
            self.latencies.append(time.perf_counter() - began)

    def _settled(self, s: Settlement, seq: int, time_ns: int, live: bool) -> None:
        self.risk_obs = s.risk
        mark = float(self.broker.buf["mark_close"].data[s.t + 1])
        row = {"t": s.t, "bar_seq": seq, "time_ns": time_ns, **s.account, "mark": mark}
        if live:
            for f in s.fills:
                self.journal.insert("fills", {"t": s.t, "bar_seq": seq, "kind": f.kind,
                    "bar_ns": f.bar_ns, "qty": f.qty, "price": f.price, "cost": f.cost})  # fmt: skip
            self.journal.insert("account", {k: (None if v != v else v) for k, v in row.items()})
        else:
            stored = self.journal.account_at(s.t)
            if stored is None or any(
                not np.isclose(stored[k], row[k], rtol=0, atol=1e-6)
                for k in ("position", "equity", "costs")
            ):
                have = (
                    "nothing"
                    if stored is None
                    else f"position {stored['position']:g}, equity {stored['equity']:.2f}"
                )
                raise GrandModelError(
                    f"{self.journal.path}: at decision {s.t} the journal holds {have} but the broker "
                    f"has position {row['position']:g}, equity {row['equity']:.2f}; refusing to "
                    "trade (start a new paper.session or restore the journal)"
                )
        if s.terminated:
            self.terminated = True

    def _decide(self, t: int, seq: int, bar: Bar, live: bool, echo: Any) -> None:
        if not self.started:
            self.risk_obs, self.started = self.broker.begin(t), True
        account = self.broker.account()
        moved = self.gate.update(bar.known_ns, account["equity"])
        self._transition(moved, bar.known_ns, live)
        obs = self.features.observation() | {"risk": np.asarray(self.risk_obs)}
        self.rows.append(np.concatenate((obs["tactical"][-1], obs["strategic"][-1])))
        if live:
            actions = {k: np.array(v) for k, v in self.policy.decide(obs).items()}
            confidence = decision_confidence(self.policy, obs, actions, seed=t)
            target = self.broker.target(actions)
            position = account["position"]
            wanted = position + round(
                min(max(float(actions["tactical"][0]), 0.0), 1.0) * (target - position)
            )
            allowed = self.gate.allowed(position, wanted)
            sent = gated_actions(actions, position, target, wanted, allowed)
            decision = bool(self.broker.buf["strategic_decision"].data[t])
            self.journal.insert("decisions", {
                "t": t, "bar_seq": seq, "time_ns": bar.known_ns, "model_version": self.version,
                **_flat_actions(actions, ""), **_flat_actions(sent, "sent_"),
                "strategic_decision": int(decision), "confidence": confidence,
                "gate_state": self.gate.state, "gate_reason": self.gate.reason, "target": target, "wanted": wanted, "allowed": allowed,
            })  # fmt: skip
            if allowed != position:
                self.journal.insert("orders", {"t": t, "bar_seq": seq, "qty": allowed - position})
            if echo is not None:
                when = pd.Timestamp(bar.known_ns, tz="UTC").tz_convert(self.tz)
                echo(f"{when:%Y-%m-%d %H:%M} close {bar.close:.2f} position {position:+g} -> "
                     f"{allowed:+g} equity {account['equity']:,.2f} {self.gate.state}")  # fmt: skip
        else:
            row = self.journal.decision(t)
            if row is None:
                raise GrandModelError(
                    f"{self.journal.path}: no decision {t} for a bar the journal holds; the journal "
                    "is damaged (start a new paper.session)"
                )
            sent = {"strategic": np.array(row["sent_strategic"]), "risk": np.array(row["sent_risk"]),
                    "tactical": np.array([row["sent_entry_timing"], row["sent_stop_distance"],
                                          row["sent_position_scale"]], np.float32)}  # fmt: skip
            self.gate.restore(row["gate_state"], row["gate_reason"])
        self.broker.submit(t, sent)
        every = self.settings.monitor_every
        if live and every and self.journal.count("decisions") % every == 0:
            self._monitor(t, seq)

    def _monitor(self, t: int, seq: int) -> None:
        """The monitor's performance checks over the last ``paper.monitor_window`` decisions."""
        n = self.settings.monitor_window
        db = self.journal.db
        decisions = pd.read_sql(f"SELECT * FROM decisions ORDER BY t DESC LIMIT {n}", db)
        account = pd.read_sql(f"SELECT * FROM account ORDER BY t DESC LIMIT {n}", db)
        rows = rolling_performance(decisions[::-1], account[::-1], n, self.periods_per_year)
        if rows.empty:
            return
        report = {k: (None if v != v else v) for k, v in rows.iloc[-1].to_dict().items()}
        if self.drift is not None and len(self.rows) >= self.drift.window:
            window = np.array(self.rows)[-self.drift.window :]
            ratio = self.drift.distances(window) / self.drift.feature_threshold
            report["feature_drift"] = float(ratio.max() / self.drift.threshold)
            report["drift_alarm"] = bool(ratio.max() > self.drift.threshold)
            order = np.argsort(-ratio)[:3]
            report["drifting"] = [self.drift.names[i] for i in order if ratio[i] > 1]
        self.journal.insert("monitor", {"bar_seq": seq, "t": t, "report": json.dumps(report)})
        if not self.settings.quiet:
            print(f"monitor: {report['recommendation']} alerts [{report['alerts']}] win rate "
                  f"{report['win_rate']} Sharpe {report['sharpe_ratio']:.2f}"
                  + (" FEATURE DRIFT " + ", ".join(report["drifting"]) if report.get("drift_alarm") else ""),
                  flush=True)  # fmt: skip

    def _drift_detector(self, cfg: Any, uri: str | None) -> DriftDetector:
        """Feature drift against the reference run's training split, as the monitor computes it."""
        ref, _, _ = reference_data(str(self.settings.reference), cfg.paths, uri, None)
        window = min(self.settings.monitor_window, len(ref) // 2)
        return DriftDetector(ref, feature_names(self.columns), window)

    def _transition(self, moved: Transition | None, time_ns: int, live: bool) -> None:
        if moved is None or not live:
            return
        row = {"bar_seq": self.seq, "time_ns": time_ns, "before": moved.before,
               "after": moved.after, "reason": moved.reason}  # fmt: skip
        if self.journal.in_bar:
            self.journal.insert("risk_events", row)
        else:
            with self.journal.bar():
                self.journal.insert("risk_events", row)
        if not self.settings.quiet:
            print(f"risk gate: {moved.before} -> {moved.after} ({moved.reason})", flush=True)


def _flat_actions(actions: dict[str, np.ndarray], prefix: str) -> dict[str, Any]:
    tac = np.asarray(actions["tactical"], np.float64)
    return {f"{prefix}strategic": int(actions["strategic"]), f"{prefix}risk": int(actions["risk"]),
            f"{prefix}entry_timing": float(tac[0]), f"{prefix}stop_distance": float(tac[1]),
            f"{prefix}position_scale": float(tac[2])}  # fmt: skip


def session_folder(outputs_dir: str, name: str) -> Path:
    return Path(outputs_dir) / "paper" / name

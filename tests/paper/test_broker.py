"""The simulated broker settles exactly as the env's step does on the same market and actions."""

from __future__ import annotations

import numpy as np
import torch

from grandmodel.config import load_config, typed
from grandmodel.config.data import DataConfig
from grandmodel.config.env import EnvConfig, RewardConfig
from grandmodel.data.pipeline import assemble
from grandmodel.data.timeframes import periods_per_year
from grandmodel.deploy.paper.broker import SimulatedBroker
from grandmodel.deploy.paper.features import LiveFeatures
from grandmodel.deploy.paper.feeds import ReplayFeed
from grandmodel.env.kernel import StepKernel
from grandmodel.env.state import fresh_state


def test_replayed_settlements_equal_the_env_kernel(smoke_tables, tmp_path) -> None:
    tables, path = smoke_tables
    cfg = load_config(["experiment=smoke", f"paths.outputs_dir={tmp_path}"])
    env, reward = typed(cfg.env, EnvConfig), typed(cfg.reward, RewardConfig)
    data = assemble(tables, typed(cfg.data, DataConfig))
    kernel = StepKernel(data, env, reward, torch.device("cpu"))
    ppy = periods_per_year(cfg.data, "tactical")
    broker = SimulatedBroker(env, reward, 5, ppy, env.vol_halflife)
    first = int(data.meta["first_decision"])
    steps = 600
    rng = np.random.default_rng(0)
    strategic = rng.integers(0, 3, steps)
    tactical = np.stack(
        [rng.uniform(0, 1, steps), rng.uniform(0.001, 0.002, steps), rng.uniform(0.1, 2, steps)], 1
    ).astype(np.float32)
    risk = rng.integers(0, 5, steps)

    state = fresh_state(1, env.var_window, env.initial_capital, torch.device("cpu"))
    state["ptr"], state["end"] = torch.tensor([first]), torch.tensor([first + steps + 1])
    expected = []
    for i in range(steps):
        state, out = kernel.step(
            state, torch.tensor([strategic[i]]), torch.tensor(tactical[i : i + 1]),
            torch.tensor([risk[i]]),
        )  # fmt: skip
        expected.append((float(out["traded"][0]), float(state["position"][0]),
                         float(state["equity"][0]), bool(out["stop_hit"][0]), out["risk"][0].numpy()))  # fmt: skip

    feed = ReplayFeed(str(path), "America/Chicago", "1min", "max")
    live = LiveFeatures({"base": 60 * 10**9, "tactical": 300 * 10**9, "strategic": 1800 * 10**9},
                        {"tactical": 60, "strategic": 48})  # fmt: skip
    got = []
    for bar in feed.bars():
        broker.add_base_bar(bar)
        for done in live.push(bar, feed.utc_offset_ns):
            t = broker.add_tactical_bar(done.bar, done.strategic_new)
            settled = broker.settle()
            if settled is not None:
                a = settled.account
                got.append((sum(f.qty for f in settled.fills if f.kind == "order"), a["position"],
                            a["equity"], any(f.kind == "stop" for f in settled.fills), settled.risk))  # fmt: skip
            if t == first:
                broker.begin(t)
            if first <= t < first + steps:
                i = t - first
                broker.submit(
                    t, {"strategic": strategic[i], "tactical": tactical[i], "risk": risk[i]}
                )
        if len(got) == steps:
            break
    assert len(got) == steps
    assert sum(e[3] for e in expected) >= 5 and sum(e[0] != 0 for e in expected) > 100
    for e, g in zip(expected, got, strict=True):
        assert e[:4] == g[:4]
        np.testing.assert_allclose(e[4], g[4], rtol=1e-6, atol=1e-6)


def test_latency_bars_delay_the_fill(smoke_tables, tmp_path) -> None:
    tables, path = smoke_tables
    cfg = load_config(["experiment=smoke", f"paths.outputs_dir={tmp_path}"])
    env, reward = typed(cfg.env, EnvConfig), typed(cfg.reward, RewardConfig)
    data = assemble(tables, typed(cfg.data, DataConfig))
    broker = SimulatedBroker(env, reward, 5, periods_per_year(cfg.data, "tactical"), 60.0, 2)
    first = int(data.meta["first_decision"])
    live = LiveFeatures({"base": 60 * 10**9, "tactical": 300 * 10**9, "strategic": 1800 * 10**9},
                        {"tactical": 60, "strategic": 48})  # fmt: skip
    feed = ReplayFeed(str(path), "America/Chicago", "1min", "max")
    long = {"strategic": 2, "tactical": np.array([1.0, 0.05, 1.0], np.float32), "risk": 4}
    fills = []
    for bar in feed.bars():
        broker.add_base_bar(bar)
        for done in live.push(bar, feed.utc_offset_ns):
            t = broker.add_tactical_bar(done.bar, done.strategic_new)
            settled = broker.settle()
            if settled is not None and settled.fills:
                fills.append((settled.t, settled.fills[0]))
            if t == first:
                broker.begin(t)
            if t >= first:
                broker.submit(t, long)
        if fills:
            break
    t, fill = fills[0]
    index = int(data.fill_index[t]) + 2  # two base bars after the first one after the decision
    assert fill.kind == "order" and fill.qty == 5
    assert fill.bar_ns == int(data.base.open_ns[index]) and fill.price == float(
        data.base.open[index]
    )

"""Leak check: on a random walk whose bar volume reveals that same bar's return, trained agents
have no out-of-sample edge.

The volume of a one-minute bar is a linear function of its own return, so every 5- and 30-minute
bar's volume reveals that bar's return. Used as the env intends (a bar is observed after its close,
orders fill at the next bar's open) this says nothing about the future of a random walk; an
observation that included the bar about to be traded would make its volume a near-perfect forecast.

Two trainings run side by side (39 s of CPU in all; 82 s wall on two cores busy with other work):

- ``marl``: the full system. A leak reaching the strategic agent (who sets the direction) pays.
- ``tactical``: the tactical agent learning with the direction held long (``agent=sac``,
  ``always_long``). The tactical agent sees neither the direction nor the position, so under
  ``marl`` a leak in its observation alone cannot pay; with the direction fixed it can (scale up
  before a rise, down before a fall).

Both use ``experiment=smoke`` model sizes with a few thousand frames, a two-bar window of few
features (so a leak is learnable at this size) and net PnL as the reward; ``marl`` has risk caps from
0.6, since smoke-size training otherwise learns to stay flat, and a flat policy proves nothing.
A case fails when the lower end of the test Sharpe's 95% block-bootstrap interval (the run's
final report) is above 0. Checked that it can fail: with the volume shifted to reveal the *next*
30-minute bar's return, ``marl`` reaches a test Sharpe of 37.4 [25.8, 49.0]; shifted to reveal the
next 5-minute bar's, ``tactical`` reaches 66.2 [55.1, 77.9] (and ``marl`` -1.3, as argued above).
This file gives 0.5 [-13.5, 14.0] and -0.1 [-12.8, 13.6].
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import ROOT, es_bars, write_csv

DAYS, SEED, VOL = 40, 0, 5e-4
COMMON = (
    "experiment=smoke",
    "data=csv",
    "logger=csv",
    "trainer.frames_per_batch=512",
    "trainer.eval_every_frames=2048",
    "trainer.selection.min_trades=0",  # the tactical case holds long: it closes no round trips
    "env.n_envs=16",
    "reward.risk_penalty=0",
    "reward.max_drawdown_penalty=0",
    "reward.sharpe_bonus=0",
    "data.window.strategic=2",
    "data.window.tactical=2",
    "data.features.strategic=[volume_ratio,log_return,trend_regime]",
    "data.features.tactical=[volume_ratio,log_return]",
)
CASES = {
    "marl": (
        "agent=marl",
        "trainer.total_frames=6144",
        "env.risk_cap=[0.6,0.7,0.8,0.9,1.0]",
        "agent.strategic.lr=3e-3",
    ),
    "tactical": (
        "agent=sac",
        "agent.baselines.strategic=always_long",
        "trainer.total_frames=4096",
        "agent.tactical.gradient_steps=4",
        "agent.tactical.lr=3e-3",
        "agent.tactical.dropout=0",
        "agent.tactical.replay.prioritized=false",
    ),
}


def volume_reveals_return(days: int, seed: int) -> pd.DataFrame:
    """Seeded one-minute random walk on the ES calendar; volume = 1000 + 380 * (return / vol)."""
    frame = es_bars(days=days, seed=seed, vol=VOL)
    z = np.clip(np.log(frame["close"] / frame["open"]).to_numpy() / VOL, -2.5, 2.5)
    frame["volume"] = np.round(1000.0 + 380.0 * z)
    return frame


def _train_side_by_side(data: Path, root: Path) -> dict[str, Path]:
    """``python -m grandmodel.train`` for every case at once; the run folder of each."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    procs = {}
    for name, overrides in CASES.items():
        args = [sys.executable, "-m", "grandmodel.train", *COMMON, *overrides]
        args += [f"data.path={data}", f"paths.outputs_dir={root / name}"]
        with open(root / f"{name}.log", "w") as log:
            procs[name] = subprocess.Popen(
                args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env
            )
    for name, proc in procs.items():
        code = proc.wait(timeout=300)
        assert code == 0, f"{name}: {(root / f'{name}.log').read_text()[-3000:]}"
    return {name: next((root / name / "runs").iterdir()) for name in CASES}


def _test_column(run: Path) -> dict[str, str]:
    """The test column of the run's final report (``evaluation.md``), by row name."""
    header, _, *rows = (run / "evaluation.md").read_text().splitlines()
    assert header.split("|")[3].strip() == "test", header
    return {row.split("|")[1].strip(): row.split("|")[3].strip() for row in rows}


def test_volume_revealing_its_own_bar_gives_no_test_edge(tmp_path: Path) -> None:
    data = write_csv(volume_reveals_return(DAYS, SEED), tmp_path / "walk.csv")
    runs = _train_side_by_side(data, tmp_path)
    for name, run in runs.items():
        test = _test_column(run)
        assert float(test["total_return"]) != 0, f"{name} never held a position: it proves nothing"
        # "sharpe [lo, hi] (n trades)": the stationary block bootstrap's 95% interval
        interval = test["sharpe [95% CI] trained"]
        low = float(interval.split("[")[1].split(",")[0])
        assert low <= 0, f"{name}: test Sharpe {interval}: an observation may see the bar it trades"
    assert float(_test_column(runs["marl"])["trades"]) > 0, "marl never traded: it proves nothing"

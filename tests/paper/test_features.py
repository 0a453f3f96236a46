"""Incremental features equal the batch pipeline's on every bar of a replayed file; a bundle
without the regime fit its features need is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grandmodel.data.features import FEATURES, OBSERVATION
from grandmodel.data.hmm import RegimeFit, add_regime_features, base_returns
from grandmodel.data.normalise import NormStats
from grandmodel.data.pipeline import build_tables
from grandmodel.deploy.manifest import seal
from grandmodel.deploy.paper.features import LiveFeatures
from grandmodel.deploy.paper.feeds import ReplayFeed
from tests.deploy.helpers import run_module


@pytest.mark.parametrize("columns", ["default", "every bar feature"])
def test_every_observation_equals_the_batch_pipeline(smoke_tables, columns: str) -> None:
    """The default lists, and every feature the loop computes (momentum and realized volatility,
    whose variance sums the one-minute bars through both resamplings) on both timeframes."""
    tables, path = smoke_tables
    observed = (
        dict(OBSERVATION) if columns == "default" else dict.fromkeys(OBSERVATION, tuple(FEATURES))
    )
    feed = ReplayFeed(str(path), "America/Chicago", "1min", "max")
    sizes = {"base": 60 * 10**9, "tactical": 300 * 10**9, "strategic": 1800 * 10**9}
    live = LiveFeatures(sizes, {"tactical": 60, "strategic": 48}, observed)
    rows: dict[str, list[np.ndarray]] = {"tactical": [], "strategic": []}
    known: dict[str, list[int]] = {"tactical": [], "strategic": []}
    windows = []
    for bar in feed.bars():
        for done in live.push(bar, feed.utc_offset_ns):
            rows["tactical"].append(live.windows["tactical"].rows[-1])
            known["tactical"].append(done.bar.known_ns)
            if done.strategic_new:
                rows["strategic"].append(live.windows["strategic"].rows[-1])
            if live.ready:
                windows.append((len(rows["tactical"]) - 1, live.observation()))
    for role in rows:
        frame = tables.frames[role]
        batch = frame[list(observed[role])].to_numpy(np.float64)
        mine = np.array(rows[role])
        assert mine.shape == batch.shape
        np.testing.assert_allclose(mine, batch, rtol=0, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(known["tactical"], tables.frames["tactical"]["known_ns"])
    # the windows handed to the model: the last completed bars, normalised as the batch data is
    t, obs = windows[len(windows) // 2]
    names = list(observed["tactical"])
    table = tables.frames["tactical"][names].to_numpy(np.float64)
    stats = NormStats.fit(table[100:], names, [True] * len(names))
    np.testing.assert_allclose(
        stats.transform(obs["tactical"]), stats.transform(table[t - 59 : t + 1]), atol=1e-6
    )
    assert len(windows) > 1000


def test_the_fitted_regime_features_equal_the_batch_pipeline(smoke_tables, tmp_path) -> None:
    """The HMM filtered one base bar at a time gives each bar the batch value: the posterior after
    its last base bar, also when a bar's last minutes are missing and a later bar closes it."""
    tables, _ = smoke_tables
    base = tables.frames["base"][["open", "high", "low", "close", "volume"]]
    base = base[(np.arange(len(base)) % 97 != 0) & (base.index.minute % 30 != 29)]
    path = tmp_path / "gaps.csv"
    base.rename_axis("timestamp").to_csv(path)
    returns = base_returns(base)
    fit = RegimeFit.fit(returns[: returns.size // 2], summed=30, states=3, restarts=1)
    sizes = {"base": 60 * 10**9, "tactical": 300 * 10**9, "strategic": 1800 * 10**9}
    frames = build_tables(base, {k: pd.Timedelta(v) for k, v in sizes.items()})
    columns = {"tactical": ("log_return", "regime_vol"), "strategic": ("regime_edge", "rsi_14")}
    add_regime_features(frames, columns, fit)
    feed = ReplayFeed(str(path), "America/Chicago", "1min", "max")
    with pytest.raises(ValueError, match="regime fit"):
        LiveFeatures(sizes, {"tactical": 4, "strategic": 4}, columns)
    live = LiveFeatures(sizes, {"tactical": 4, "strategic": 4}, columns, fit)
    rows: dict[str, list[np.ndarray]] = {"tactical": [], "strategic": []}
    for bar in feed.bars():
        for done in live.push(bar, feed.utc_offset_ns):
            rows["tactical"].append(live.windows["tactical"].rows[-1])
            if done.strategic_new:
                rows["strategic"].append(live.windows["strategic"].rows[-1])
    for role, names in columns.items():
        batch, mine = frames[role][list(names)].to_numpy(np.float64), np.array(rows[role])
        assert len(batch) - len(mine) in (0, 1)  # the feed's last bar misses its last minute
        assert np.isfinite(batch[:, [n.startswith("regime") for n in names]]).all()
        np.testing.assert_allclose(mine, batch[: len(mine)], rtol=1e-9, atol=1e-12, equal_nan=True)


def test_a_bundle_whose_regime_fit_is_missing_is_refused_with_one_line(
    bundle: Path, smoke_tables, tmp_path: Path
) -> None:
    """A bundle whose strategic agent observes ``regime_edge`` but whose metadata holds no fit (as an
    exporter older than the fitted features would write it; the hashes are consistent) must not
    trade on features it cannot compute: one line, exit 2, no session folder."""
    _, bars = smoke_tables
    copy = tmp_path / "no_fit"
    shutil.copytree(bundle, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    norm = meta["roles"]["strategic"]["input"]["normalisation"]
    assert "regime_edge" in meta["roles"]["strategic"]["input"]["features"] and norm.pop("regime")
    (copy / "metadata.json").write_text(json.dumps(seal(meta, copy)))
    outputs = tmp_path / "outputs"
    result = run_module(
        "grandmodel.paper", f"bundle={copy}", f"feed.path={bars}", f"paths.outputs_dir={outputs}",
        "paper.quiet=true",
    )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0] == (
        f"error: {copy}: the agents observe ['regime_edge'], but metadata.json holds no regime "
        "fit to filter them with; expected a bundle exported with its model's fit"
    )
    assert not (outputs / "paper").exists()

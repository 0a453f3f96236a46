"""Incremental features equal the batch pipeline's on every bar of a replayed file."""

from __future__ import annotations

import numpy as np
import pytest

from grandmodel.data.features import OBSERVATION
from grandmodel.data.normalise import NormStats
from grandmodel.deploy.paper.features import LIVE_FEATURES, LiveFeatures
from grandmodel.deploy.paper.feeds import ReplayFeed


@pytest.mark.parametrize("columns", ["default", "every bar feature"])
def test_every_observation_equals_the_batch_pipeline(smoke_tables, columns: str) -> None:
    """The default lists, and every feature the loop computes (momentum and realized volatility,
    whose variance sums the one-minute bars through both resamplings) on both timeframes."""
    tables, path = smoke_tables
    observed = (
        dict(OBSERVATION) if columns == "default" else dict.fromkeys(OBSERVATION, LIVE_FEATURES)
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

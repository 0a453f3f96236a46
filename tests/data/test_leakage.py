"""Look-ahead (docs/architecture.md, "Time and look-ahead"): perturb every bar after T; everything
known up to T is bit-identical."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import grandmodel
from grandmodel.config import validate
from grandmodel.data.pipeline import prepare
from tests.conftest import es_bars, write_csv


def _perturbed(frame: pd.DataFrame, cut: pd.Timestamp, seed: int = 1) -> pd.DataFrame:
    """Scale every bar opening at or after ``cut`` by a random factor and redraw its volume."""
    out = frame.copy()
    after = out.index >= cut
    rng = np.random.default_rng(seed)
    factor = np.exp(np.cumsum(rng.normal(0, 2e-3, after.sum())))
    for column in ("open", "high", "low", "close"):
        out.loc[after, column] = np.round(out.loc[after, column].to_numpy() * factor * 4) / 4
    out.loc[after, "high"] = out.loc[after, ["open", "high", "close"]].max(axis=1) + 0.5
    out.loc[after, "low"] = out.loc[after, ["open", "low", "close"]].min(axis=1) - 0.5
    out.loc[after, "volume"] = rng.integers(1, 5000, after.sum())
    return out


def _prepare(path: Path, outputs: Path):
    cfg = grandmodel.load_config(
        [
            "data=csv",
            f"data.path={path}",
            f"paths.outputs_dir={outputs}",
            "data.episode_length=64",
            "data.cache=false",
        ]
    )
    return prepare(validate(cfg).data, Path(cfg.paths.cache_dir))


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return es_bars(days=14, seed=3)


@pytest.mark.parametrize("fraction", [0.45, 0.8])
def test_nothing_known_before_t_changes_when_the_future_does(
    frame: pd.DataFrame, fraction: float, tmp_path: Path
) -> None:
    cut = frame.index[int(len(frame) * fraction)]
    (tables_a, data_a) = _prepare(write_csv(frame, tmp_path / "a.csv"), tmp_path / "out_a")
    (tables_b, data_b) = _prepare(
        write_csv(_perturbed(frame, cut), tmp_path / "b.csv"), tmp_path / "out_b"
    )
    cut_ns = cut.value
    for name in ("tactical", "strategic"):
        a, b = tables_a.frames[name], tables_b.frames[name]
        known = a["known_ns"].to_numpy() <= cut_ns
        assert known.sum() > 100
        numeric = [c for c in a.columns if c != "known_ns"]
        np.testing.assert_array_equal(
            a.loc[known, numeric].to_numpy(), b.loc[known, numeric].to_numpy(), err_msg=name
        )
        assert not np.array_equal(
            a.loc[~known, "close"].to_numpy(), b.loc[~known, "close"].to_numpy()
        )
    # the decision clock and splits depend on timestamps only
    for attr in ("strategic_index", "fill_index", "step_bars", "step_count", "strategic_decision"):
        assert np.array_equal(getattr(data_a, attr).numpy(), getattr(data_b, attr).numpy()), attr
    assert data_a.splits == data_b.splits
    # normalised observations: identical up to T whenever T is after the training split
    train_end_ns = int(data_a.tactical.known_ns[data_a.splits["train"][1] - 1])
    if cut_ns > train_end_ns:
        assert data_a.norm == data_b.norm
        for name in ("tactical", "strategic"):
            bars_a, bars_b = getattr(data_a, name), getattr(data_b, name)
            known = bars_a.known_ns <= cut_ns
            assert np.array_equal(bars_a.features[known].numpy(), bars_b.features[known].numpy()), (
                name
            )


def test_bars_become_known_only_when_their_last_minute_closes(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    tables, data = _prepare(write_csv(frame, tmp_path / "a.csv"), tmp_path / "out")
    base_open = tables.frames["base"].index.asi8
    for name in ("tactical", "strategic"):
        table = tables.frames[name]
        last_close = base_open[table["last"].to_numpy()] + pd.Timedelta("1min").value
        assert (table["known_ns"].to_numpy() >= last_close).all()
        assert (table.index.asi8 <= base_open[table["first"].to_numpy()]).all()
    decision_ns = data.tactical.known_ns
    has = data.strategic_index >= 0
    strategic_known = data.strategic.known_ns[data.strategic_index[has]]
    assert bool((strategic_known <= decision_ns[has]).all())
    after = data.strategic_index[has] + 1 < len(data.strategic)
    next_known = data.strategic.known_ns[data.strategic_index[has][after] + 1]
    assert bool((next_known > decision_ns[has][after]).all()), (
        "a completed strategic bar was left out"
    )
    fills = data.fill_index[: data.meta["last_decision"] + 1]
    assert bool((data.base.open_ns[fills] >= decision_ns[: len(fills)]).all())

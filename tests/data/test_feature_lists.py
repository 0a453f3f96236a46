"""Observation features per role (``data.features``): shapes follow the lists, unknown names and a
missing source are one-line errors, and order-book / calendar columns reach the observations known
only after their time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import grandmodel
from grandmodel.data.book import align_known, book_features, read_book
from grandmodel.errors import DataError
from tests.conftest import es_bars, write_csv

TZ = "America/Chicago"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sources")
    bars = es_bars(days=12)
    rng = np.random.default_rng(0)
    stamps = bars.index[::7] + pd.Timedelta(seconds=20)
    mid = bars["close"].to_numpy()[::7]
    book = pd.DataFrame(
        {
            "timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"),
            "bid": mid - 0.25,
            "bid_size": rng.integers(1, 40, len(mid)),
            "ask": mid + 0.25 * rng.integers(1, 3, len(mid)),
            "ask_size": rng.integers(1, 40, len(mid)),
        }
    )
    days = pd.date_range("2023-01-03 07:30", periods=12, freq="1D", tz=TZ)
    events = pd.DataFrame(
        {
            "release_time": days.strftime("%Y-%m-%d %H:%M:%S"),
            "name": "CLAIMS",
            "actual": rng.normal(220, 10, len(days)).round(),
            "forecast": 220.0,
        }
    )
    out = {"bars": write_csv(bars, folder / "bars.csv"), "book": folder / "book.csv"}
    book.to_csv(out["book"], index=False)
    out["events"] = folder / "events.csv"
    events.to_csv(out["events"], index=False)
    out["outputs"] = folder / "outputs"
    return out


def _cfg(files: dict[str, Path], *overrides: str):
    return grandmodel.load_config(
        [
            "data=csv",
            f"data.path={files['bars']}",
            f"paths.outputs_dir={files['outputs']}",
            "data.episode_length=64",
            "data.cache=false",
            "env.n_envs=2",
            *overrides,
        ]
    )


def test_observation_shapes_follow_the_lists(files) -> None:
    cfg = _cfg(
        files, "data.features.tactical=[log_return,atr_pct]", "data.features.strategic=[rsi_14]"
    )
    env = grandmodel.build_env(cfg)
    td = env.reset()
    assert td.get(("tactical", "observation")).shape == (2, 60, 2)
    assert td.get(("strategic", "observation")).shape == (2, 48, 1)
    assert env.data.tactical.feature_names == ("log_return", "atr_pct")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "data.features.tactical=[log_return,rsi_99]",
            r"data\.features\.tactical: unknown feature 'rsi_99'",
        ),
        (
            "data.features.strategic=[spread_pct]",
            r"data\.features\.strategic: 'spread_pct' needs the book file; set data\.book=<file>",
        ),
        (
            "data.features.tactical=[trade_count]",
            r"data\.features\.tactical: 'trade_count' needs trades; set data\.format=ticks",
        ),
        (
            "data.features.tactical=[atr_pct,atr_pct]",
            r"data\.features\.tactical: expected distinct feature names",
        ),
    ],
)
def test_bad_feature_lists_fail_with_one_line(files, override: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        grandmodel.prepare_data(_cfg(files, override))


def test_book_and_calendar_columns_are_observed_known_before_each_close(
    files, tmp_path: Path
) -> None:
    lists = [
        "data.features.tactical=[log_return,spread_pct,imbalance,hours_since_last,last_surprise]",
        f"data.book={files['book']}",
        f"data.events={files['events']}",
        "data.normalize=false",
    ]
    data = grandmodel.prepare_data(_cfg(files, *lists))
    known = data.tactical.known_ns.numpy()
    expected = align_known(book_features(read_book(files["book"], timezone=TZ)), known)
    rows = slice(data.tactical.warmup, None)
    np.testing.assert_allclose(
        data.tactical.features[rows, 1].numpy(), expected["spread_pct"].to_numpy()[rows], rtol=1e-6
    )
    # perturb every snapshot and release from T on: every bar known by T keeps its observation
    cut = int(known[len(known) // 2])
    book = pd.read_csv(files["book"])
    later = (
        pd.to_datetime(book["timestamp"]).dt.tz_localize(TZ).dt.as_unit("ns").astype("int64") >= cut
    )
    book.loc[later, "ask"] += 5.0
    book.loc[later, "bid_size"] *= 9
    events = pd.read_csv(files["events"])
    events.loc[
        pd.to_datetime(events["release_time"]).dt.tz_localize(TZ).dt.as_unit("ns").astype("int64")
        >= cut,
        "actual",
    ] = 999.0
    book.to_csv(tmp_path / "book.csv", index=False)
    events.to_csv(tmp_path / "events.csv", index=False)
    changed = grandmodel.prepare_data(
        _cfg(
            files,
            *lists[:1],
            f"data.book={tmp_path / 'book.csv'}",
            f"data.events={tmp_path / 'events.csv'}",
            "data.normalize=false",
        )
    )
    before = known <= cut
    np.testing.assert_array_equal(
        data.tactical.features.numpy()[before], changed.tactical.features.numpy()[before]
    )
    assert not np.array_equal(
        data.tactical.features.numpy()[~before], changed.tactical.features.numpy()[~before]
    )

"""Splits, embargo, train-only normalisation, cache, export, file formats and timeframes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import grandmodel
from grandmodel.config import validate
from grandmodel.data import NormStats, load_norm, save_norm
from grandmodel.data.features import OBSERVATION
from grandmodel.data.pipeline import prepare
from grandmodel.data.timeframes import periods_per_year
from tests.conftest import es_bars, write_csv


def _cfg(path: Path, outputs: Path, *overrides: str):
    return grandmodel.load_config(
        [
            "data=csv",
            f"data.path={path}",
            f"paths.outputs_dir={outputs}",
            "data.episode_length=64",
            *overrides,
        ]
    )


def test_splits_are_chronological_with_an_embargo_of_the_whole_lookback(
    es_csv: Path, outputs: Path
) -> None:
    data = grandmodel.prepare_data(_cfg(es_csv, outputs))
    (a0, a1), (b0, b1), (c0, c1) = (data.splits[k] for k in ("train", "val", "test"))
    assert a0 < a1 <= b0 < b1 <= c0 < c1
    for prev_stop, start in ((a1, b0), (b1, c0)):
        last = prev_stop - 1
        # none of the next split's look-back bars (window + warm-up) was seen by the previous split
        assert start - (data.window["tactical"] + data.tactical.warmup - 1) > last
        first_strategic = int(data.strategic_index[start]) - (
            data.window["strategic"] + data.strategic.warmup - 1
        )
        assert first_strategic > int(data.strategic_index[last])
    steps = {k: data.split_steps(k) for k in data.splits}
    total = sum(steps.values())
    assert abs(steps["train"] / total - 0.7) < 0.05


def test_normalisation_is_fitted_on_train_only(tmp_path: Path, outputs: Path) -> None:
    frame = es_bars(days=12)
    data_a = grandmodel.prepare_data(_cfg(write_csv(frame, tmp_path / "a.csv"), outputs))
    test_start = int(data_a.base.open_ns[data_a.fill_index[data_a.splits["val"][0]]])
    shifted = frame.copy()
    later = shifted.index.asi8 >= test_start
    shifted.loc[later, ["open", "high", "low", "close"]] *= 1.5
    shifted.loc[later, "volume"] *= 10
    data_b = grandmodel.prepare_data(_cfg(write_csv(shifted, tmp_path / "b.csv"), outputs))
    assert data_a.norm == data_b.norm
    train_rows = data_a.tactical.features[data_a.tactical.warmup : data_a.splits["train"][1]]
    scaled = np.array(data_a.norm["tactical"].scaled)
    assert np.allclose(train_rows.numpy()[:, scaled].mean(axis=0), 0, atol=0.05)
    assert np.allclose(train_rows.numpy()[:, scaled].std(axis=0), 1, atol=0.1)


def test_norm_stats_round_trip_through_json(es_csv: Path, outputs: Path, tmp_path: Path) -> None:
    data = grandmodel.prepare_data(_cfg(es_csv, outputs))
    path = save_norm(data.norm, tmp_path / "norm.json")
    assert load_norm(path) == data.norm
    assert list(load_norm(path)["strategic"].features) == list(OBSERVATION["strategic"])


def _prepare(cfg):
    return prepare(validate(cfg).data, Path(cfg.paths.cache_dir))


def test_a_models_norm_stats_are_used_instead_of_fitting(es_csv: Path, outputs: Path) -> None:
    cfg = _cfg(es_csv, outputs)
    fitted = grandmodel.prepare_data(cfg).norm
    given = {
        name: NormStats(s.features, [m + 1.0 for m in s.mean], [2.0 * d for d in s.std], s.scaled)
        for name, s in fitted.items()
    }
    data = grandmodel.prepare_data(cfg, norm=given)
    assert data.norm == given
    tactical = _prepare(cfg)[0].frames["tactical"][list(OBSERVATION["tactical"])].to_numpy()
    expected = given["tactical"].transform(tactical)
    assert np.array_equal(data.tactical.features.numpy(), expected)


def test_periods_per_year_from_the_data_config(es_csv: Path, outputs: Path) -> None:
    cfg = _cfg(es_csv, outputs, "data.session_hours=6.5")
    assert periods_per_year(cfg.data) == 6.5 * 3600 * 252 / 300
    assert periods_per_year(cfg.data, "strategic") == 6.5 * 252 * 2
    data = grandmodel.prepare_data(cfg)
    assert data.meta["periods_per_year"]["tactical"] == periods_per_year(validate(cfg).data)


def test_cache_hit_returns_identical_data(es_csv: Path, outputs: Path) -> None:
    cfg = _cfg(es_csv, outputs)
    first_tables, first = _prepare(cfg)
    second_tables, second = _prepare(cfg)
    assert (first_tables.info["cache"], second_tables.info["cache"]) == ("miss", "hit")
    assert len(list((outputs / "cache").iterdir())) == 1
    assert np.array_equal(first.strategic.features.numpy(), second.strategic.features.numpy())
    assert first.splits == second.splits
    windowed = _prepare(_cfg(es_csv, outputs, "data.window.tactical=30"))[0]
    assert windowed.info["cache"] == "hit", "windows and splits are applied after the cache"
    changed = _prepare(_cfg(es_csv, outputs, "data.on_duplicate=keep_last"))[0]
    assert changed.info["cache"] == "miss" and changed.info["key"] != first_tables.info["key"]


def test_aliases_date_time_columns_offsets_and_parquet_agree(tmp_path: Path, outputs: Path) -> None:
    frame = es_bars(days=12)
    reference = grandmodel.prepare_data(
        _cfg(write_csv(frame, tmp_path / "ref.csv"), outputs, "data.cache=false")
    )
    aliased = frame.reset_index()
    aliased.insert(0, "Date", aliased["timestamp"].dt.strftime("%m/%d/%Y"))
    aliased.insert(1, "Time", aliased["timestamp"].dt.strftime("%H:%M"))
    aliased = aliased.drop(columns="timestamp").rename(
        columns={"open": "Open", "high": "High", "low": "Low", "close": "Last", "volume": "Vol"}
    )
    aliased.to_csv(tmp_path / "aliased.csv", index=False)
    utc = frame.reset_index()
    utc["timestamp"] = utc["timestamp"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    utc.to_csv(tmp_path / "utc.csv", index=False)
    frame.reset_index().to_parquet(tmp_path / "bars.parquet")
    for name in ("aliased.csv", "utc.csv", "bars.parquet"):
        other = grandmodel.prepare_data(_cfg(tmp_path / name, outputs, "data.cache=false"))
        assert np.array_equal(other.base.open_ns.numpy(), reference.base.open_ns.numpy()), name
        assert np.array_equal(
            other.strategic.features.numpy(), reference.strategic.features.numpy()
        ), name


def test_close_stamps_are_shifted_to_open_stamps(tmp_path: Path, outputs: Path) -> None:
    frame = es_bars(days=12)
    reference = grandmodel.prepare_data(
        _cfg(write_csv(frame, tmp_path / "open.csv"), outputs, "data.cache=false")
    )
    closing = frame.copy()
    closing.index = closing.index + pd.Timedelta("1min")
    data = grandmodel.prepare_data(
        _cfg(
            write_csv(closing, tmp_path / "close.csv"),
            outputs,
            "data.cache=false",
            "data.bar_stamp=close",
        )
    )
    assert np.array_equal(data.base.open_ns.numpy(), reference.base.open_ns.numpy())
    assert np.array_equal(data.tactical.known_ns.numpy(), reference.tactical.known_ns.numpy())


def test_hourly_data_with_hourly_and_four_hour_timeframes(tmp_path: Path, outputs: Path) -> None:
    minute = es_bars(days=160, vol=2e-4)
    hourly = (
        minute.resample("1h")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna()
    )
    path = write_csv(hourly, tmp_path / "hourly.csv")
    data = grandmodel.prepare_data(
        _cfg(
            path,
            outputs,
            "data.timeframes.base=1h",
            "data.timeframes.tactical=1h",
            "data.timeframes.strategic=4h",
            "data.window.strategic=24",
            "data.window.tactical=24",
        )
    )
    assert (
        data.tactical.size_ns == pd.Timedelta("1h").value
        and data.strategic.size_ns == pd.Timedelta("4h").value
    )
    assert data.step_bars.shape[1] == 1 and int(data.step_count.max()) == 1
    assert len(data.tactical) == len(data.base)


def test_export_writes_the_unnormalised_table_with_timestamps(
    es_csv: Path, outputs: Path, tmp_path: Path, cli
) -> None:
    target = tmp_path / "features.parquet"
    result = cli(
        "grandmodel.data.prepare",
        "data=csv",
        f"data.path={es_csv}",
        "data.episode_length=64",
        f"data.export={target}",
    )
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(target)
    assert set(table["timeframe"]) == {"tactical", "strategic"}
    for column in (
        "timestamp",
        "known_at",
        "rsi_14",
        "macd",
        "macd_signal",
        "atr_14",
        "bb_upper",
        "bb_lower",
        "volume_sma",
        "volume_ratio",
        "trend_regime",
        "vol_regime",
        "market_session",
    ):
        assert column in table.columns, column
    assert table["rsi_14"].dropna().between(0, 100).all()
    assert "cache miss" in result.stdout and "split train" in result.stdout


def test_prepare_runs_on_the_default_synthetic_data(cli) -> None:
    result = cli("grandmodel.data.prepare")
    assert result.returncode == 0, result.stderr
    assert "synthetic:regime" in result.stdout
    for name in (
        "base 1min",
        "tactical 5min",
        "strategic 30min",
        "split train",
        "split val",
        "split test",
    ):
        assert name in result.stdout

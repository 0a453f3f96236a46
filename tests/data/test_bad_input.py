"""Every bad-input case: a one-line error naming file, line and column, and nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import grandmodel
from grandmodel.errors import DataError
from tests.conftest import es_bars, write_csv


def _prepare(path: Path, outputs: Path, *overrides: str):
    cfg = grandmodel.load_config(
        [
            "data=csv",
            f"data.path={path}",
            f"paths.outputs_dir={outputs}",
            "data.episode_length=64",
            *overrides,
        ]
    )
    return grandmodel.prepare_data(cfg)


def _frame(days: int = 12) -> pd.DataFrame:
    return (
        es_bars(days=days)
        .reset_index()
        .assign(timestamp=lambda f: f["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    )


def _edit(frame: pd.DataFrame, row: int, column: str, value: object) -> pd.DataFrame:
    frame = frame.astype({column: object}) if isinstance(value, str) else frame
    frame.loc[row, column] = value
    return frame


CASES = {
    "missing column": (lambda f: f.drop(columns=["volume"]), r"missing column 'volume'"),
    "unparsable timestamp": (
        lambda f: _edit(f, 40, "timestamp", "2023-13-45 99:00"),
        r"line 42, column 'timestamp': cannot parse '2023-13-45 99:00' as a timestamp",
    ),
    "non-numeric price": (
        lambda f: _edit(f, 7, "close", "abc"),
        r"line 9, column 'close': cannot parse 'abc' as a number",
    ),
    "NaN": (
        lambda f: _edit(f, 10, "high", np.nan),
        r"line 12, column 'open'|line 12, column 'high': .*NaN",
    ),
    "inf": (lambda f: _edit(f, 11, "low", np.inf), r"line 13, column 'low': .*infinite"),
    "high below low": (
        lambda f: _edit(f, 20, "high", f.loc[20, "low"] - 1.0),
        r"line 22, column 'high': .*below low",
    ),
    "open outside range": (
        lambda f: _edit(f, 21, "open", f.loc[21, "high"] + 5.0),
        r"line 23, column 'open': .*outside \[low, high\]",
    ),
    "close outside range": (
        lambda f: _edit(f, 22, "close", f.loc[22, "low"] - 5.0),
        r"line 24, column 'close': .*outside \[low, high\]",
    ),
    "non-positive price": (
        lambda f: _edit(
            _edit(_edit(_edit(f, 30, "low", 0.0), 30, "open", 0.0), 30, "close", 0.0),
            30,
            "high",
            0.0,
        ),
        r"line 32, column 'open': .*not positive",
    ),
    "negative volume": (
        lambda f: _edit(f, 50, "volume", -3.0),
        r"line 52, column 'volume': .*negative",
    ),
    "duplicate timestamp": (
        lambda f: _edit(f, 61, "timestamp", f.loc[60, "timestamp"]),
        r"line 63, column 'timestamp': duplicate timestamp",
    ),
    "unsorted timestamps": (
        lambda f: f.iloc[[*range(70), 71, 70, *range(72, len(f))]].reset_index(drop=True),
        r"line 73, column 'timestamp': .* is earlier than",
    ),
    "empty file": (lambda f: f.iloc[:0], r"no rows|empty file"),
    "fewer bars than the look-back": (
        lambda f: f.iloc[:2000],
        r"fewer bars than the longest look-back",
    ),
    "too short for the splits": (
        lambda f: f.iloc[:3200],
        r"too few bars: \d+ usable decision points",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_file_is_rejected_with_one_line_and_nothing_written(
    case: str, tmp_path: Path, outputs: Path
) -> None:
    edit, pattern = CASES[case]
    path = tmp_path / "bad.csv"
    edit(_frame()).to_csv(path, index=False)
    with pytest.raises(DataError, match=pattern) as info:
        _prepare(path, outputs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert not any(outputs.rglob("*")), f"something was written: {list(outputs.rglob('*'))}"


def test_missing_historical_file_says_where_and_which_columns(outputs: Path) -> None:
    cfg = grandmodel.load_config(
        ["data=es_2023", f"paths.outputs_dir={outputs}", "paths.data_dir=/nonexistent/data"]
    )
    with pytest.raises(DataError) as info:
        grandmodel.prepare_data(cfg)
    message = str(info.value)
    assert "/nonexistent/data/historical/ES_2023_2024.csv" in message
    assert "timestamp, open, high, low, close, volume" in message


def test_policies_repair_instead_of_failing(tmp_path: Path, outputs: Path) -> None:
    frame = _frame()
    frame = _edit(frame, 61, "timestamp", frame.loc[60, "timestamp"])  # duplicate
    frame = _edit(frame, 50, "volume", -3.0)  # invalid row
    frame = frame.iloc[[*range(70), 71, 70, *range(72, len(frame))]].reset_index(
        drop=True
    )  # unsorted
    path = tmp_path / "messy.csv"
    frame.to_csv(path, index=False)
    data = _prepare(
        path,
        outputs,
        "data.on_duplicate=keep_last",
        "data.on_unsorted=sort",
        "data.on_invalid_row=drop",
    )
    assert data.meta["removed"] == {"invalid_rows": 1, "duplicates": 1}
    assert len(data.base) == len(frame) - 2


def test_cli_error_is_one_line_exit_2_and_no_run_folder(cli, tmp_path: Path, outputs: Path) -> None:
    path = tmp_path / "bad.csv"
    _edit(_frame(), 20, "high", 1.0).to_csv(path, index=False)
    result = cli("grandmodel.data.prepare", "data=csv", f"data.path={path}")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: line 22, column 'high'"), (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert not any(outputs.rglob("*")), list(outputs.rglob("*"))


def test_cli_rejects_bad_config_value_before_work(cli, outputs: Path) -> None:
    result = cli("grandmodel.data.prepare", "data.splits.val=1.5")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: data.splits.val: must be in (0, 1), got 1.5; data.splits.test: train + val + test must be 1, got 2.35"
    ]
    assert not any(outputs.rglob("*"))


def test_file_on_wrong_grid_names_the_fix(tmp_path: Path, outputs: Path) -> None:
    frame = (
        es_bars()
        .resample("5min")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna()
    )
    path = write_csv(frame, tmp_path / "five.csv")
    with pytest.raises(
        DataError, match=r"bars are 0 days 00:05:00 apart but data\.timeframes\.base is 1min"
    ):
        _prepare(path, outputs)

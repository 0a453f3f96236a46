"""The backtest's range: the test split by default, a date range when start/end say so, and the
whole data only when asked (``range=all``), with an in-sample warning."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import grandmodel
from grandmodel.data.market_data import MarketData
from grandmodel.evaluation.commands import backtest_range
from grandmodel.evaluation.walk import RANGE, stamp


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> MarketData:
    outputs = tmp_path_factory.mktemp("outputs")
    return grandmodel.prepare_data(
        grandmodel.load_config(["experiment=smoke", f"paths.outputs_dir={outputs}"])
    )


def test_the_default_is_the_test_split_without_a_warning(
    data: MarketData, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = grandmodel.load_config(["run=x"], config_name="backtest")
    walked, split = backtest_range(data, cfg.range, cfg.start, cfg.end)
    assert (str(cfg.range), split) == ("test", "test")
    assert walked.splits["test"] == data.splits["test"]
    assert "warning" not in capsys.readouterr().err


def test_all_walks_every_decision_with_an_in_sample_warning(
    data: MarketData, capsys: pytest.CaptureFixture[str]
) -> None:
    walked, split = backtest_range(data, "all", None, None)
    first, last = int(data.meta["first_decision"]), int(data.meta["last_decision"])
    assert split == RANGE and walked.splits[RANGE] == (first, last + 1)
    err = capsys.readouterr().err
    assert "warning: the backtest" in err and "covers the model's train and val split" in err


def test_start_and_end_choose_the_range_and_warn_only_when_it_overlaps_training(
    data: MarketData, capsys: pytest.CaptureFixture[str]
) -> None:
    known, tz = data.tactical.known_ns.numpy(), str(data.meta["timezone"])
    test_start = stamp(known[data.splits["test"][0]], tz)
    walked, split = backtest_range(data, "test", test_start, None)
    assert split == RANGE and walked.splits[RANGE][0] >= data.splits["test"][0]
    assert "warning" not in capsys.readouterr().err
    train_start = stamp(known[data.splits["train"][0]], tz)
    end = str(pd.Timestamp(train_start) + pd.Timedelta(days=1))
    backtest_range(data, "test", train_start, end)
    assert "covers the model's train split" in capsys.readouterr().err


def test_backtest_rejects_an_unknown_range(tmp_path: Path) -> None:
    with pytest.raises(grandmodel.ConfigError, match="range"):
        grandmodel.load_config(["run=x", "range=everything"], config_name="backtest")

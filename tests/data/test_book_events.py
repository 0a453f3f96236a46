"""Order-book and economic-calendar features: hand-computed values, known only after their time
(perturb-the-future), and one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grandmodel.data.book import align_known, book_features, read_book
from grandmodel.data.economic import event_features, read_events
from grandmodel.errors import DataError

TZ = "America/Chicago"


def _book(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    stamps = pd.Timestamp("2023-03-06 08:00", tz=TZ) + pd.to_timedelta(
        np.sort(rng.integers(0, 3600, n)), unit="s"
    )
    bid = 4000 + np.round(np.cumsum(rng.choice([-0.25, 0, 0.25], n)) * 4) / 4
    frame = pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S")})
    for k in (1, 2):
        frame[f"bid_price_{k}"] = bid - 0.25 * (k - 1)
        frame[f"bid_size_{k}"] = rng.integers(1, 50, n)
        frame[f"ask_price_{k}"] = bid + 0.25 * k
        frame[f"ask_size_{k}"] = rng.integers(1, 50, n)
    return frame


def _bars_known(start: str, minutes: int) -> np.ndarray:
    opens = pd.date_range(start, periods=minutes, freq="1min", tz=TZ)
    return (opens + pd.Timedelta(minutes=1)).as_unit("ns").asi8


def test_book_features_by_hand(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "timestamp": ["2023-03-06 08:00:00"],
            "bid": [100.0],
            "bid_size": [10.0],
            "ask": [100.5],
            "ask_size": [30.0],
            "bid_price_2": [99.5],
            "bid_size_2": [5.0],
            "ask_price_2": [101.0],
            "ask_size_2": [5.0],
        }
    )
    frame.to_csv(tmp_path / "b.csv", index=False)
    row = book_features(read_book(tmp_path / "b.csv", timezone=TZ)).iloc[0]
    mid = 100.25
    assert row["spread_pct"] == pytest.approx(0.5 / mid)
    assert row["depth"] == 50.0
    assert row["imbalance"] == pytest.approx((15 - 35) / 50)
    assert row["microprice_pct"] == pytest.approx((100 * 30 + 100.5 * 10) / 40 / mid - 1)


def test_book_features_are_known_only_after_their_snapshot(tmp_path: Path) -> None:
    frame = _book()
    known = _bars_known("2023-03-06 07:58", 70)
    cut = pd.Timestamp("2023-03-06 08:30", tz=TZ)
    changed = frame.copy()
    later = pd.to_datetime(changed["timestamp"]).dt.tz_localize(TZ) >= cut
    changed.loc[later, ["bid_size_1", "ask_size_2"]] *= 3
    changed.loc[later, [c for c in changed if "price" in c]] += 1.0
    frame.to_csv(tmp_path / "a.csv", index=False)
    changed.to_csv(tmp_path / "b.csv", index=False)
    a = align_known(book_features(read_book(tmp_path / "a.csv", timezone=TZ)), known)
    b = align_known(book_features(read_book(tmp_path / "b.csv", timezone=TZ)), known)
    before = known <= cut.value
    pd.testing.assert_frame_equal(a[before], b[before])
    assert not a[~before].equals(b[~before])
    assert a.iloc[:2].isna().all().all()  # bars that closed before the first snapshot


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(columns="bid_price_1"), r"missing column 'bid_price_1'"),
        (lambda f: f.drop(columns="ask_size_2"), r"missing column 'ask_size_2'"),
        (
            lambda f: f.assign(ask_price_1=f["ask_price_1"].where(f.index != 3, 3000.0)),
            r"line 5, column 'ask_price_1': the book is crossed",
        ),
        (
            lambda f: f.assign(bid_size_2=f["bid_size_2"].where(f.index != 4, -1)),
            r"line 6, column 'bid_size_2': -1\.0; expected a size >= 0",
        ),
        (
            lambda f: f.iloc[[0, 2, 1, *range(3, len(f))]],
            r"line 4, column 'timestamp': .* is before the snapshot above it",
        ),
        (
            lambda f: f.assign(bid_size_1=f["bid_size_1"].astype(str).where(f.index != 7, "ten")),
            r"line 9, column 'bid_size_1': cannot parse 'ten'",
        ),
    ],
)
def test_bad_book_files_fail_with_one_line(tmp_path: Path, edit, message: str) -> None:
    frame = _book(n=20)
    frame["timestamp"] = pd.date_range("2023-03-06 08:00", periods=20, freq="1s").strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    edit(frame).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=message) as info:
        read_book(tmp_path / "bad.csv", timezone=TZ)
    assert "\n" not in str(info.value)


EVENTS = pd.DataFrame(
    {
        "release_time": ["2023-03-06 08:30:00", "2023-03-06 09:00:00", "2023-03-06 10:00:00"],
        "name": ["CPI", "ISM", "CPI"],
        "actual": [6.4, 48.0, None],
        "forecast": [6.0, 50.0, 6.1],
        "previous": [6.5, 47.0, 6.4],
    }
)


def test_event_features_by_hand(tmp_path: Path) -> None:
    EVENTS.to_csv(tmp_path / "e.csv", index=False)
    events = read_events(tmp_path / "e.csv", timezone=TZ)
    t = (
        pd.DatetimeIndex(
            [
                "2023-03-06 08:00",
                "2023-03-06 08:30",
                "2023-03-06 08:45",
                "2023-03-06 09:30",
                "2023-03-06 10:30",
            ],
            tz=TZ,
        )
        .as_unit("ns")
        .asi8
    )
    f = event_features(events, t)
    np.testing.assert_allclose(f["hours_to_next"], [0.5, 0.5, 0.25, 0.5, np.nan])
    # 08:30 is the release instant: not known yet; 10:00 has no actual: not a release
    np.testing.assert_allclose(f["hours_since_last"], [np.nan, np.nan, 0.25, 0.5, 1.5])
    np.testing.assert_allclose(f["last_surprise"], [np.nan, np.nan, 0.4 / 6.0, -2 / 50, -2 / 50])
    only_cpi = event_features(read_events(tmp_path / "e.csv", timezone=TZ, names=["CPI"]), t)
    np.testing.assert_allclose(
        only_cpi["last_surprise"], [np.nan, np.nan, 0.4 / 6.0, 0.4 / 6.0, 0.4 / 6.0]
    )


def test_event_features_are_known_only_after_the_release(tmp_path: Path) -> None:
    known = _bars_known("2023-03-06 07:00", 240)
    changed = EVENTS.copy()
    changed.loc[1:, ["actual", "forecast"]] = [[55.0, 40.0], [9.0, 1.0]]  # releases from 09:00 on
    EVENTS.to_csv(tmp_path / "a.csv", index=False)
    changed.to_csv(tmp_path / "b.csv", index=False)
    a = event_features(read_events(tmp_path / "a.csv", timezone=TZ), known)
    b = event_features(read_events(tmp_path / "b.csv", timezone=TZ), known)
    before = known <= pd.Timestamp("2023-03-06 09:00", tz=TZ).value
    pd.testing.assert_frame_equal(a[before], b[before])
    assert not a[~before].equals(b[~before])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(columns="forecast"), r"missing column 'forecast'"),
        (
            lambda f: f.assign(actual=["6.4", "high", ""]),
            r"line 3, column 'actual': cannot parse 'high'",
        ),
        (
            lambda f: f.assign(release_time=["2023-03-06 08:30", "soon", "2023-03-06 10:00"]),
            r"line 3, column 'release_time': cannot parse 'soon'",
        ),
        (lambda f: f.assign(name=["CPI", "", "CPI"]), r"line 3, column 'name': empty"),
    ],
)
def test_bad_calendars_fail_with_one_line(tmp_path: Path, edit, message: str) -> None:
    edit(EVENTS.copy()).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=message) as info:
        read_events(tmp_path / "bad.csv", timezone=TZ)
    assert "\n" not in str(info.value)

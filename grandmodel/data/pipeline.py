"""load → validate → resample → features → split → normalise → ``MarketData`` (with a Parquet cache).

The cache (``paths.cache_dir/<key>/``) holds the prepared, un-normalised tables; the key hashes the
source content (file bytes or generator settings), the data config and ``FEATURE_VERSION``. Only data
that passed validation is ever written, and each entry appears atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from grandmodel.config import typed
from grandmodel.config.base import timedelta_of
from grandmodel.config.data import DataConfig, FileFormat, Source
from grandmodel.console import progress
from grandmodel.data.alignment import align, chronological_splits
from grandmodel.data.features import (
    FEATURES,
    FITTED_FEATURES,
    SOURCE_FEATURES,
    compute_features,
    first_complete_row,
    realized_variance,
)
from grandmodel.data.hmm import RegimeFit, add_regime_features, fit_training_split
from grandmodel.data.loader import read_ohlcv
from grandmodel.data.market_data import Bars, MarketData
from grandmodel.data.normalise import NormStats
from grandmodel.data.resample import resample_bars
from grandmodel.data.sources import add_sources, observed
from grandmodel.data.ticks import read_ticks, ticks_to_bars
from grandmodel.data.timeframes import TIMEFRAMES, bar_sizes, periods_per_year
from grandmodel.errors import DataError

log = logging.getLogger(__name__)

# 2: k-day bars count trading days; 3: order-book and calendar columns; 4: momentum_k columns;
# 5: realized_var and realized_vol_k columns; 6: realized_vol_k floored (no move is not NaN)
FEATURE_VERSION = 6


@dataclass
class Tables:
    """Prepared pandas tables per timeframe (what the cache stores) and where they came from."""

    frames: dict[str, pd.DataFrame]
    info: dict[str, Any] = field(default_factory=dict)


def prepare_data(cfg: Any, norm: dict[str, NormStats] | None = None) -> MarketData:
    """Build :class:`MarketData` from the composed config (its ``data`` and ``paths.cache_dir``).

    ``cfg`` may also be a run's stored config. ``norm``: a trained model's normalisation statistics,
    used instead of fitting new ones (so a model sees other data exactly as it saw its training data).
    """
    return prepare(typed(cfg.data, DataConfig), Path(cfg.paths.cache_dir), norm)[1]


def prepare(
    data_cfg: DataConfig, cache_dir: Path, norm: dict[str, NormStats] | None = None
) -> tuple[Tables, MarketData]:
    """Prepared tables and ``MarketData``; the tables are cached only once everything has passed."""
    with progress(2, f"preparing data={data_cfg.name}", log) as advance:
        tables = load_tables(data_cfg, cache_dir)
        bars = len(tables.frames["base"])
        hit = "from the cache" if tables.info.get("cache") == "hit" else "read and computed"
        advance(f"{bars:,} base bars {hit} ({tables.info.get('source', 'data')})")
        computed = tables.frames  # what the cache holds: not the fitted features
        fits = cache_dir / "regime_fits" / tables.info["key"] if data_cfg.cache else None
        data = assemble(tables, data_cfg, norm, fits)
        if tables.info["cache"] == "miss":
            _write_cache(cache_dir / tables.info["key"], computed, tables.info)
        steps = {name: hi - lo for name, (lo, hi) in data.splits.items()}
        advance(f"aligned, split and normalised: decisions per split {steps}")
    return tables, data


def load_tables(data_cfg: DataConfig, cache_dir: Path) -> Tables:
    """Prepared tables from the cache when the key matches, else computed (see :func:`prepare`)."""
    key, source = cache_key(data_cfg)
    folder = cache_dir / key
    if data_cfg.cache and (folder / "info.json").is_file():
        info = json.loads((folder / "info.json").read_text())
        frames = {name: pd.read_parquet(folder / f"{name}.parquet") for name in TIMEFRAMES}
        return Tables(frames, {**info, "cache": "hit"})
    frames, info = _compute_tables(data_cfg, source)
    return Tables(
        frames, {**info, "key": key, "source": source, "cache": "miss" if data_cfg.cache else "off"}
    )


def cache_key(data_cfg: DataConfig) -> tuple[str, str]:
    """(key, human-readable source). The key covers the content and every setting that shapes it."""
    settings = asdict(data_cfg)
    names = (
        "format",
        "timezone",
        "bar_stamp",
        "on_duplicate",
        "on_unsorted",
        "on_invalid_row",
        "timeframes",
    )
    relevant = {name: settings[name] for name in names}
    for name in ("book", "events"):
        extra = getattr(data_cfg, name)
        if extra:
            relevant[name] = _digest(Path(extra), f"data.{name}")
    relevant["event_names"] = settings["event_names"]
    if data_cfg.source == Source.synthetic:
        relevant["synthetic"] = settings["synthetic"]
        source = f"synthetic:{data_cfg.synthetic.generator}"
    else:
        path = Path(str(data_cfg.path))
        if not path.is_file():
            raise DataError(missing_file_message(path, data_cfg))
        with path.open("rb") as handle:
            relevant["file_sha256"] = hashlib.file_digest(handle, "sha256").hexdigest()
        source = str(path)
    relevant["feature_version"] = FEATURE_VERSION
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]
    return digest, source


def _digest(path: Path, key: str) -> str:
    if not path.is_file():
        raise DataError(f"{path}: file not found ({key}); expected a CSV or Parquet file")
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def missing_file_message(path: Path, data_cfg: DataConfig) -> str:
    if path.is_dir():
        return f"{path}: is a folder; expected an OHLCV CSV or Parquet file (data.path=<file>)"
    return (
        f"{path}: file not found; put the {data_cfg.timeframes.base} OHLCV bars there (CSV or Parquet with columns "
        f"timestamp, open, high, low, close, volume; timestamps in {data_cfg.timezone} unless they carry "
        "an offset) or point data.path at your file"
    )


def _compute_tables(
    data_cfg: DataConfig, source: str
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    info: dict[str, Any] = {"removed": {}}
    if data_cfg.source == Source.synthetic:
        from grandmodel.data.synthetic import generate

        base = generate(data_cfg.synthetic, timezone=data_cfg.timezone)
    elif data_cfg.format == FileFormat.ticks:
        trades = read_ticks(
            str(data_cfg.path), timezone=data_cfg.timezone, on_unsorted=data_cfg.on_unsorted
        )
        base = ticks_to_bars(trades, bar_sizes(data_cfg)["base"])
    else:
        base, info["removed"] = read_ohlcv(
            str(data_cfg.path),
            timezone=data_cfg.timezone,
            base=data_cfg.timeframes.base,
            bar_stamp=data_cfg.bar_stamp,
            on_duplicate=data_cfg.on_duplicate,
            on_unsorted=data_cfg.on_unsorted,
            on_invalid_row=data_cfg.on_invalid_row,
        )
    base.index = base.index.as_unit("ns")
    base = _date_range(base, data_cfg, source)
    frames = build_tables(base, bar_sizes(data_cfg))
    add_sources(frames, data_cfg)
    return frames, info


def _date_range(base: pd.DataFrame, data_cfg: DataConfig, source: str) -> pd.DataFrame:
    """Bars opening in ``[data.start, data.end)`` (timestamps read in the data's timezone)."""
    if not data_cfg.start and not data_cfg.end:
        return base
    keep = np.ones(len(base), dtype=bool)
    if data_cfg.start:
        keep &= base.index >= _localized(data_cfg.start, data_cfg.timezone)
    if data_cfg.end:
        keep &= base.index < _localized(data_cfg.end, data_cfg.timezone)
    if not keep.any():
        first, last = base.index[0], base.index[-1]
        raise DataError(
            f"{source}: no bars between data.start={data_cfg.start} and data.end={data_cfg.end} (the data covers {first} to {last})"
        )
    return base[keep]


def _localized(text: str, tz: str) -> pd.Timestamp:
    stamp = pd.Timestamp(text)
    return stamp.tz_convert(tz) if stamp.tzinfo is not None else stamp.tz_localize(tz)


def build_tables(base: pd.DataFrame, size: dict[str, pd.Timedelta]) -> dict[str, pd.DataFrame]:
    """Resample (strategic from tactical bars: same bins, fewer rows) and compute features."""
    tactical = resample_bars(base, size["tactical"], size["base"])
    strategic = resample_bars(tactical, size["strategic"], size["tactical"])
    for bars in (tactical, strategic):
        bars["realized_var"] = realized_variance(base, bars)
    return {
        "base": base,
        "tactical": compute_features(tactical),
        "strategic": compute_features(strategic),
    }


def _write_cache(folder: Path, frames: dict[str, pd.DataFrame], info: dict[str, Any]) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        for name, frame in frames.items():
            frame.to_parquet(staging / f"{name}.parquet")
        stored = {k: v for k, v in info.items() if k != "cache"}
        (staging / "info.json").write_text(json.dumps(stored, indent=2, default=str))
        if folder.exists():  # another process cached the same key meanwhile
            shutil.rmtree(staging)
        else:
            os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def assemble(
    tables: Tables,
    data_cfg: DataConfig,
    given_norm: dict[str, NormStats] | None = None,
    fits: Path | None = None,
) -> MarketData:
    """Alignment, splits, train-only normalisation (or ``given_norm``) and tensors; the fitted
    features (``data/hmm.py``) are added to ``tables.frames`` as new tables, their fit read from or
    kept in the folder ``fits`` (``None``: always fitted)."""
    frames, size = tables.frames, bar_sizes(data_cfg)
    window = {"strategic": data_cfg.window.strategic, "tactical": data_cfg.window.tactical}
    source = tables.info.get("source", "data")
    columns_of = observed(data_cfg)
    fitted = {n: c for n, c in columns_of.items() if any(x in FITTED_FEATURES for x in c)}
    warm = {  # the fitted features are finite from the first bar (and not there yet)
        name: first_complete_row(frames[name], tuple(c for c in cols if c not in FITTED_FEATURES))
        for name, cols in columns_of.items()
    }
    need = {name: warm[name] + window[name] for name in warm}
    if (
        len(frames["strategic"]) < need["strategic"] + 2
        or len(frames["tactical"]) < need["tactical"] + 2
    ):
        raise DataError(
            f"{source}: fewer bars than the longest look-back: {len(frames['strategic'])} {data_cfg.timeframes.strategic} "
            f"bars and {len(frames['tactical'])} {data_cfg.timeframes.tactical} bars, but observations need "
            f"{need['strategic']} and {need['tactical']} (window + indicator warm-up) before the first decision"
        )
    tac_known = frames["tactical"]["known_ns"].to_numpy(np.int64)
    al = align(
        frames["base"].index.asi8,
        tac_known,
        frames["strategic"]["known_ns"].to_numpy(np.int64),
        int(size["tactical"] / size["base"]),
        need["tactical"],
        need["strategic"],
    )
    embargo = timedelta_of(data_cfg.splits.embargo) if data_cfg.splits.embargo else None
    fractions = {name: getattr(data_cfg.splits, name) for name in ("train", "val", "test")}
    splits = chronological_splits(
        al, tac_known, fractions, need["tactical"], need["strategic"], embargo, source
    )
    train_steps = splits["train"][1] - splits["train"][0] - 1
    episode_length = adapted_episode_length(data_cfg, train_steps, source)
    if episode_length > train_steps:
        raise DataError(
            f"{source}: data.episode_length={data_cfg.episode_length} is longer than the train split "
            f"({train_steps} decision steps); lower data.episode_length or use more data"
        )
    last_train = splits["train"][1] - 1
    regime = None
    if fitted:  # on copies: ``tables`` then hold the fitted columns too, the cache does not
        frames = tables.frames = dict(frames)
        given = next((given_norm[n].regime for n in fitted), None) if given_norm else None
        if given_norm and given is None:
            raise DataError(
                f"{source}: the model's normalisation statistics hold no regime fit for its "
                f"{sorted({c for cols in fitted.values() for c in cols if c in FITTED_FEATURES})}; "
                "expected statistics saved with the fitted features"
            )
        if given is None:
            train = (splits["train"][0], last_train)
            regime = fit_training_split(
                frames["base"], tac_known, train, size, data_cfg.regime_fit, fits
            )
        else:
            regime = RegimeFit.from_dict(given)
        add_regime_features(frames, fitted, regime)
    rows_used = {"tactical": last_train + 1, "strategic": int(al.strategic_index[last_train]) + 1}
    norm, bars = {}, {}
    for name in ("tactical", "strategic"):
        frame, columns = frames[name], list(columns_of[name])
        values = frame[columns].to_numpy(np.float64)
        scaled = [(FEATURES.get(c) or SOURCE_FEATURES[c])[1] == "scaled" for c in columns]
        fit_rows = values[warm[name] : rows_used[name]]
        fitted_on = {
            "first": str(frame.index[warm[name]]),
            "last": str(frame.index[rows_used[name] - 1]),
        }
        norm[name] = (
            _given(given_norm[name], columns, source)
            if given_norm
            else NormStats.fit(
                fit_rows,
                columns,
                scaled,
                fitted_on=fitted_on,
                regime=regime.to_dict() if regime and name in fitted else None,
            )
        )
        features = (
            norm[name].transform(values)
            if data_cfg.normalize
            else np.nan_to_num(values).astype(np.float32)
        )
        bars[name] = _bars(name, frame, size[name], features, tuple(columns), warm[name])
    bars["base"] = _bars("base", frames["base"], size["base"], None, (), 0)
    regime = (
        frames["tactical"]["regime"].to_numpy(np.int64) if "regime" in frames["tactical"] else None
    )
    meta = {
        **tables.info,
        "timezone": data_cfg.timezone,
        "timeframes": {k: getattr(data_cfg.timeframes, k) for k in TIMEFRAMES},
        "periods_per_year": {k: periods_per_year(data_cfg, k) for k in TIMEFRAMES},
        "episode_length": episode_length,
        "first_decision": al.first_decision,
        "last_decision": al.last_decision,
    }
    return MarketData(
        base=bars["base"],
        tactical=bars["tactical"],
        strategic=bars["strategic"],
        strategic_index=_tensor(al.strategic_index, np.int64),
        strategic_decision=_tensor(al.strategic_decision, np.bool_),
        fill_index=_tensor(al.fill_index, np.int64),
        step_bars=_tensor(al.step_bars, np.int64),
        step_count=_tensor(al.step_count, np.int64),
        regime=None if regime is None else _tensor(regime, np.int64),
        splits=splits,
        norm=norm,
        window=window,
        meta=meta,
    )


def adapted_episode_length(data_cfg: DataConfig, train_steps: int, source: str) -> int:
    """``data.episode_length``; the schema's default (2000 decisions, a week of ES 5-minute bars) is
    cut to a quarter of the train split when longer, so that daily or short data still yields several
    distinct training windows (docs/architecture.md, "Instruments and trading time"), with a note."""
    length = data_cfg.episode_length
    if length != DataConfig.episode_length or length <= train_steps // 4:
        return length
    adapted = max(2, train_steps // 4)
    print(
        f"note: {source}: data.episode_length adapted from the default {length} to {adapted} "
        f"(a quarter of the {train_steps}-step train split); set data.episode_length to choose",
        file=sys.stderr,
    )
    return adapted


def _given(stats: NormStats, columns: list[str], source: str) -> NormStats:
    """A model's statistics, when they describe exactly these feature columns."""
    if list(stats.features) != columns:
        raise DataError(
            f"{source}: the model's normalisation statistics cover features {list(stats.features)}, "
            f"but the data has {columns}; prepare the data with the model's feature set"
        )
    return stats


def _bars(
    name: str,
    frame: pd.DataFrame,
    size: pd.Timedelta,
    features: np.ndarray | None,
    names: tuple[str, ...],
    warmup: int,
) -> Bars:
    open_ns = frame.index.as_unit("ns").asi8
    known = frame["known_ns"].to_numpy(np.int64) if "known_ns" in frame else open_ns + size.value

    def col(c: str) -> torch.Tensor:
        return _tensor(frame[c].to_numpy(), np.float64)

    return Bars(
        name=name,
        size_ns=int(size.value),
        open_ns=_tensor(open_ns, np.int64),
        known_ns=_tensor(known, np.int64),
        open=col("open"),
        high=col("high"),
        low=col("low"),
        close=col("close"),
        volume=None if name == "base" else col("volume"),
        features=None if features is None else torch.from_numpy(features),
        feature_names=names,
        warmup=warmup,
    )


def _tensor(values: np.ndarray, dtype: type) -> torch.Tensor:
    """A contiguous, writable tensor that owns its memory."""
    return torch.from_numpy(np.array(values, dtype=dtype, order="C", copy=True))


def export_table(tables: Tables, path: str | Path) -> Path:
    """Write the prepared, un-normalised tactical and strategic tables (long format) to Parquet."""
    path = Path(path)
    if path.is_dir():
        raise DataError(
            f"{path}: is a folder; expected a file name ending in .parquet (data.export)"
        )
    parts = []
    for name in ("tactical", "strategic"):
        frame = tables.frames[name].copy()
        frame.insert(0, "timeframe", name)
        frame["known_at"] = pd.to_datetime(frame.pop("known_ns"), utc=True).dt.tz_convert(
            frame.index.tz
        )
        parts.append(frame.drop(columns=["first", "last"]).reset_index())
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(parts, ignore_index=True).to_parquet(path)
    return path

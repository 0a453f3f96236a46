"""Observation features per role (``data.features``) and the columns of other sources than the
bars: trade counts of bars built from trades, order-book snapshots and an economic calendar, each
bar's value known strictly before its close
(docs/architecture.md, "Time and look-ahead")."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from grandmodel.config.data import DataConfig, FileFormat
from grandmodel.data.book import align_known, book_features, read_book
from grandmodel.data.economic import event_features, read_events
from grandmodel.data.features import FEATURES, OBSERVATION, SOURCE_FEATURES
from grandmodel.errors import DataError


def observed(data_cfg: DataConfig) -> dict[str, tuple[str, ...]]:
    """The observation features of each role: ``data.features.<role>`` or the default set, checked."""
    out: dict[str, tuple[str, ...]] = {}
    for role in ("tactical", "strategic"):
        names = tuple(getattr(data_cfg.features, role) or OBSERVATION[role])
        for name in names:
            if name not in FEATURES and name not in SOURCE_FEATURES:
                known = ", ".join([*FEATURES, *SOURCE_FEATURES])
                raise DataError(
                    f"data.features.{role}: unknown feature {name!r}; expected names from {known}"
                )
            source = SOURCE_FEATURES.get(name, ("", "", ""))[2]
            if source == "format" and data_cfg.format != FileFormat.ticks:
                raise DataError(
                    f"data.features.{role}: {name!r} needs trades; set data.format=ticks"
                )
            if source in ("book", "events") and not getattr(data_cfg, source):
                raise DataError(
                    f"data.features.{role}: {name!r} needs the {source} file; set data.{source}=<file>"
                )
        if len(set(names)) != len(names) or not names:
            raise DataError(
                f"data.features.{role}: expected distinct feature names, got {list(names)}"
            )
        out[role] = names
    return out


def keep_model_features(data: Any, model_data: Any) -> None:
    """Set ``data.features`` (a data config node, plain or structured) to the lists of the model
    trained with ``model_data``: the features a model observes are part of the model, so another
    source it is evaluated or adapted on feeds the same ones (docs/architecture.md)."""
    for role, names in OmegaConf.to_container(model_data.features, resolve=True).items():
        data.features[role] = names


def add_sources(frames: dict[str, pd.DataFrame], data_cfg: DataConfig) -> None:
    """Order-book and calendar columns on the tactical and strategic tables, each bar's value known
    strictly before its close (``data/book.py``, ``data/economic.py``)."""
    book = events = None
    if data_cfg.book:
        book = book_features(read_book(data_cfg.book, timezone=data_cfg.timezone))
    if data_cfg.events:
        events = read_events(
            data_cfg.events, timezone=data_cfg.timezone, names=data_cfg.event_names
        )
    for name in ("tactical", "strategic"):
        frame, known = frames[name], frames[name]["known_ns"].to_numpy(np.int64)
        if "trades" in frame:  # bars built from trades: the bar's own trades only
            frame["trade_count"] = frame["trades"].astype(np.float64)
            volume = frame["volume"].to_numpy(np.float64)
            signed = frame["signed_volume"].to_numpy(np.float64)
            frame["signed_volume_ratio"] = np.where(
                volume > 0, signed / np.where(volume > 0, volume, 1.0), 0.0
            )
        parts = [] if book is None else [align_known(book, known)]
        if events is not None:
            values = event_features(events, known)
            values["hours_to_next"] = values["hours_to_next"].fillna(24 * 365).clip(upper=24 * 365)
            parts.append(values)
        for part in parts:
            for column in part.columns:
                frame[column] = part[column].to_numpy()

"""Decision-clock alignment and chronological splits with an embargo (docs/architecture.md, "Time
and look-ahead")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from grandmodel.errors import DataError


@dataclass
class Alignment:
    strategic_index: np.ndarray
    strategic_decision: np.ndarray
    fill_index: np.ndarray
    step_bars: np.ndarray
    step_count: np.ndarray
    first_decision: int  # first decision whose windows (and their warm-up) are complete
    last_decision: int  # last decision that has a next decision (inclusive)


def align(
    base_open_ns: np.ndarray,
    tactical_known_ns: np.ndarray,
    strategic_known_ns: np.ndarray,
    bars_per_tactical: int,
    tactical_need: int,
    strategic_need: int,
) -> Alignment:
    """Index maps from each tactical close to the strategic and base bars known / tradable then.

    ``tactical_need`` / ``strategic_need``: bars of each timeframe a decision must have behind it
    (window + feature warm-up).
    """
    n_tac = len(tactical_known_ns)
    strategic_index = np.searchsorted(strategic_known_ns, tactical_known_ns, side="right") - 1
    strategic_decision = np.concatenate(([True], strategic_index[1:] != strategic_index[:-1]))
    fill_index = np.searchsorted(base_open_ns, tactical_known_ns, side="left")
    next_fill = np.concatenate((fill_index[1:], [len(base_open_ns)]))
    step_count = np.clip(next_fill - fill_index, 0, bars_per_tactical)
    offsets = np.arange(bars_per_tactical)
    step_bars = fill_index[:, None] + np.minimum(
        offsets[None, :], np.maximum(step_count - 1, 0)[:, None]
    )
    step_bars = np.clip(step_bars, 0, len(base_open_ns) - 1)
    ok = (np.arange(n_tac) >= tactical_need - 1) & (strategic_index >= strategic_need - 1)
    first = int(np.argmax(ok)) if ok.any() else n_tac
    last = n_tac - 2
    while last >= 0 and (step_count[last] == 0 or fill_index[last] >= len(base_open_ns)):
        last -= 1
    return Alignment(
        strategic_index, strategic_decision, fill_index, step_bars, step_count, first, last
    )


def chronological_splits(
    al: Alignment,
    tactical_known_ns: np.ndarray,
    fractions: dict[str, float],
    tactical_need: int,
    strategic_need: int,
    embargo: pd.Timedelta | None,
    source: str,
) -> dict[str, tuple[int, int]]:
    """train / val / test ranges ``[start, stop)`` of decision points, in that order, with embargoes.

    A later split starts only when none of its look-back bars (window + warm-up, on both timeframes)
    were used by the split before it, and at least ``embargo`` after that split's last decision.
    """
    first, last = al.first_decision, al.last_decision
    n = last - first + 1
    gap = max(tactical_need, strategic_need * _tactical_per_strategic(al))
    usable = n - 2 * gap
    if n <= 0 or usable <= 3:
        raise DataError(
            f"{source}: too few bars: {n} usable decision points after the look-back of {tactical_need} tactical "
            f"and {strategic_need} strategic bars (window + warm-up); need well over {2 * gap} "
            "to fit train/val/test with embargoes"
        )
    splits: dict[str, tuple[int, int]] = {}
    start, prev_last = first, first
    names = list(fractions)
    for i, name in enumerate(names):
        if i:
            start = _after_embargo(
                al, tactical_known_ns, prev_last, start, tactical_need, strategic_need, embargo
            )
        stop = (
            last + 1
            if i == len(names) - 1
            else min(start + round(fractions[name] * usable), last + 1)
        )
        if stop - start < 2:
            raise DataError(
                f"{source}: too few bars for the {name} split after the embargo ({max(stop - start, 0)} decision points)"
            )
        splits[name] = (start, stop)
        prev_last, start = stop - 1, stop
    return splits


def _tactical_per_strategic(al: Alignment) -> int:
    changes = np.flatnonzero(al.strategic_decision)
    return max(int(np.median(np.diff(changes))), 1) if len(changes) > 1 else 1


def _after_embargo(
    al: Alignment,
    tactical_known_ns: np.ndarray,
    prev_last: int,
    start: int,
    tactical_need: int,
    strategic_need: int,
    embargo: pd.Timedelta | None,
) -> int:
    t = np.arange(len(al.fill_index))
    ok = (t >= start) & (t - (tactical_need - 1) > prev_last)
    ok &= al.strategic_index - (strategic_need - 1) > al.strategic_index[prev_last]
    if embargo is not None:
        ok &= tactical_known_ns - tactical_known_ns[prev_last] >= embargo.value
    return int(np.argmax(ok)) if ok.any() else len(t)

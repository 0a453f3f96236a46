"""Per-env portfolio and episode state: a dict of ``[B]`` (or ``[B, W]``) tensors."""

from __future__ import annotations

import torch

F64, I64 = torch.float64, torch.int64

# name -> (dtype, initial value; None = filled in by the caller)
FIELDS: dict[str, tuple[torch.dtype, float | None]] = {
    "ptr": (I64, None),  # decision index (tactical bar) of the current observation
    "end": (I64, None),  # decision index where the episode is truncated
    "steps": (I64, 0),  # steps taken in the episode
    "position": (F64, 0.0),  # signed contracts
    "avg_price": (F64, 0.0),  # average entry price of the open position (0 when flat)
    "realised": (F64, 0.0),  # gross realised PnL in the episode
    "costs": (F64, 0.0),  # costs paid in the episode
    "equity": (F64, None),  # capital + realised - costs + unrealised at the last mark
    "peak": (F64, None),  # highest equity in the episode
    "max_drawdown": (F64, 0.0),  # max over the episode of 1 - equity / peak
    "direction": (I64, 0),  # strategic direction in force (-1, 0, 1)
    "stop": (F64, float("nan")),  # protective stop level (NaN when flat)
    "bars_in_trade": (I64, 0),
    "trade_pnl": (F64, 0.0),  # net PnL of the open trade so far (realised legs minus costs)
    "win_rate": (F64, 0.5),  # exponential average of wins over closed trades
    "trades": (I64, 0),  # closed round trips in the episode
    "wins": (I64, 0),
    "dsr_a": (F64, 0.0),  # Moody & Saffell moving first moment of step returns
    "dsr_b": (F64, 0.0),  # ... and second moment
}
WINDOWED = ("returns", "sorted_returns")  # [B, W]: last W step returns, in time and in sorted order
# float32: the window only feeds the float32 VaR feature (rounding to float32 keeps the order, so
# the k-th smallest is the rounded k-th smallest), and it halves the step's heaviest memory traffic
WINDOW_DTYPE = torch.float32

State = dict[str, torch.Tensor]


def fresh_state(n: int, window: int, capital: float, device: torch.device) -> State:
    """State of ``n`` envs at the start of an episode (``ptr``/``end`` still to be chosen)."""
    state = {}
    for name, (dtype, value) in FIELDS.items():
        fill = capital if name in ("equity", "peak") else 0 if value is None else value
        state[name] = torch.full((n,), fill, dtype=dtype, device=device)
    for name in WINDOWED:
        state[name] = torch.zeros((n, window), dtype=WINDOW_DTYPE, device=device)
    return state


def replace_rows(state: State, mask: torch.Tensor, other: State) -> State:
    """Rows where ``mask`` is true take ``other``'s values (partial reset)."""
    out = {}
    for name, mine in state.items():
        m = mask.view(-1, *([1] * (mine.dim() - 1)))
        out[name] = torch.where(m, other[name], mine)
    return out

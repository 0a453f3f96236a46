"""Keep freed heap memory for reuse (glibc): the batched env's per-step tensors stop faulting pages in.

A 1024-env step returns 4.2 MB of observation windows (float32 ``[60, 7]`` + ``[48, 13]`` per env)
and frees the previous step's. glibc's ``malloc`` serves blocks above its mmap threshold (128 KiB,
raised on the fly up to 32 MiB) with ``mmap`` and gives freed memory at the top of the heap back
to the kernel once more than the trim threshold is free; the next step then faults every page of
its new tensors in again (a zeroed page per 4 KiB). At 1024 envs that was ~23% of the process's
time in the kernel and made a pure observation gather 3x slower than the copy itself
(experiments/env_throughput/README.md, 2026-11-30). PyTorch's CPU tuning guide suggests jemalloc
or tcmalloc through ``LD_PRELOAD`` for the same reason; :func:`keep_freed_memory` gets the effect
in-process, without a preload, by fixing glibc's three thresholds with ``mallopt(3)``:

- ``M_MMAP_THRESHOLD`` 32 MiB: blocks below it come from the heap (replay storage and datasets,
  larger, keep their own mappings);
- ``M_TRIM_THRESHOLD`` ``keep_mb``: up to that much free memory stays in the heap;
- ``M_TOP_PAD`` 64 MiB: the heap grows in steps of at least that.

Process-wide and idempotent; a no-op (returning False) where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc <malloc.h>
MMAP_THRESHOLD = 32 << 20  # glibc's upper bound for M_MMAP_THRESHOLD on 64-bit
TOP_PAD = 64 << 20

_applied: int | None = None


def keep_freed_memory(keep_mb: int) -> bool:
    """Have glibc keep up to ``keep_mb`` MiB of freed memory for reuse (``0``: leave its defaults).
    True when the thresholds are set (now or by an earlier call with the same value)."""
    global _applied
    if keep_mb <= 0 or platform.libc_ver()[0] != "glibc":
        return False
    if _applied == keep_mb:
        return True
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    settings = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (M_TOP_PAD, TOP_PAD),
        (M_TRIM_THRESHOLD, keep_mb << 20),
    )
    ok = all(libc.mallopt(option, value) == 1 for option, value in settings)
    _applied = keep_mb if ok else None
    return ok

"""Checkpoint files: one place to save, load and restore them (a leaf service any layer may call).

- **Load** always with ``torch.load(weights_only=True)``: a tampered pickle is refused, never run.
- **Save** atomically: the bytes go to a temporary file in the same folder, are fsynced, then renamed
  over the target (and the folder fsynced), so ``last.ckpt`` is either the old or the new checkpoint,
  never half-written, whatever kills the process. Lightning writes through :class:`AtomicCheckpointIO`.
- **Restore** checks the architecture first: a checkpoint of another network size is refused with one
  line naming the config keys that differ, instead of a shape-mismatch traceback.

Two kinds exist (see docs/architecture.md, "Checkpoints"): full ones (``last.ckpt``: learners,
optimisers, replay buffers, env state, RNGs, callback states; what ``ckpt_path=`` resumes from) and
weights-only ones (``best-*.ckpt``: weights, config, normalisation statistics; what evaluation,
export and frozen roles use).
"""

from __future__ import annotations

import io
import os
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from grandmodel.errors import GrandModelError

LAST = "last.ckpt"
# agent keys that no longer exist, dropped from the configs stored in older checkpoints so their
# runs still evaluate, export and serve as frozen roles: ``epsilon_decay`` (a DQN's ε per collected
# batch, replaced by ``exploration_fraction`` on 2026-11-30) only shaped training's exploration
RETIRED_AGENT_KEYS = ("epsilon_decay",)


def run_checkpoint(folder: Path, key: str = "run") -> Path:
    """The checkpoint a run folder stands for: its best (``best-*.ckpt``, the latest), else
    ``last.ckpt``; ``key`` is the setting that named the folder (for the error line)."""
    best = sorted((folder / "checkpoints").glob("best-*.ckpt"))
    if best:
        return best[-1]
    last = folder / "checkpoints" / "last.ckpt"
    if last.is_file():
        return last
    raise GrandModelError(
        f"{key}={folder}: no checkpoint in {folder / 'checkpoints'}; expected best-*.ckpt or last.ckpt"
    )


def acting_learners(checkpoint: Mapping[str, Any]) -> list[str]:
    """The roles acting by their trained learner in ``checkpoint``: its run's ``agent.learn``
    without the roles still waiting for their learning phase when it was written
    (``agent.phases``, ``grandmodel/training/phases.py``), which act by their baselines."""
    extra = checkpoint.get("grandmodel", {})
    waiting = set(extra.get("waiting", ()))
    learn = extra.get("config", {}).get("agent", {}).get("learn", ())
    return [role for role in learn if role not in waiting]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint read with ``weights_only=True``, on the CPU."""
    path = Path(path)
    if path.is_dir():
        raise GrandModelError(f"{path}: is a folder; expected a checkpoint file (.ckpt)")
    if not path.is_file():
        raise GrandModelError(f"{path}: checkpoint not found; expected a checkpoint file (.ckpt)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling refusal or truncated file is reported the same way
        first = _first_line(exc)
        raise GrandModelError(
            f"{path}: not a loadable GrandModel checkpoint ({first}); expected a file written by training"
        ) from None
    _drop_retired_keys(checkpoint)
    return checkpoint


def _drop_retired_keys(checkpoint: Any) -> None:
    """Remove :data:`RETIRED_AGENT_KEYS` from the stored agent and frozen-role configs."""
    extra = checkpoint.get("grandmodel") if isinstance(checkpoint, dict) else None
    if not isinstance(extra, dict):
        return
    agent = (
        extra.get("config", {}).get("agent", {}) if isinstance(extra.get("config"), dict) else {}
    )
    roles = [node for node in agent.values() if isinstance(node, dict)]
    roles += [node for node in (extra.get("frozen") or {}).values() if isinstance(node, dict)]
    for node in roles:
        for key in RETIRED_AGENT_KEYS:
            node.pop(key, None)


def is_full(checkpoint: Mapping[str, Any]) -> bool:
    """A full (resumable) checkpoint, as opposed to a weights-only one."""
    return "optimizer_states" in checkpoint and "source" in checkpoint.get("grandmodel", {})


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save(obj)`` to ``path`` through a temporary file, fsync and rename."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomic(buffer.getvalue(), path)


def write_atomic(data: bytes, path: str | Path) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_partial(folder: Path) -> None:
    """Delete temporary files a killed writer left behind (they are never read)."""
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with :func:`save_atomic` writes and ``weights_only`` loads.

    ``kill_during_save=N`` (a drill, ``conf/debug/kill.yaml``): the N-th write of this process
    stops with SIGKILL halfway through its temporary file, as a crash mid-write would.
    """

    def __init__(self, kill_during_save: int | None = None) -> None:
        super().__init__()
        self.kill_during_save, self.saves = kill_during_save, 0

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        self.saves += 1
        if self.saves == self.kill_during_save:
            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)
            tmp = Path(path).parent / f".{Path(path).name}.drill.tmp"
            tmp.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as handle:
                handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                handle.flush()
                os.fsync(handle.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        save_atomic(checkpoint, path)

    def load_checkpoint(
        self, path: Any, map_location: Callable | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_checkpoint(path)


def architecture_mismatch(
    checkpoint: Mapping[str, Any], expected: Mapping[str, torch.Tensor], prefix: str = ""
) -> list[str]:
    """Parameter names (under ``prefix``) whose presence or shape differ between a checkpoint's
    ``state_dict`` and ``expected`` (a module's ``state_dict()``)."""
    stored = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    wanted = {k: v for k, v in expected.items() if k.startswith(prefix)}
    differ = sorted(set(stored) ^ set(wanted))
    differ += sorted(k for k in set(stored) & set(wanted) if stored[k].shape != wanted[k].shape)
    return differ


def config_differences(
    saved: Mapping[str, Any], current: Mapping[str, Any], under: str
) -> list[str]:
    """Dotted keys under ``under`` whose values differ between two config trees (plain dicts)."""

    def leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
        if isinstance(node, Mapping):
            for key, value in node.items():
                yield from leaves(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            yield prefix, node

    node_a, node_b = saved, current
    for part in under.split("."):
        node_a = node_a.get(part, {}) if isinstance(node_a, Mapping) else {}
        node_b = node_b.get(part, {}) if isinstance(node_b, Mapping) else {}
    a, b = dict(leaves(node_a, under)), dict(leaves(node_b, under))
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def check_architecture(
    path: str | Path,
    checkpoint: Mapping[str, Any],
    expected: Mapping[str, torch.Tensor],
    current_config: Mapping[str, Any],
    prefix: str = "",
) -> None:
    """Refuse, with one line naming the differing config keys, a checkpoint whose network shapes
    differ from ``expected``."""
    differ = architecture_mismatch(checkpoint, expected, prefix)
    if not differ:
        return
    saved = checkpoint.get("grandmodel", {}).get("config", {})
    keys = [
        k
        for under in ("agent", "data.window", "data.features")
        for k in config_differences(saved, current_config, under)
    ]
    named = ", ".join(keys[:6]) if keys else f"parameter {differ[0]}"
    raise GrandModelError(
        f"{path}: the checkpoint's networks do not fit this configuration ({named} differ); "
        "expected a checkpoint trained with the same agent and data window settings"
    )


def _first_line(exc: BaseException) -> str:
    """Why torch refused the file, in a few words (no ANSI escapes, no advice to unpickle it)."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    if "Weights only load failed" in text:
        return "it holds Python objects besides tensors and plain values, which are never unpickled"
    if "PytorchStreamReader" in text or not text or text.isdigit():
        return "truncated, or not a file written by torch.save"
    first = re.split(r"(?<=[.:])\s", text.splitlines()[0])[0]
    return first.rstrip(".:")[:200]

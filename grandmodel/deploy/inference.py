"""``InferencePolicy``: the three agents of an exported bundle on ONNX Runtime, NumPy in and out.

This module imports neither torch nor torchrl (a test checks it): a production process needs
``numpy``, ``onnxruntime`` and this file's package. Loading verifies the SHA-256 of every file of the
bundle against ``metadata.json`` (see :mod:`grandmodel.deploy.manifest`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from grandmodel.deploy.manifest import read_verified
from grandmodel.errors import GrandModelError

ROLES = ("strategic", "tactical", "risk")
REGISTRY_PREFIX = "models:/"


class InferencePolicy:
    """Raw features in (as ``metadata.json`` describes), the env's actions out, for all three roles."""

    def __init__(
        self,
        folder: Path,
        metadata: dict[str, Any],
        sessions: dict[str, ort.InferenceSession | None],
    ) -> None:
        self.folder, self.metadata, self.sessions = folder, metadata, sessions
        self.inputs = {role: metadata["roles"][role]["input"] for role in ROLES}
        self.dtypes = {role: np.dtype(spec["dtype"]) for role, spec in self.inputs.items()}
        self.shapes = {role: tuple(spec["shape"][1:]) for role, spec in self.inputs.items()}
        self.rng = np.random.default_rng(int(metadata["training"].get("seed") or 0))

    @classmethod
    def load(
        cls, source: str | Path, *, threads: int = 1, tracking_uri: str | None = None
    ) -> InferencePolicy:
        """From a bundle folder or a registered model (``models:/<name>@<alias>`` or ``/<version>``).

        ``threads``: ONNX Runtime intra-op threads per graph (1 is fastest at small batches).
        """
        text = str(source)
        if text.startswith(REGISTRY_PREFIX):
            from grandmodel.tracking.registry import download_bundle

            folder = download_bundle(text, tracking_uri)
        else:
            folder = Path(text)
        metadata = read_verified(folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        sessions: dict[str, ort.InferenceSession | None] = {}
        for role in ROLES:
            graph = metadata["roles"][role].get("onnx")
            sessions[role] = None if graph is None else _session(folder / graph, options)
        return cls(folder, metadata, sessions)

    def decide(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Actions of every role for a batch ``[B, ...]`` (or one unbatched observation per role).

        strategic: int64 direction (0 short, 1 flat, 2 long); tactical: float32 ``[entry_timing,
        stop_distance, position_scale]`` within the env's bounds; risk: int64 index into the
        risk caps. ``metadata["combination"]`` says how they make a target position.
        """
        missing = [role for role in ROLES if role not in observations]
        if missing:
            raise GrandModelError(
                f"observations: no {', '.join(missing)} entry; expected one array per role {list(ROLES)}"
            )
        out: dict[str, np.ndarray] = {}
        for role in ROLES:
            x, single = self._batch(role, observations[role])
            session = self.sessions[role]
            if session is None:  # a rule the consumer applies (the random strategic baseline)
                action = self.rng.integers(0, 3, size=x.shape[0], dtype=np.int64)
            else:
                action = session.run(None, {self.inputs[role]["name"]: x})[0]
            out[role] = action[0] if single else action
        return out

    def _batch(self, role: str, value: np.ndarray) -> tuple[np.ndarray, bool]:
        x = np.ascontiguousarray(value, dtype=self.dtypes[role])
        shape = self.shapes[role]
        single = x.shape == shape
        if single:
            x = x[None]
        if x.shape[1:] != shape:
            raise GrandModelError(
                f"observations[{role!r}]: shape {list(np.shape(value))}; expected "
                f"[batch, {', '.join(map(str, shape))}] (see roles.{role}.input in metadata.json)"
            )
        return x, single


def _session(path: Path, options: ort.SessionOptions) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # opset or operator this runtime does not know, corrupt protobuf
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise GrandModelError(
            f"{path}: ONNX Runtime {ort.__version__} cannot load it ({first}); expected a graph "
            "this runtime supports (see versions.onnx_opset in metadata.json)"
        ) from None

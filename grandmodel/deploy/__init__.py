"""Deploying a trained system: the export bundle (torch side) and the ONNX Runtime inference policy.

``InferencePolicy`` is importable without torch; :func:`export_bundle` (heavy) loads on first use.
"""

from __future__ import annotations

from typing import Any

from grandmodel.deploy.inference import InferencePolicy

__all__ = ["InferencePolicy", "export_bundle"]


def __getattr__(name: str) -> Any:
    if name == "export_bundle":
        from grandmodel.deploy.bundle import export_bundle

        return export_bundle
    raise AttributeError(f"module 'grandmodel.deploy' has no attribute {name!r}")

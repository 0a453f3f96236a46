"""Deploying a trained system: the export bundle (``grandmodel.deploy.bundle``, torch side) and the
ONNX Runtime :class:`InferencePolicy` (importable without torch)."""

from grandmodel.deploy.inference import InferencePolicy

__all__ = ["InferencePolicy"]

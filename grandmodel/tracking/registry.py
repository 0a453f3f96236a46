"""Exported bundles in MLflow: an ``mlflow.pyfunc`` model, its ``export`` run and the Model Registry.

The pyfunc model holds the whole bundle folder (the three ONNX graphs, ``metadata.json`` and the
rest) as its artifact and predicts through :class:`~grandmodel.deploy.InferencePolicy`: input a
dict with one array per role (raw features, as the signature names them), output the dict of
actions. It is logged in an ``export`` run nested under the training run and registered under a
name with an alias (``models:/<name>@candidate``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient
from mlflow.types import Schema, TensorSpec
from omegaconf import DictConfig

from grandmodel.deploy.inference import ROLES, InferencePolicy
from grandmodel.errors import GrandModelError

ARTIFACT = "bundle"  # the model's name in the run, and the bundle's key among its artifacts


class BundleModel(PythonModel):
    """The three agents of a bundle behind ``predict({role: array}) -> {role: actions}``."""

    # the signature logged with the model is the schema; MLflow's type-hint validation would
    # expect a list of instances instead of a dict of batched arrays
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        self.policy = InferencePolicy.load(context.artifacts[ARTIFACT])

    def predict(self, context, model_input, params=None):  # hints would be read as a schema
        return self.policy.decide({role: np.asarray(model_input[role]) for role in ROLES})


def signature(metadata: dict[str, Any]) -> ModelSignature:
    """One named tensor input per role and one named output per role, as ``metadata.json`` says."""

    def spec(entry: dict[str, Any], role: str) -> TensorSpec:
        return TensorSpec(np.dtype(entry["dtype"]), tuple(entry["shape"]), role)

    roles = metadata["roles"]
    return ModelSignature(
        inputs=Schema([spec(roles[r]["input"], r) for r in ROLES]),
        outputs=Schema([spec(roles[r]["output"], r) for r in ROLES]),
    )


def _environment() -> None:
    """Fail fast on an unreachable store; no progress bars in a CLI's one-line output."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _client(uri: str) -> MlflowClient:
    _environment()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(uri)


def training_record(run_id: str | None, uri: str | None) -> dict[str, Any]:
    """Tags (commit, data hash) and ``final/*`` metrics of a training run; {} when unknown."""
    if not run_id or not uri:
        return {}
    try:
        run = _client(uri).get_run(run_id)
    except Exception:  # the record is informative: an unreachable store means "unknown"
        return {}
    tags = run.data.tags
    final = {k: v for k, v in sorted(run.data.metrics.items()) if k.startswith("final/")}
    out = {key: tags[key] for key in ("git_commit", "data_hash") if key in tags}
    return out | {"metrics": final, "experiment_id": run.info.experiment_id}


def log_export(
    bundle: Path,
    metadata: dict[str, Any],
    logger: DictConfig,
    settings: DictConfig,
    parent_run_id: str | None,
    paths: DictConfig,
) -> dict[str, str] | None:
    """Log ``bundle`` as a pyfunc model in an ``export`` run (nested under ``parent_run_id``),
    register a new version of ``settings.registered_name`` and point ``settings.alias`` at it.

    Returns the export run id, the version and the model URI; None (with a warning) when the
    store cannot be used: the bundle on disk is complete either way.
    """
    uri, name = str(logger.tracking_uri), str(settings.registered_name)
    location = logger.artifact_location or (
        (Path(paths.outputs_dir) / "mlartifacts" / str(logger.experiment_name)).resolve().as_uri()
    )
    try:
        client = _client(uri)
        experiment_id = _experiment(
            client, parent_run_id, str(logger.experiment_name), str(location)
        )
        tags = {"kind": "export", "mlflow.runName": f"export-{metadata['name']}"}
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        parity = metadata.get("parity", {})
        mlflow.set_tracking_uri(uri)
        with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run:
            mlflow.log_params({"bundle": metadata["name"], "registered_name": name})
            mlflow.log_metrics(
                {k: float(v) for k, v in parity.items() if isinstance(v, int | float) and v == v}
            )
            with warnings.catch_warnings(), _quiet("mlflow"):
                warnings.simplefilter("ignore")
                info = mlflow.pyfunc.log_model(
                    name=ARTIFACT,
                    python_model=BundleModel(),
                    artifacts={ARTIFACT: str(bundle)},
                    signature=signature(metadata),
                    pip_requirements=[
                        f"onnxruntime=={metadata['versions']['onnxruntime']}",
                        f"numpy=={metadata['versions']['numpy']}",
                    ],
                    registered_model_name=name,
                )
        version = str(info.registered_model_version)
        client.set_registered_model_alias(name, str(settings.alias), version)
    except Exception as exc:  # the bundle is on disk; registration can be repeated
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        warnings.warn(f"could not register the export in MLflow {uri} ({first})", stacklevel=2)
        return None
    return {
        "run_id": run.info.run_id,
        "version": version,
        "model_uri": f"models:/{name}@{settings.alias}",
    }


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """MLflow's advice while logging (cloudpickle, requirements) is for other uses than this one."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _experiment(client: MlflowClient, parent: str | None, name: str, location: str) -> str:
    if parent:
        try:
            return client.get_run(parent).info.experiment_id
        except MlflowException:
            pass  # the training run is in another store: file the export under ``name``
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=location)


def download_bundle(model_uri: str, uri: str | None = None) -> Path:
    """The bundle folder of a registered model (``models:/<name>@<alias>`` or ``/<version>``)."""
    _environment()
    if uri:
        mlflow.set_tracking_uri(uri)
    target = Path(tempfile.mkdtemp(prefix="grandmodel-bundle-"))
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(target))
    except MlflowException as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise GrandModelError(
            f"{model_uri}: not found in the registry ({first}); expected models:/<name>@<alias>"
        ) from None
    found = sorted(Path(local).glob("artifacts/*/metadata.json"))
    if not found:
        raise GrandModelError(f"{model_uri}: holds no bundle; expected a model logged by export")
    return found[0].parent

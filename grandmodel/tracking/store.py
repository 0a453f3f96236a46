"""The MLflow tracking store behind a run, and the replay of a local record into it.

Everything that talks to MLflow for a run goes through :func:`connect` and :func:`replay`; a store
that does not answer raises :class:`StoreUnavailable` (one line naming the store), which the
:class:`~grandmodel.tracking.tracker.Tracker` turns into a warning and a later retry.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from grandmodel.tracking.identity import COMPARE_VIEW, experiment_tags
from grandmodel.tracking.record import LocalRecord, finite

MAX_BATCH = 900  # MLflow's log_batch takes at most 1000 metrics per call


class StoreUnavailable(Exception):
    """The tracking store did not answer (server gone, connection refused, database locked)."""


def connect(uri: str, timeout: float = 5.0):
    """An ``MlflowClient`` for ``uri`` that has answered once (fails fast: no minutes of retries)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(max(timeout, 1))))
    try:
        from mlflow.tracking import MlflowClient

        if uri.startswith("sqlite:///"):
            Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)
        return client
    except Exception as exc:
        raise StoreUnavailable(describe(uri, exc)) from None


def describe(uri: str, exc: BaseException) -> str:
    """``MLflow tracking store <uri>: <first line of the failure>``."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    first = (text.splitlines() or [type(exc).__name__])[0][:200]
    return f"MLflow tracking store {uri}: {first}"


def experiment_id(client, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment ``name``, created when missing, with the tags of
    :func:`~grandmodel.tracking.identity.experiment_tags` (the ``compare`` view kept up to date,
    the kind set once: the UI lets a person change it)."""
    tags = experiment_tags()
    found = client.get_experiment_by_name(name)
    if found is None:
        return client.create_experiment(name, artifact_location=artifact_location, tags=tags)
    for key, value in tags.items():
        if key not in found.tags or (key.endswith(COMPARE_VIEW) and found.tags[key] != value):
            client.set_experiment_tag(found.experiment_id, key, value)
    return found.experiment_id


def create_run(client, start: dict[str, Any]) -> str:
    """A new run from a record's ``start`` op."""
    experiment = experiment_id(client, start["experiment"], start.get("artifact_location"))
    tags = {k: str(v) for k, v in start.get("tags", {}).items()}
    tags["mlflow.runName"] = str(start["name"])
    if start.get("parent"):
        tags["mlflow.parentRunId"] = str(start["parent"])
    return client.create_run(experiment, tags=tags).info.run_id


def replay(record: LocalRecord, client) -> str:
    """Apply the record's unsynced operations to the store; returns the run id.

    The run is created from the ``start`` op if the store has never seen it. Points keep their
    recorded step and timestamp, so a replay writes what the live run would have written.
    """
    from mlflow.entities import Metric

    run_id = record.run_id
    if run_id is None:
        start = record.start_op()
        if start is None:
            raise ValueError(f"{record.path}: no start operation; expected a run's local record")
        run_id = create_run(client, start)
        record.run_id = run_id
    pending: list[Metric] = []
    done = record.synced

    def flush() -> None:
        for i in range(0, len(pending), MAX_BATCH):
            client.log_batch(run_id, metrics=pending[i : i + MAX_BATCH])
        pending.clear()

    for end, op in record.ops(done):
        kind = op["op"]
        if kind == "metrics":
            pending += [
                Metric(key, float(value), int(op["timestamp"]), int(op["step"]))
                for key, value in op["metrics"].items()
                if finite(value)
            ]
            done = end
            continue
        flush()
        if kind == "params":
            _log_params(client, run_id, op["params"])
        elif kind == "tags":
            for key, value in op["tags"].items():
                client.set_tag(run_id, key, str(value))
        elif kind == "artifact":
            if Path(op["path"]).exists():
                client.log_artifact(run_id, op["path"], op.get("folder"))
        elif kind == "status":
            if op["status"] == "RUNNING":
                client.update_run(run_id, status="RUNNING")
            else:
                client.set_terminated(run_id, op["status"], end_time=int(op["timestamp"]))
        elif kind == "input":
            log_dataset(client, run_id, op["dataset"])
        record.synced = done = end
    flush()
    record.synced = done
    return run_id


def _log_params(client, run_id: str, params: dict[str, Any]) -> None:
    """Params the run does not have yet; a changed value (a resumed run with another override)
    becomes the tag ``changed.<key>`` since MLflow params cannot change."""
    from mlflow.entities import Param

    have = client.get_run(run_id).data.params
    new = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in have]
    for i in range(0, len(new), 100):
        client.log_batch(run_id, params=new[i : i + 100])
    for key, value in params.items():
        if key in have and have[key] != str(value)[:6000]:
            client.set_tag(run_id, f"changed.{key}", str(value)[:5000])


def log_dataset(client, run_id: str, dataset: dict[str, Any]) -> None:
    """The data a run used as an MLflow dataset input (name, digest, source, range)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    entity = Dataset(
        name=str(dataset["name"]),
        digest=str(dataset["digest"])[:36],
        source_type="local",
        source=str(dataset.get("source", "")),
        schema=None,
        profile=str(dataset.get("profile", "")),
    )
    tags = [InputTag("mlflow.data.context", str(dataset.get("context", "training")))]
    client.log_inputs(run_id, datasets=[DatasetInput(entity, tags)])


def now_ms() -> int:
    return int(time.time() * 1000)

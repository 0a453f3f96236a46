"""One smoke training run (MLflow in a SQLite store under a temporary folder) exported once, shared
by the deploy tests: training and export are the slow parts."""

from __future__ import annotations

import pytest

from tests.deploy.helpers import Exported, run_module


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    outputs = tmp_path_factory.mktemp("deploy")
    run_dir = outputs / "runs" / "smoke"
    paths = [f"paths.outputs_dir={outputs}"]
    trained = run_module(
        "grandmodel.train", "experiment=smoke", *paths, f"paths.output_dir={run_dir}"
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    export = run_module("grandmodel.export", f"run={run_dir}", "name=smoke", *paths)
    assert export.returncode == 0, export.stderr[-3000:]
    run_id = (run_dir / "mlflow_run_id").read_text().strip()
    return Exported(outputs, run_dir, run_id, outputs / "exports" / "smoke", export.stdout)

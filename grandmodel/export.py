"""``python -m grandmodel.export run=<run dir | MLflow run id | checkpoint> [out=...] [name=...]``.

Writes the run's trained system as a self-contained bundle (``outputs/exports/<name>/``: ONNX graphs
and state dicts per role, ``metadata.json``, ``production.yaml``, ``parity.json``), then logs it to
MLflow as a model in an ``export`` run nested under the training run and registers it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from grandmodel import cli
from grandmodel.config import register_configs, validate
from grandmodel.console import make_console
from grandmodel.errors import reported

register_configs()


def export(cfg: DictConfig) -> dict[str, Any]:
    """Export as ``cfg`` says; returns the bundle folder, its metadata and the registry entry."""
    from grandmodel.deploy.bundle import export_bundle
    from grandmodel.evaluation.runs import resolve_run
    from grandmodel.tracking.identity import git_commit
    from grandmodel.tracking.registry import log_export, training_record

    validate(cfg)
    uri = str(cfg.logger.tracking_uri) if cfg.logger.kind == "mlflow" else None
    run = resolve_run(str(cfg.run), uri)
    name = str(cfg.name or (run.output_dir or run.checkpoint_path.parent).name)
    out = Path(cfg.out) if cfg.out else Path(cfg.paths.outputs_dir) / "exports" / name
    training = {
        "run_id": run.run_id,
        "checkpoint": run.checkpoint_path.name,
        "seed": int(run.config.seed),
        "data": str(run.config.data.name),
        "export_git_commit": git_commit(),
        **training_record(run.run_id, uri),
    }
    metadata = export_bundle(
        run, out, name=name, settings=cfg.export, paths=cfg.paths, training=training,
        overwrite=bool(cfg.overwrite),
    )  # fmt: skip
    parity = metadata["parity"]
    console = make_console()
    console.print(
        f"bundle: {out} (parity on {sum(parity['observations_from'].values())} observations per "
        f"role: passed; joint batch-1 p99 {parity['onnx_joint_batch1_p99_us']:.0f} µs on ONNX Runtime)"
    )
    registered = None
    if uri and cfg.export.register:
        registered = log_export(out, metadata, cfg.logger, cfg.export, run.run_id, cfg.paths)
    if registered:
        console.print(f"registered {registered['model_uri']} (version {registered['version']}, "
                      f"MLflow run {registered['run_id']})")  # fmt: skip
    return {"bundle": out, "metadata": metadata, "registered": registered}


@hydra.main(config_path="../conf", config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with reported(run_dir=HydraConfig.get().runtime.output_dir):
        export(cfg)


if __name__ == "__main__":
    cli.run(main, "export", "grandmodel.export")

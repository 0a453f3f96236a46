"""Where a resumed training continues: ``resume=<run folder | MLflow run id>`` or
``ckpt_path=<run>/checkpoints/last.ckpt`` run again in that run's folder, with its overrides.

Hydra picks the run folder before any code of ours runs, so the entry point rewrites its command
line first: ``hydra.run.dir`` becomes the run's folder and, for ``resume=``, the run's own overrides
(``.hydra/overrides.yaml``) come back, minus those of a single session (``SESSION_KEYS``), with the
command line's own overrides on top (e.g. ``trainer.total_frames=…`` to train longer).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from grandmodel.errors import GrandModelError

SESSION_KEYS = ("ckpt_path", "resume", "trainer.stop_after_frames", "faults.", "hydra.run.dir")


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def resume_command_line(args: list[str], config_name: str = "train") -> list[str]:
    """``args`` (Hydra overrides of ``config_name``'s tool) rewritten to continue the run they
    name; unchanged otherwise."""
    given = {_key(a): a.split("=", 1)[1] for a in args if "=" in a}
    if given.get("resume") in (None, "null") and given.get("ckpt_path") in (None, "null"):
        return args
    if any(_key(a) == "hydra.run.dir" for a in args):
        return args
    from grandmodel.checkpoints import is_full, load_checkpoint  # torch: only when resuming

    if given.get("resume") not in (None, "null"):
        folder = run_folder(given["resume"], args, config_name)
        last = folder / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise GrandModelError(
                f"resume={given['resume']}: {last} does not exist; expected a run that wrote a checkpoint"
            )
        saved = folder / ".hydra" / "overrides.yaml"
        original = yaml.safe_load(saved.read_text()) if saved.is_file() else []
        mine = {_key(a) for a in args}
        kept = [o for o in original if not _key(o).startswith(SESSION_KEYS) and _key(o) not in mine]
        args = [*kept, *(a for a in args if _key(a) != "resume"), f"ckpt_path={last}"]
        checkpoint = last
    else:
        checkpoint = Path(given["ckpt_path"]).resolve()
    if not is_full(load_checkpoint(checkpoint)):  # before Hydra writes into the run's folder
        raise GrandModelError(
            f"ckpt_path={given.get('ckpt_path', checkpoint)}: holds weights only (a best-policy "
            "checkpoint); expected checkpoints/last.ckpt of the run to resume"
        )
    if checkpoint.parent.name != "checkpoints":
        return args
    return [*args, f"hydra.run.dir={checkpoint.parent.parent}"]


def run_folder(spec: str, args: list[str], config_name: str = "train") -> Path:
    """The folder of the run ``spec`` names (a folder, or an MLflow run id of the configured store)."""
    from grandmodel.tracking import is_run_id, locate_run

    path = Path(spec)
    if path.is_dir():
        return path.resolve()
    if not is_run_id(spec):
        raise GrandModelError(f"resume={spec}: not a run folder or an MLflow run id; expected one")
    from grandmodel.config import load_config

    others = [a for a in args if _key(a) not in ("resume", "ckpt_path")]
    cfg = load_config(others, config_name=config_name)
    if cfg.logger.kind != "mlflow":
        raise GrandModelError(
            f"resume={spec}: logger.kind={cfg.logger.kind} has no MLflow store; expected logger=mlflow"
        )
    found = locate_run(str(cfg.logger.tracking_uri), spec, float(cfg.logger.connect_timeout))
    if found.output_dir is None:
        raise GrandModelError(
            f"resume={spec}: the run's folder is gone; expected its output_dir on this machine"
        )
    return found.output_dir

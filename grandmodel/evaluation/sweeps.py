"""Sweeps in the tracking store: one parent run per ``--multirun`` with a child run per trial, and a summary.

Registered as a Hydra callback (``conf/hydra/default.yaml``). Before the first trial it checks the
search space's keys against the composed config; after each trial it records the trial's outcome in
the sweep folder; at the end it writes the summary onto the parent run: every trial (params,
metric, state), the best trial, parameter importance, the Pareto front of multi-objective sweeps,
and the Deflated Sharpe Ratio of the best trial given the number of trials.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from grandmodel.console import make_console
from grandmodel.data.timeframes import periods_per_year
from grandmodel.errors import one_line
from grandmodel.evaluation.front import non_dominated, plot_front
from grandmodel.evaluation.statistics import deflated_sharpe_ratio
from grandmodel.tracking import LocalRecord, Tracker, finished_trial, git_commit

TRIALS = "trials"
log = logging.getLogger(__name__)


class SweepTracking(Callback):
    """Parent tracked run, search-space check and end-of-sweep summary for ``--multirun``."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        unknown = unknown_keys(config)
        if unknown:
            print(
                f"error: hydra.sweeper.params: unknown config key {unknown[0]!r}; expected a key of the composed config",
                file=sys.stderr,
            )
            raise SystemExit(2)
        sweep_dir = Path(config.hydra.sweep.dir)
        (sweep_dir / TRIALS).mkdir(parents=True, exist_ok=True)
        if config.logger.kind != "mlflow":
            return
        sweeper = config.hydra.sweeper
        params = {f"search.{k}": str(v)[:500] for k, v in (sweeper.get("params") or {}).items()}
        params["sweeper"] = str(sweeper.get("_target_", "basic")).rsplit(".", 1)[-1]
        Tracker.open(
            config.logger,
            sweep_dir,
            name=f"sweep-{sweep_dir.name}",
            tags={
                "kind": "sweep",
                "git_commit": git_commit(),
                "sweep_dir": str(sweep_dir.resolve()),
            },
            params=params,
        )

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """One line per trial as it starts (the sweep's progress; Hydra's launcher owns the loop)."""
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        total = OmegaConf.select(config, "hydra.sweeper.n_trials")
        of = f" of {total}" if total else ""
        overrides = " ".join(config.hydra.overrides.task)
        log.info("trial %s%s starting: %s", config.hydra.job.num, of, overrides)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        hydra_cfg = job_return.hydra_cfg.hydra if job_return.hydra_cfg else None
        if hydra_cfg is None or str(hydra_cfg.mode) != "RunMode.MULTIRUN":
            return
        output = Path(hydra_cfg.runtime.output_dir)
        record: dict[str, Any] = {
            "number": int(hydra_cfg.job.num),
            "overrides": list(job_return.overrides or []),
        }
        if job_return.status == JobStatus.COMPLETED and not (output / "failed").is_file():
            value = job_return.return_value
            record["values"] = (
                [float(v) for v in value] if isinstance(value, list | tuple) else [float(value)]
            )
            record["state"] = "PRUNED" if (output / "pruned").is_file() else "COMPLETE"
        elif (output / "failed").is_file():
            record["values"], record["state"] = None, "FAIL"
            record["error"] = (output / "failed").read_text().strip()[:300]
        else:
            record["values"], record["state"] = None, "FAIL"
            record["error"] = (
                str(job_return._return_value).splitlines()[0][:300]
                if job_return._return_value
                else "failed"
            )
        record["run_id"] = LocalRecord(output).run_id
        returns = output / "val_returns.npy"
        record["val_returns"] = str(returns) if returns.is_file() else None
        folder = output.parent / TRIALS  # the job's folder is <sweep dir>/<job number>
        folder.mkdir(parents=True, exist_ok=True)
        if record["state"] == "FAIL" and config.logger.kind == "mlflow":
            record["run_id"] = _record_failure(config, output, record)
        (folder / f"{record['number']:04d}.json").write_text(json.dumps(record))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        summary = summarise(config, sweep_dir)
        if summary is None:
            return
        make_console().print(summary_table(config, summary))
        if config.logger.kind != "mlflow":
            return
        parent = Tracker(
            sweep_dir,
            str(config.logger.tracking_uri),
            timeout=float(config.logger.connect_timeout),
        )
        for path in summary["files"]:
            parent.log_artifact(path)
        parent.log_metrics({k: v for k, v in summary["metrics"].items() if v == v})
        parent.log_params({f"best.{k}": str(v)[:500] for k, v in summary["best_params"].items()})
        if summary.get("best_run_id"):
            parent.set_tags({"best_run_id": summary["best_run_id"]})
        parent.finish("FINISHED")


def summary_table(config: DictConfig, summary: dict[str, Any]) -> Table:
    """What a ``--multirun`` prints at its end: every trial (its swept values, state, objective,
    MLflow run), the best one marked."""
    table: pd.DataFrame = summary["table"]
    names = list(config.get("objectives") or [config.optimized_metric])
    best = summary.get("best_run_id")
    swept = [c for c in table.columns if c not in ("number", "state", "run_id", *names)]
    shown = Table(title=f"Sweep {Path(config.hydra.sweep.dir).name}: {len(table)} trials")
    for column in ["trial", *swept, "state", *names, "run"]:
        shown.add_column(column, justify="right" if column in names else "left")
    for _, row in table.iterrows():
        mark = " (best)" if best is not None and row["run_id"] == best else ""
        values = [_cell(row[n]) for n in names]
        shown.add_row(
            str(row["number"]) + mark, *(str(row[c]) for c in swept), str(row["state"]),
            *values, str(row["run_id"] or "-"),
        )  # fmt: skip
    metrics = summary["metrics"]
    if "best_value" in metrics:
        shown.caption = f"best {names[0]} = {metrics['best_value']:.4f}"
    return shown


def _cell(value: Any) -> str:
    return "n/a" if value != value else f"{float(value):.4f}"


def _record_failure(config: DictConfig, output: Path, record: dict[str, Any]) -> str | None:
    """A failed trial's tracked run is FAILED; one that failed before it had a run gets one."""
    if LocalRecord(output).start_op() is None:
        parent = LocalRecord(output.parent).run_id
        Tracker.open(
            config.logger,
            output,
            name=f"trial-{record['number']}",
            tags={"kind": "training", "error": record.get("error", "")[:500]},
            params={k: str(v)[:500] for k, v in _params(record["overrides"]).items()},
            parent_run_id=parent,
        ).finish("FAILED")
    return LocalRecord(output).run_id


def summarise(config: DictConfig, sweep_dir: Path) -> dict[str, Any] | None:
    """Trials table, best trial, importance, Pareto front and DSR, written into ``sweep_dir``."""
    records = [json.loads(p.read_text()) for p in sorted((sweep_dir / TRIALS).glob("*.json"))]
    if not records:
        return None
    directions = _directions(config)
    names = list(config.get("objectives") or [config.optimized_metric])
    rows = []
    for r in records:
        row = {
            "number": r["number"],
            "state": r["state"],
            "run_id": r["run_id"],
            **_params(r["overrides"]),
        }
        for i, name in enumerate(names):
            row[name] = r["values"][i] if r["values"] else np.nan
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("number")
    fixed = [
        c
        for c in table.columns
        if c not in ("number", "state", "run_id", *names) and table[c].nunique(dropna=False) <= 1
    ]
    table = table.drop(columns=fixed)  # keep the swept parameters
    files = [sweep_dir / "trials.csv"]
    table.to_csv(files[0], index=False)
    scored = table[table["state"].isin(["COMPLETE", "PRUNED"])].dropna(subset=names)
    metrics: dict[str, float] = {
        "n_trials": float(len(table)),
        "n_failed": float((table["state"] == "FAIL").sum()),
        "n_pruned": float((table["state"] == "PRUNED").sum()),
    }
    best_params: dict[str, Any] = {}
    out: dict[str, Any] = {
        "table": table,
        "files": files,
        "metrics": metrics,
        "best_params": best_params,
    }
    if scored.empty:
        return out
    if len(names) == 1:
        best = scored.loc[
            scored[names[0]].idxmax() if directions[0] == "max" else scored[names[0]].idxmin()
        ]
        metrics["best_value"] = float(best[names[0]])
        out["best_run_id"] = best["run_id"]
        best_params.update(
            {k: best[k] for k in table.columns if k not in ("number", "state", "run_id", *names)}
        )
        record = next(r for r in records if r["number"] == best["number"])
        metrics["best_dsr"] = _dsr(record, scored[names[0]].to_numpy(), config)
    else:
        front = non_dominated(scored[names].to_numpy(), directions)
        scored[front].to_csv(sweep_dir / "pareto_front.csv", index=False)
        files += [
            sweep_dir / "pareto_front.csv",
            plot_front(
                scored, names, front, sweep_dir / "pareto_front.png", "Pareto front of the sweep"
            ),
        ]
        metrics["pareto_size"] = float(front.sum())
    importance = parameter_importance(scored, names[0])
    if importance:
        pd.Series(importance, name="importance").to_csv(sweep_dir / "param_importance.csv")
        files.append(sweep_dir / "param_importance.csv")
        metrics.update({f"importance.{k}": v for k, v in importance.items()})
    return out


def _params(overrides: list[str]) -> dict[str, Any]:
    out = {}
    for item in overrides:
        key, _, value = item.partition("=")
        out[key.lstrip("+~")] = value
    return out


def _directions(config: DictConfig) -> list[str]:
    direction = config.hydra.sweeper.get("direction", "maximize")
    items = list(direction) if not isinstance(direction, str) else [direction]
    return ["max" if str(d).lower().startswith("max") else "min" for d in items]


def _dsr(record: dict[str, Any], trial_values: np.ndarray, config: DictConfig) -> float:
    """Deflated Sharpe Ratio of the best trial's validation returns, given all trials' Sharpes."""
    if not record.get("val_returns") or not str(config.optimized_metric).endswith("sharpe"):
        return float("nan")
    returns = np.load(record["val_returns"])
    periods = periods_per_year(config.data, "tactical")
    per_period = trial_values / np.sqrt(periods)
    if len(per_period) < 2:
        return float(deflated_sharpe_ratio(returns, 1))
    return float(deflated_sharpe_ratio(returns, len(per_period), trial_sharpes=per_period))


def parameter_importance(scored: pd.DataFrame, metric: str) -> dict[str, float]:
    """Mean-decrease-impurity importance (a random forest on the trials, as Optuna computes it);
    numeric parameters as numbers, others one category each."""
    params = [
        c
        for c in scored.columns
        if c not in ("number", "state", "run_id") and c != metric and "/" not in c
    ]
    if len(scored) < 3 or not params:
        return {}
    from sklearn.ensemble import RandomForestRegressor

    features = pd.DataFrame({p: _numeric(scored[p]) for p in params})
    forest = RandomForestRegressor(n_estimators=64, max_depth=64, random_state=0).fit(
        features.to_numpy(), scored[metric].to_numpy()
    )
    return {p: float(v) for p, v in zip(params, forest.feature_importances_, strict=True)}


def _numeric(values: pd.Series) -> np.ndarray:
    """Numbers as they are; anything else as category codes."""
    numbers = pd.to_numeric(values, errors="coerce")
    return (
        numbers.to_numpy(dtype=float)
        if numbers.notna().all()
        else pd.factorize(values)[0].astype(float)
    )


def unknown_keys(config: DictConfig) -> list[str]:
    """Keys of ``hydra.sweeper.params`` that the composed config does not have."""
    params = config.hydra.sweeper.get("params") if "sweeper" in config.hydra else None
    missing = []
    for key in params or {}:
        if key.startswith(("+", "hydra.")) or key in _group_names(config):
            continue
        node: Any = config
        for part in key.split("."):
            if not isinstance(node, DictConfig) or part not in node:
                missing.append(key)
                break
            node = node[part]
    return missing


def _group_names(config: DictConfig) -> set[str]:
    """Config groups of the defaults list (``agent: choice(ppo, sac)`` sweeps a group, not a key)."""
    choices = OmegaConf.select(config, "hydra.runtime.choices") or {}
    return {str(k) for k in choices if not str(k).startswith("hydra")}


def overrides_key(overrides: list[str]) -> str:
    """A trial's identity in its sweep: its sorted task overrides, one string."""
    return " ".join(sorted(overrides))


def continued_trial(cfg: DictConfig, output_dir: Path, overrides: list[str]) -> list[float] | None:
    """Continuing a sweep that died (the same command with ``hydra.sweep.dir=<its folder>``): a trial
    whose tracked run FINISHED with the same overrides is not run again (its objective values are
    returned); one that was interrupted resumes from its own ``last.ckpt``."""
    n = len(cfg.objectives) if cfg.get("objectives") else 1
    done = finished_trial(cfg.logger, output_dir, overrides_key(overrides), n)
    if done is not None:
        return done
    last = output_dir / "checkpoints" / "last.ckpt"
    if last.is_file() and LocalRecord(output_dir).start_op() is not None:
        cfg.ckpt_path = str(last)
    return None


def record_trial(cfg: DictConfig, output_dir: Path, overrides: list[str], value: Any) -> None:
    """Mark a finished trial's run with its overrides and objective values (what a continued
    sweep reads back instead of training it again)."""
    if cfg.logger.kind != "mlflow" or LocalRecord(output_dir).start_op() is None:
        return
    values = [float(v) for v in value] if isinstance(value, list | tuple) else [float(value)]
    names = (
        [f"sweep/objective/{i}" for i in range(len(values))]
        if len(values) > 1
        else ["sweep/objective"]
    )
    tracker = Tracker(output_dir, str(cfg.logger.tracking_uri), quiet=True)
    tracker.set_tags({"sweep.overrides": overrides_key(overrides)})
    tracker.log_metrics(dict(zip(names, values, strict=True)))


def run_trial(
    cfg: DictConfig, output_dir: Path, sweep_dir: Path, overrides: list[str], train: Any
) -> float | list[float]:
    """One sweep trial (``train`` is the training job): continued as :func:`continued_trial` says,
    recorded with :func:`record_trial`. A failure is reported on one line, recorded (``failed``
    marker, tracked run FAILED) and returned as NaN, which Optuna records as a failed trial; the
    sweep goes on."""
    single = not cfg.get("objectives")
    try:
        done = continued_trial(cfg, output_dir, overrides)
        if done is not None:
            print(f"trial {output_dir.name}: finished in an earlier attempt, objective {done}")
            return done[0] if single else done
        parent = LocalRecord(sweep_dir).run_id
        metric = train(cfg, parent)["metric"]
        record_trial(cfg, output_dir, overrides, metric)
        return metric
    except Exception as exc:
        message = one_line(str(exc)) or type(exc).__name__
        print(f"error: trial failed: {message}", file=sys.stderr)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "failed").write_text(message + "\n")
        return float("nan") if single else [float("nan")] * len(cfg.objectives)

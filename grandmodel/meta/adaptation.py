"""Adapt a meta-trained initialisation to a new market: ``adapt.steps`` learner updates on the
market's training split, then a deterministic walk of a later split (chronological, past the
embargo), before and after adapting. The adapted policy is saved as a weights-only checkpoint in
the training runs' format (``checkpoints/best-adapted.ckpt``: evaluate, backtest and export load
it) and the run is tracked nested under the meta run.

After each update ``checkpoints/last.ckpt`` holds everything the next one depends on (weights,
optimiser and replay state, the env's state, the carried step, the torch RNG, the rewards so far and
the walk before adapting), so ``resume=<adapt run folder>`` ends exactly as an uninterrupted run.
The tracked run is opened at the end: an interrupted adaptation leaves none."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tensordict.nn import TensorDictModuleBase, TensorDictSequential

from grandmodel.agents import Algorithm, build_learner, group_specs
from grandmodel.checkpoints import LAST, load_checkpoint, save_atomic
from grandmodel.config import validate
from grandmodel.config.env import ROLES
from grandmodel.config.meta import AdaptConfig
from grandmodel.data.market_data import MarketData
from grandmodel.data.normalise import save_norm
from grandmodel.data.pipeline import prepare_data
from grandmodel.data.sources import keep_model_features
from grandmodel.env import MarketEnv
from grandmodel.errors import GrandModelError
from grandmodel.meta.inner import Rollouts, adapt
from grandmodel.tracking import RUN_ID_FILE, Tracker, flatten, git_commit, run_name
from grandmodel.training.policies import Deterministic, build_policies

MakeEvaluator = Callable[[DictConfig, MarketData, str, int], Callable[[Any], dict[str, float]]]
ADAPTED = "best-adapted.ckpt"


def _meta_checkpoint(spec: str) -> tuple[Path, dict[str, Any]]:
    path = Path(spec)
    if path.is_dir() and not (path / "checkpoints" / LAST).is_file():
        raise GrandModelError(
            f"run={spec}: no checkpoints/{LAST} in it; expected the folder of a "
            "python -m grandmodel.meta run"
        )
    path = path / "checkpoints" / LAST if path.is_dir() else path
    checkpoint = load_checkpoint(path)
    if "meta_role" not in checkpoint.get("grandmodel", {}):
        raise GrandModelError(
            f"run={spec}: {path} is not a meta-training checkpoint; expected the folder of a "
            "python -m grandmodel.meta run"
        )
    return path, checkpoint


def adapt_to_market(cfg: DictConfig, make_evaluator: MakeEvaluator) -> dict[str, Any]:
    """Fine-tune the meta run's initialisation on ``cfg.data`` and evaluate; returns the metrics."""
    ac: AdaptConfig = validate(cfg)
    path, checkpoint = _meta_checkpoint(ac.run)
    extra = checkpoint["grandmodel"]
    role, settings = str(extra["meta_role"]), ac.adapt
    run_cfg = OmegaConf.create(extra["config"])
    for key in ("meta", "ckpt_path"):
        run_cfg.pop(key, None)
    model_data = run_cfg.data
    run_cfg.data = cfg.data
    keep_model_features(run_cfg.data, model_data)
    run_cfg.paths = cfg.paths
    run_cfg.seed = ac.seed
    run_cfg.agent.learn = [role]
    if settings.lr is not None:
        run_cfg.agent[role].lr = settings.lr
    frames = settings.frames_per_update or int(extra["config"]["meta"]["frames_per_update"])
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(ac.seed)
    data = prepare_data(run_cfg)
    env = MarketEnv(data, run_cfg, split="train", mode="train", seed=ac.seed)
    groups = group_specs(env)
    learner = build_learner(run_cfg.agent[role], groups[role])
    learner.prepare_for_loading()
    prefix = "learner."
    learner.load_state_dict(
        {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    )
    _, fixed, _, _ = build_policies(run_cfg, groups, data.strategic.feature_names)
    fixed = {r: m for r, m in fixed.items() if r != role}

    def acting() -> TensorDictModuleBase:
        steps = [
            Deterministic(learner.exploration_policy()) if r == role else fixed[r] for r in ROLES
        ]
        return TensorDictSequential(*steps)

    config = OmegaConf.to_container(run_cfg, resolve=True, enum_to_str=True)
    evaluator = make_evaluator(run_cfg, data, settings.split, settings.episodes)
    split = settings.split
    rollouts = Rollouts(env, frames)
    last = output_dir / "checkpoints" / LAST
    if ac.ckpt_path:
        initial, rewards = _restore(Path(ac.ckpt_path), path, learner, rollouts, settings.steps)
    else:
        initial = {f"initial/{split}/{k}": v for k, v in evaluator(acting()).items()}
        rewards = []

    def save(update: int, reward: float) -> None:
        rewards.append(reward)
        progress = {"meta_run": str(path), "updates": update, "rewards": list(rewards),
                    "initial": initial}  # fmt: skip
        save_atomic({"state_dict": learner.state_dict(),
                     "optimizer_states": [o.state_dict() for o in learner.make_optimizers()],
                     "grandmodel": {"config": config, "adapt": progress,
                                    "source": rollouts.state_dict(),
                                    "learner": learner.extra_state()}}, last)  # fmt: skip
        if update == ac.faults.kill_at_batch:  # the drill of tests/meta: killed after this update
            os.kill(os.getpid(), signal.SIGKILL)

    adapt(learner, role, fixed, rollouts, settings.steps, done=len(rewards), after=save)
    metrics = dict(initial)
    metrics.update({f"{split}/{k}": v for k, v in evaluator(acting()).items()})
    if rewards:
        metrics["adapt/reward_first_update"], metrics["adapt/reward_last_update"] = (
            rewards[0],
            rewards[-1],
        )

    norm = {k: v.to_dict() for k, v in data.norm.items()}
    state = {f"learners.{role}.{k}": v for k, v in learner.state_dict().items()}
    adapted = output_dir / "checkpoints" / ADAPTED
    save_atomic({"state_dict": state, "grandmodel": {"config": config, "norm": norm,
                 "frozen": {}, "history": []}}, adapted)  # fmt: skip
    OmegaConf.save(run_cfg, output_dir / "config.yaml", resolve=True)
    save_norm(data.norm, output_dir / "norm_stats.json")

    marker = path.parent.parent / RUN_ID_FILE
    parent = marker.read_text().strip() if marker.is_file() else None
    tracker = Tracker.open(
        ac.logger, output_dir, name=run_name(output_dir, False),
        tags={"kind": "adaptation", "meta_run": str(path.parent.parent), "role": role,
              "steps": settings.steps, "data": ac.data.name if ac.data else "",
              "git_commit": git_commit()},
        params=flatten(cfg), parent_run_id=parent,
    )  # fmt: skip
    tracker.log_metrics(metrics, step=settings.steps)
    tracker.log_artifact(adapted)
    tracker.finish("FINISHED")
    return {"metrics": metrics, "checkpoint": adapted, "run_id": tracker.run_id}


def _restore(
    spec: Path, meta: Path, learner: Algorithm, rollouts: Rollouts, steps: int
) -> tuple[dict[str, float], list[float]]:
    """Put ``learner`` and ``rollouts`` back where an adaptation's ``last.ckpt`` left them;
    returns the walk before adapting and the rewards so far. Fails closed on a mismatch."""
    checkpoint = load_checkpoint(spec)
    progress = checkpoint.get("grandmodel", {}).get("adapt")
    if progress is None:
        raise GrandModelError(
            f"ckpt_path={spec}: not an adaptation's checkpoint; expected checkpoints/{LAST} "
            "of a python -m grandmodel.adapt run"
        )
    if Path(progress["meta_run"]).resolve() != meta.resolve():
        raise GrandModelError(
            f"ckpt_path={spec}: adapts {progress['meta_run']}, not {meta}; expected the same run="
        )
    if int(progress["updates"]) > steps:
        raise GrandModelError(
            f"ckpt_path={spec}: {progress['updates']} updates done, more than adapt.steps={steps}; "
            f"expected adapt.steps >= {progress['updates']}"
        )
    learner.load_state_dict(checkpoint["state_dict"])
    learner.load_extra_state(checkpoint["grandmodel"]["learner"])
    for optimizer, state in zip(
        learner.make_optimizers(), checkpoint["optimizer_states"], strict=True
    ):
        optimizer.load_state_dict(state)
    rollouts.load_state_dict(checkpoint["grandmodel"]["source"])
    return dict(progress["initial"]), [float(r) for r in progress["rewards"]]

"""A trained run beside its baselines: the run's config and data, the policies to compare (trained,
rule-based baselines, the regime oracle on synthetic data) and the counterfactual contribution of
each learning agent. Every policy is walked by the same :class:`~grandmodel.evaluation.walk.Walk`.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from grandmodel.agents import group_specs
from grandmodel.config.env import ROLES
from grandmodel.console import Advance
from grandmodel.data.market_data import MarketData
from grandmodel.data.pipeline import prepare_data
from grandmodel.env.baselines import baseline_policy, joint_baseline
from grandmodel.errors import GrandModelError
from grandmodel.evaluation.lean import LeanPolicy, lean_actor
from grandmodel.evaluation.metrics import contribution_stats
from grandmodel.evaluation.runs import TrainedRun
from grandmodel.evaluation.walk import Outcome, Walk
from grandmodel.training.policies import baseline_params, restore_policy

BASELINES = {
    "buy_and_hold": {"strategic": "always_long", "tactical": "hold"},  # no protective stop
    "buy_and_hold_stopped": {"strategic": "always_long"},  # with the tactical baseline's stop
    "flat": {"strategic": "flat"},
    "random": {"strategic": "random"},
    "ma_crossover": {"strategic": "ma_crossover"},
}


def model_config(
    run: TrainedRun,
    data_override: DictConfig | None,
    paths: DictConfig,
    capital: float | None = None,
) -> DictConfig:
    """The run's config with another data source, this machine's paths, and another capital."""
    cfg = OmegaConf.create(OmegaConf.to_container(run.config, resolve=True))
    cfg.paths = OmegaConf.create(OmegaConf.to_container(paths, resolve=True))
    if data_override is not None:
        # the override's instrument-derived keys (timezone, trading time) follow the run's instrument
        unresolved = OmegaConf.to_container(data_override, resolve=False)
        scope = OmegaConf.create(
            {"instrument": cfg.get("instrument"), "paths": cfg.paths, "data": unresolved}
        )
        cfg.data = OmegaConf.create(OmegaConf.to_container(scope.data, resolve=True))
        cfg.data.episode_length = run.config.data.episode_length
    if capital is not None:
        cfg.env.initial_capital = float(capital)
    return cfg


def market(run: TrainedRun, cfg: DictConfig) -> MarketData:
    """The data the model is evaluated on, normalised with the model's own statistics."""
    for name in ("strategic", "tactical"):  # checked before any data is prepared (or cached)
        if int(cfg.data.window[name]) != int(run.config.data.window[name]):
            raise GrandModelError(
                f"data.window.{name}={cfg.data.window[name]} does not match the model's {run.config.data.window[name]}"
            )
    return prepare_data(cfg, norm=run.norm)


def trained_policy(walk: Walk, run: TrainedRun) -> tuple[dict, TensorDictSequential]:
    """The run's learners by group and its joint deterministic policy, for ``walk``'s env."""
    return restore_policy(run.checkpoint, group_specs(walk.env), walk.data.strategic.feature_names)


def baseline(walk: Walk, name: str, run: TrainedRun) -> TensorDictSequential:
    """The :data:`BASELINES` entry ``name`` with the run's baseline parameters."""
    features = walk.data.strategic.feature_names
    return joint_baseline(features, BASELINES[name], baseline_params(run.config))


def oracle(walk: Walk, run: TrainedRun) -> TensorDictSequential | None:
    """Knows the true regime (synthetic data): long in up-trends, short in down-trends, else flat."""
    if walk.data.regime is None:
        return None
    params = baseline_params(run.config)
    steps = [
        TensorDictModule(
            RegimeOracle(walk.data.regime),
            in_keys=[("info", "t")],
            out_keys=[("strategic", "action")],
        ),
        baseline_policy("tactical", "full_entry", **params["tactical"]),
        baseline_policy("risk", "fixed", **params["risk"]),
    ]
    return TensorDictSequential(*steps)


class RegimeOracle(nn.Module):
    """Strategic action from the true regime at the decision (0 trend_up → long, 1 trend_down → short)."""

    def __init__(self, regime: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("regime", regime.clone())

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        regime = self.regime[t[..., 0]]
        return torch.where(regime == 0, 2, torch.where(regime == 1, 0, 1)).to(torch.int64)


def compare(
    walk: Walk,
    run: TrainedRun,
    trained: TensorDictSequential | LeanPolicy,
    advance: Advance | None = None,
) -> dict[str, Outcome]:
    """The trained policy and every baseline (and the oracle, on synthetic data) on the same
    windows, each with its tables; ``advance(name)`` after each pass (see :func:`passes`)."""
    advance = advance or (lambda name: None)
    outcomes = {"trained": walk.run(trained, tables=True)}
    advance("trained")
    for name in BASELINES:
        outcomes[name] = walk.run(baseline(walk, name, run), tables=True)
        advance(name)
    regime = oracle(walk, run)
    if regime is not None:
        outcomes["oracle"] = walk.run(regime, tables=True)
        advance("oracle")
    return outcomes


def passes(walk: Walk, learners: dict | None = None) -> int:
    """How many walks :func:`compare` (and :func:`contributions` with ``learners``) make."""
    return 1 + len(BASELINES) + (walk.data.regime is not None) + len(learners or {})


def contributions(
    walk: Walk,
    run: TrainedRun,
    learners: dict,
    trained: Outcome,
    policy: TensorDictSequential | LeanPolicy,
    advance: Advance | None = None,
) -> dict[str, dict[str, float]]:
    """Per agent: its episode rewards against the total (mean, spread, correlation), plus the
    counterfactual: the same windows with one learning agent of ``policy`` (the trained policy,
    on torch or ONNX Runtime) replaced by its baseline; Δ = trained − counterfactual."""
    total = sum(trained.episode_rewards.values())
    out = contribution_stats(trained.episode_rewards, total)
    base = run.config.agent.baselines
    params = baseline_params(run.config)
    for role in learners:
        rule = baseline_policy(
            role, str(base[role]), walk.data.strategic.feature_names, **params.get(role, {})
        )
        if isinstance(policy, dict):
            actor = lean_actor(rule)
            assert actor is not None  # every baseline is a plain module
            replaced: TensorDictSequential | LeanPolicy = {**policy, role: actor[1]}
        else:
            parts = zip(ROLES, policy.module, strict=True)
            replaced = TensorDictSequential(*(rule if r == role else m for r, m in parts))
        counterfactual = walk.run(replaced, tables=True)
        if advance is not None:
            advance(f"without the {role} agent")
        out[role]["delta_pnl"] = trained.metrics["net_pnl"] - counterfactual.metrics["net_pnl"]
        out[role]["delta_sharpe"] = trained.metrics["sharpe"] - counterfactual.metrics["sharpe"]
    return out

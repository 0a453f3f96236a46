"""A trained run beside its baselines: the run's config and data, the policies to compare (trained,
rule-based baselines; on synthetic regime data the regime oracle, which sees the true regime, and
the regime filter, the best guess of it from returns) and the counterfactual contribution of each
learning agent. Every policy is walked by the same :class:`~grandmodel.evaluation.walk.Walk`.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from grandmodel.agents import group_specs
from grandmodel.config import typed
from grandmodel.config.data import DataConfig, Generator, Source
from grandmodel.config.env import ROLES
from grandmodel.console import Advance
from grandmodel.data.market_data import MarketData
from grandmodel.data.pipeline import prepare_data
from grandmodel.data.sources import keep_model_features
from grandmodel.env.baselines import baseline_policy, joint_baseline
from grandmodel.env.execution import CostModel
from grandmodel.errors import GrandModelError
from grandmodel.evaluation.lean import LeanPolicy, lean_actor
from grandmodel.evaluation.metrics import contribution_stats
from grandmodel.evaluation.regime_filter import RegimeFilter, RegimeModel, filter_actions
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
        keep_model_features(cfg.data, run.config.data)
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


def baseline(walk: Walk, name: str, run: TrainedRun | None = None) -> TensorDictSequential:
    """The :data:`BASELINES` entry ``name`` with the baseline parameters of ``run`` (default: of
    ``walk``'s config)."""
    features = walk.data.strategic.feature_names
    params = baseline_params(run.config if run is not None else walk.cfg)
    return joint_baseline(features, BASELINES[name], params)


def oracle(walk: Walk) -> TensorDictSequential | None:
    """Knows the true regime (synthetic data): long in up-trends, short in down-trends, else flat."""
    if walk.data.regime is None:
        return None
    return _with_rule_roles(walk, RegimeOracle(walk.data.regime))


def regime_filter(walk: Walk) -> TensorDictSequential | None:
    """Trades the Hamilton filter's posterior of the regime from returns known at each decision
    (:mod:`~grandmodel.evaluation.regime_filter`), on data of the ``regime`` generator only (whose
    parameters it knows): long when the expected drift until the regime ends exceeds a round
    trip's costs at the decision's close, short when below its negative, else flat."""
    model = filter_model(walk)
    if model is None:
        return None
    close = walk.data.tactical.close
    costs = CostModel.from_config(walk.cfg.env.costs, walk.cfg.env.contract)
    round_trip = 2.0 * costs.per_contract(close) / (close * costs.multiplier)
    actions, _ = filter_actions(walk.data, model, round_trip.numpy())
    return _with_rule_roles(walk, RegimeFilter(actions))


def filter_model(walk: Walk) -> RegimeModel | None:
    """The hidden Markov model of ``walk``'s market: on ``regime``-generator data only."""
    data_cfg = typed(walk.cfg.data, DataConfig)
    synthetic = data_cfg.source == Source.synthetic
    if (
        walk.data.regime is None
        or not synthetic
        or data_cfg.synthetic.generator != Generator.regime
    ):
        return None
    return RegimeModel.from_config(data_cfg.synthetic)


def _with_rule_roles(walk: Walk, strategic: nn.Module) -> TensorDictSequential:
    """``strategic`` (reading the decision ``("info", "t")``) with the tactical baseline's full entry
    and the fixed risk level: the regime policies differ only in what they know."""
    params = baseline_params(walk.cfg)
    return TensorDictSequential(
        TensorDictModule(strategic, in_keys=[("info", "t")], out_keys=[("strategic", "action")]),
        baseline_policy("tactical", "full_entry", **params["tactical"]),
        baseline_policy("risk", "fixed", **params["risk"]),
    )


class RegimeOracle(nn.Module):
    """Strategic action from the true regime at the decision (0 trend_up → long, 1 trend_down → short)."""

    def __init__(self, regime: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("regime", regime.clone())

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        regime = self.regime[t[..., 0]]
        return torch.where(regime == 0, 2, torch.where(regime == 1, 0, 1)).to(torch.int64)


def references(walk: Walk, run: TrainedRun | None = None) -> dict[str, TensorDictSequential]:
    """Every policy a trained one (``run``) is compared with on ``walk``: :data:`BASELINES`, then
    the regime oracle and the regime filter where the data allow them."""
    out = {name: baseline(walk, name, run) for name in BASELINES}
    for name, policy in (("oracle", oracle(walk)), ("regime_filter", regime_filter(walk))):
        if policy is not None:
            out[name] = policy
    return out


def compare(
    walk: Walk,
    run: TrainedRun,
    trained: TensorDictSequential | LeanPolicy,
    advance: Advance | None = None,
) -> dict[str, Outcome]:
    """The trained policy and every :func:`references` policy on the same windows, each with its
    tables; ``advance(name)`` after each pass (see :func:`passes`)."""
    advance = advance or (lambda name: None)
    policies = {"trained": trained, **references(walk, run)}
    outcomes = walk.run_many(policies, tables=True)  # one batched walk (Walk.run_many)
    for name in outcomes:
        advance(name)
    return outcomes


def passes(walk: Walk, learners: dict | None = None) -> int:
    """How many walks :func:`compare` (and :func:`contributions` with ``learners``) make."""
    regime = (walk.data.regime is not None) + (filter_model(walk) is not None)
    return 1 + len(BASELINES) + regime + len(learners or {})


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
    replaced: dict[str, TensorDictSequential | LeanPolicy] = {}
    for role in learners:
        rule = baseline_policy(
            role, str(base[role]), walk.data.strategic.feature_names, **params.get(role, {})
        )
        if isinstance(policy, dict):
            actor = lean_actor(rule)
            assert actor is not None  # every baseline is a plain module
            replaced[role] = {**policy, role: actor[1]}
        else:
            parts = zip(ROLES, policy.module, strict=True)
            replaced[role] = TensorDictSequential(*(rule if r == role else m for r, m in parts))
    counterfactuals = walk.run_many(replaced, tables=True)  # one batched walk
    for role, counterfactual in counterfactuals.items():
        if advance is not None:
            advance(f"without the {role} agent")
        out[role]["delta_pnl"] = trained.metrics["net_pnl"] - counterfactual.metrics["net_pnl"]
        out[role]["delta_sharpe"] = trained.metrics["sharpe"] - counterfactual.metrics["sharpe"]
    return out

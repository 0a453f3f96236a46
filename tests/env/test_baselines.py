"""Baseline policies act inside the action spec and do what their names say."""

from __future__ import annotations

import pytest
import torch

import grandmodel
from grandmodel.env.baselines import baseline_policy, joint_baseline


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    outputs = tmp_path_factory.mktemp("outputs")
    cfg = grandmodel.load_config(
        ["experiment=smoke", f"paths.outputs_dir={outputs}", "env.n_envs=6"]
    )
    return grandmodel.build_env(cfg)


@pytest.mark.parametrize("kind", ["flat", "always_long", "ma_crossover", "random"])
def test_strategic_baselines(env, kind: str) -> None:
    policy = baseline_policy("strategic", kind, env.data.strategic.feature_names)
    td = policy(env.reset())
    action = td.get(("strategic", "action"))
    assert env.action_spec["strategic", "action"].is_in(action)
    if kind == "flat":
        assert bool((action == 1).all())
    if kind == "always_long":
        assert bool((action == 2).all())
    if kind == "ma_crossover":
        trend = td.get(("strategic", "observation"))[
            :, -1, env.data.strategic.feature_names.index("trend_regime")
        ]
        assert torch.equal(action, trend.to(torch.int64) + 1)


def test_joint_baseline_trades_with_full_entry_and_fixed_level(env) -> None:
    policy = joint_baseline(
        env.data.strategic.feature_names, {"strategic": "always_long"}, {"risk": {"level": 2}}
    )
    rollout = env.rollout(30, policy)
    assert env.action_spec.is_in(rollout[:, 0].select(*env.action_keys))
    assert torch.equal(rollout.get(("tactical", "action"))[0, 0], torch.tensor([1.0, 0.01, 1.0]))
    assert bool((rollout.get(("risk", "action")) == 2).all())
    # always long at level 2: 1.0 x 0.5 x 5 contracts = 2.5 -> rounds to 2 once the first decision passed
    positions = rollout.get(("next", "info", "position"))[..., 0]
    decided = rollout.get(("strategic", "decision"))[..., 0].cumsum(1) > 0
    assert bool(((positions == 2) | (positions == 0) | ~decided).all())


def test_unknown_baseline_is_rejected(env) -> None:
    with pytest.raises(ValueError, match="unknown strategic baseline 'moon'"):
        baseline_policy("strategic", "moon", env.data.strategic.feature_names)

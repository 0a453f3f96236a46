"""The lean walk (kernel driven directly, plain modules) equals the TorchRL walk, field for field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tensordict.nn import TensorDictModule, TensorDictSequential

import grandmodel
from grandmodel.agents import group_specs
from grandmodel.env.baselines import baseline_policy, joint_baseline
from grandmodel.evaluation.commands import run_backtest
from grandmodel.evaluation.comparison import BASELINES, RegimeOracle
from grandmodel.evaluation.lean import lean_policy, lean_rollout
from grandmodel.evaluation.runs import resolve_run
from grandmodel.evaluation.walk import Walk, run_policy
from grandmodel.train import train
from grandmodel.training.policies import Deterministic, baseline_params, build_policies

# every rollout entry the ledger and the walk's metrics read
INFO = (
    "direction", "traded", "fill_price", "stop_hit", "stop_price", "stop_bar", "position", "mark",
    "equity", "costs", "closed_fill_pnl", "closed_stop_pnl", "trades", "wins", "terms",
)  # fmt: skip
KEYS = [
    ("info", "t"),
    ("strategic", "decision"),
    *((role, "action") for role in ("strategic", "tactical", "risk")),
    ("next", "done"),
    *(("next", role, "reward") for role in ("strategic", "tactical", "risk")),
    *(("next", "info", key) for key in INFO),
]


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    outputs = tmp_path_factory.mktemp("outputs")
    cfg = grandmodel.load_config(["experiment=smoke", f"paths.outputs_dir={outputs}"])
    return cfg, grandmodel.prepare_data(cfg)


def _policies(cfg, data, walk: Walk) -> dict:
    """Untrained networks (varied actions without training) as training evaluates them and as a
    checkpoint is restored (Deterministic), every comparison baseline and the regime oracle."""
    torch.manual_seed(3)
    features = data.strategic.feature_names
    _, _, acting, _ = build_policies(cfg, group_specs(walk.env), features)
    params = baseline_params(cfg)
    oracle = TensorDictSequential(
        TensorDictModule(
            RegimeOracle(data.regime), in_keys=[("info", "t")], out_keys=[("strategic", "action")]
        ),
        baseline_policy("tactical", "full_entry", **params["tactical"]),
        baseline_policy("risk", "fixed", **params["risk"]),
    )
    return {
        "exploring": acting,
        "restored": TensorDictSequential(*(Deterministic(m) for m in acting.module)),
        **{name: joint_baseline(features, kinds, params) for name, kinds in BASELINES.items()},
        "oracle": oracle,
    }


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return bool(torch.equal(a.double().nan_to_num(nan=-7.0), b.double().nan_to_num(nan=-7.0)))


@pytest.mark.parametrize("envs", ["windows", "one"])
def test_lean_rollout_equals_the_torchrl_rollout(market, envs: str) -> None:
    cfg, data = market
    walk = Walk(cfg, data, "test") if envs == "windows" else Walk(cfg, data, "val", episodes=1)
    for name, policy in _policies(cfg, data, walk).items():
        actors = lean_policy(policy)
        assert actors is not None, name
        torch.manual_seed(11)  # the random baseline draws from the global generator
        walk.env.set_mode("eval", walk.split)
        expected, alive = run_policy(walk.env, policy, walk.steps)
        torch.manual_seed(11)
        walk.env.set_mode("eval", walk.split)
        got, lean_alive = lean_rollout(walk.env, actors, walk.steps)
        assert torch.equal(alive, lean_alive), name
        for key in KEYS:
            assert _same(expected.get(key)[alive], got.get(key)[alive]), (name, key)
        if name in ("restored", "random"):  # the comparison can fail: they trade
            assert expected.get(("next", "info", "trades"))[alive].max() > 0, name
    strategic = expected.get(("strategic", "action"))
    assert len(torch.unique(strategic)) > 1  # the oracle follows the regimes


def test_walk_outcomes_and_tables_are_the_same_on_both_paths(market) -> None:
    cfg, data = market
    walk = Walk(cfg, data, "test")
    policies = _policies(cfg, data, walk)
    for name in ("restored", "random", "ma_crossover"):
        torch.manual_seed(5)
        slow = walk.run(policies[name], tables=True, lean=False)
        torch.manual_seed(5)
        fast = walk.run(policies[name], tables=True)
        np.testing.assert_equal(slow.metrics, fast.metrics)
        np.testing.assert_array_equal(slow.returns, fast.returns)
        pd.testing.assert_frame_equal(slow.ledger.trades, fast.ledger.trades)
        pd.testing.assert_frame_equal(slow.ledger.decisions, fast.ledger.decisions)
        assert len(fast.ledger.trades) > 0, name


def test_policies_walked_together_have_the_outcomes_they_have_one_by_one(market) -> None:
    """Walk.run_many (every copy in one kernel call per step, what a report runs) against a walk
    per policy: the same metrics, returns and tables, for networks, rules, random and oracle."""
    cfg, data = market
    walk = Walk(cfg, data, "test")
    policies = _policies(cfg, data, walk)
    torch.manual_seed(5)
    alone = {name: walk.run(policy, tables=True) for name, policy in policies.items()}
    torch.manual_seed(5)
    together = walk.run_many(policies, tables=True)
    assert list(together) == list(policies)
    for name, fast in together.items():
        np.testing.assert_equal(alone[name].metrics, fast.metrics)
        np.testing.assert_array_equal(alone[name].returns, fast.returns)
        pd.testing.assert_frame_equal(alone[name].ledger.trades, fast.ledger.trades)
        pd.testing.assert_frame_equal(alone[name].ledger.decisions, fast.ledger.decisions)
    assert len({fast.metrics["net_pnl"] for fast in together.values()}) > 3  # they differ


def test_lean_walk_leaves_train_and_eval_modes_as_they_were(market) -> None:
    cfg, data = market
    walk = Walk(cfg, data, "val", episodes=1)
    policy = _policies(cfg, data, walk)["exploring"]
    policy.train()
    walk.run(policy)
    assert all(m.training for m in policy.modules())
    policy.eval()
    walk.run(policy)
    assert not any(m.training for m in policy.modules())


def test_a_policy_the_lean_walk_cannot_express_runs_through_torchrl(market) -> None:
    cfg, data = market
    walk = Walk(cfg, data, "val", episodes=1)
    features = data.strategic.feature_names
    reads_two = TensorDictModule(
        lambda obs, risk: torch.full(obs.shape[:-2], 2, dtype=torch.int64),
        in_keys=[("strategic", "observation"), ("risk", "observation")],
        out_keys=[("strategic", "action")],
    )
    policy = joint_baseline(features, {"strategic": "always_long"})
    mixed = TensorDictSequential(reads_two, *policy.module[1:])
    assert lean_policy(mixed) is None
    np.testing.assert_equal(walk.run(mixed).metrics, walk.run(policy).metrics)


@pytest.fixture(scope="module")
def trading_run(tmp_path_factory) -> tuple[Path, Path]:
    """A smoke run's checkpoint with its learners' weights perturbed (a smoke run barely trades):
    (the checkpoint file, the outputs folder)."""
    outputs = tmp_path_factory.mktemp("outputs")
    folder = outputs / "runs" / "smoke"
    cfg = grandmodel.load_config(
        [
            "experiment=smoke",
            "logger=csv",
            f"paths.outputs_dir={outputs}",
            f"paths.output_dir={folder}",
        ]
    )
    train(cfg)
    run = resolve_run(str(folder))
    generator = torch.Generator().manual_seed(1)
    for key, value in run.checkpoint["state_dict"].items():
        if key.startswith("learners.") and value.dtype.is_floating_point and value.numel() > 1:
            value.add_(torch.randn(value.shape, generator=generator) * value.std())
    path = outputs / "trading" / "checkpoints" / "trading.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(run.checkpoint, path)
    return path, outputs


def test_a_backtest_on_onnx_runtime_trades_as_on_torch(trading_run) -> None:
    checkpoint, outputs = trading_run
    results = {}
    for runtime in ("torch", "onnx"):
        cfg = grandmodel.load_config(
            [
                f"run={checkpoint}",
                f"policy={runtime}",
                "logger=csv",
                f"paths.outputs_dir={outputs}",
                f"paths.output_dir={outputs}/backtest-{runtime}",
            ],
            config_name="backtest",
        )
        results[runtime] = run_backtest(cfg)
    on_torch, on_onnx = (results[r]["outcomes"]["trained"].ledger for r in ("torch", "onnx"))
    assert len(on_torch.trades) > 0
    pd.testing.assert_frame_equal(on_torch.trades, on_onnx.trades)
    assert on_torch.decisions["equity"].iloc[-1] == on_onnx.decisions["equity"].iloc[-1]
    # the tactical action went through another runtime (float32 rounding), not through torch again
    scale = on_torch.decisions["position_scale"] - on_onnx.decisions["position_scale"]
    assert scale.abs().max() < 1e-5
    # the export for the pass leaves the random baseline's draws alone
    assert results["torch"]["metrics"]["random"] == results["onnx"]["metrics"]["random"]
    written = pd.read_csv(outputs / "backtest-onnx" / "trades.csv")
    assert len(written) == len(on_onnx.trades)


def test_policy_torch_with_a_bundle_is_one_line_of_error(cli, trading_run) -> None:
    checkpoint, outputs = trading_run
    result = cli(
        "grandmodel.backtest",
        f"run={checkpoint}",
        "policy=torch",
        f"bundle={outputs}",
        extra=[f"paths.outputs_dir={outputs}", "logger=csv"],
    )
    assert result.returncode == 2
    assert "bundle" in result.stderr and "policy=onnx" in result.stderr


def test_a_backtest_runs_an_export_bundle_and_refuses_an_altered_one(cli, trading_run) -> None:
    checkpoint, outputs = trading_run
    bundle = outputs / "bundle"
    exported = cli("grandmodel.export", f"run={checkpoint}", f"out={bundle}", "logger=csv")
    assert exported.returncode == 0, exported.stderr[-3000:]
    results = {}
    for name, extra in (("torch", ["policy=torch"]), ("bundle", [f"bundle={bundle}"])):
        cfg = grandmodel.load_config(
            [
                f"run={checkpoint}",
                *extra,
                "logger=csv",
                f"paths.outputs_dir={outputs}",
                f"paths.output_dir={outputs}/bundle-{name}",
            ],
            config_name="backtest",
        )
        results[name] = run_backtest(cfg)["outcomes"]["trained"].ledger
    assert len(results["torch"].trades) > 0
    pd.testing.assert_frame_equal(results["torch"].trades, results["bundle"].trades)
    graph = bundle / "risk.onnx"
    graph.write_bytes(graph.read_bytes() + b"\0")
    refused = cli(
        "grandmodel.backtest", f"run={checkpoint}", f"bundle={bundle}", extra=["logger=csv"]
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: ") and "risk.onnx" in refused.stderr

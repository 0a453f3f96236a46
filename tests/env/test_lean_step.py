"""``env.lean_step``: MarketEnv's own ``step_and_maybe_reset`` gives, bit for bit, what TorchRL's
generic one gives (collected batches, rollouts and the carry-over itself), across full and partial
auto-resets, for one collector and for a multi-process one."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector, MultiSyncCollector
from torchrl.envs.utils import check_env_specs

import grandmodel
from grandmodel.env import MarketEnv

PATHS = (False, True)  # env.lean_step: TorchRL's generic path, the lean one


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    outputs = tmp_path_factory.mktemp("outputs")
    return grandmodel.load_config(
        ["experiment=smoke", f"paths.outputs_dir={outputs}", "env.n_envs=6"]
    )


@pytest.fixture(scope="module")
def data(smoke):
    return grandmodel.prepare_data(smoke)


def _cfg(smoke, lean: bool, *overrides: tuple[str, object]):
    cfg = smoke.copy()
    cfg.env.lean_step = lean
    for key, value in overrides:
        node, name = cfg, key.split(".")
        for part in name[:-1]:
            node = node[part]
        node[name[-1]] = value
    return cfg


# short episodes: every env truncates at once (a full auto-reset); a high equity floor: envs
# terminate one by one (partial auto-resets)
MARKETS = {
    "full_resets": (("data.episode_length", 40),),
    "partial_resets": (("env.equity_floor", 0.997), ("env.max_contracts", 8)),
}


class Fixed(nn.Module):
    """Deterministic actions from the risk observation, plus an extra entry the env never reads."""

    def forward(self, risk: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = risk.shape[0]
        long = (risk[:, 3] < 0.1).long() * 2  # long while the drawdown is small, else short
        tactical = torch.tensor([[1.0, 0.002, 2.0]]).expand(n, 3).clone()
        return long, tactical, torch.full((n,), 4), risk.sum(-1, keepdim=True)


def fixed_policy() -> TensorDictModule:
    return TensorDictModule(
        Fixed(),
        in_keys=[("risk", "observation")],
        out_keys=[
            ("strategic", "action"),
            ("tactical", "action"),
            ("risk", "action"),
            ("risk", "extra"),
        ],
    )


def assert_same(a: TensorDictBase, b: TensorDictBase, where: str, skip: tuple = ()) -> None:
    keys = set(a.keys(True, True))
    assert keys == set(b.keys(True, True)), f"{where}: keys differ"
    for key in keys - set(skip):
        x, y = a.get(key), b.get(key)
        assert x.dtype == y.dtype and x.shape == y.shape, (where, key)
        if x.is_floating_point():  # bit for bit, NaNs included
            x, y = x.contiguous().view(torch.uint8), y.contiguous().view(torch.uint8)
        assert torch.equal(x, y), (where, key)


def collect(env: MarketEnv, policy, batches: int) -> list[TensorDictBase]:
    torch.manual_seed(0)
    collector = Collector(
        env, policy, frames_per_batch=env.n * 60, total_frames=-1, env_device="cpu"
    )
    out = [batch.clone() for _, batch in zip(range(batches), collector, strict=False)]
    collector.shutdown()
    assert env._lean_checked == env.lean_step, "the collector did not take the path under test"
    return out


@pytest.mark.parametrize("market", list(MARKETS))
@pytest.mark.parametrize("policy", ["random", "fixed"])
def test_collector_batches_are_bit_identical(smoke, data, market: str, policy: str) -> None:
    runs = []
    for lean in PATHS:
        env = grandmodel.build_env(_cfg(smoke, lean, *MARKETS[market]), data, seed=3)
        runs.append(collect(env, None if policy == "random" else fixed_policy(), batches=4))
    done = torch.stack([b.get(("next", "done")).view(6, -1) for b in runs[0]], dim=1).view(6, -1)
    ends = done.sum(0)
    assert ends.any(), "no auto-reset happened"
    if market == "partial_resets":
        assert ((ends > 0) & (ends < 6)).any(), "no partial auto-reset happened"
    for i, (generic, lean) in enumerate(zip(*runs, strict=True)):
        assert_same(generic, lean, f"batch {i}")


@pytest.mark.parametrize("market", list(MARKETS))
def test_transition_and_carry_over_equal_torchrl_s(smoke, data, market: str) -> None:
    """Each call's two outputs, including the entries the policy wrote and TorchRL's zeros for
    them in the rows of a partial reset."""
    envs = [
        grandmodel.build_env(_cfg(smoke, lean, *MARKETS[market]), data, seed=5) for lean in PATHS
    ]
    policy = fixed_policy()
    carry = [env.reset() for env in envs]
    partial_seen = False
    for step in range(300):
        if step % 7 == 0:  # now and then the policy is skipped: stale and zeroed entries persist
            carry = [policy(td) for td in carry]
        outs = [env.step_and_maybe_reset(td) for env, td in zip(envs, carry, strict=True)]
        assert_same(outs[0][0], outs[1][0], f"transition {step}")
        assert_same(outs[0][1], outs[1][1], f"carry-over {step}")
        done = outs[0][0].get(("next", "done"))
        partial_seen |= bool(done.any() and not done.all())
        carry = [out[1] for out in outs]
    assert partial_seen or market == "full_resets"


def test_multi_sync_collector_batches_are_bit_identical(smoke, data) -> None:
    runs = []
    for lean in PATHS:
        cfg = _cfg(smoke, lean, *MARKETS["partial_resets"])
        make = [partial(MarketEnv, data, cfg, n_envs=3, seed=seed) for seed in (1, 2)]
        torch.manual_seed(0)
        collector = MultiSyncCollector(
            make, fixed_policy(), frames_per_batch=6 * 40, total_frames=-1, cat_results=0
        )
        runs.append([batch.clone() for _, batch in zip(range(2), collector, strict=False)])
        collector.shutdown()
    # trajectory ids come from a counter the workers share: their order is the processes' race
    for i, (generic, lean) in enumerate(zip(*runs, strict=True)):
        assert_same(generic, lean, f"batch {i}", skip=[("collector", "traj_ids")])


def test_torchrl_checks_and_rollouts_with_the_lean_path(smoke, data) -> None:
    env = grandmodel.build_env(_cfg(smoke, True), data, n_envs=3)
    check_env_specs(env, seed=0)
    rollouts = []
    for lean in PATHS:
        env = grandmodel.build_env(_cfg(smoke, lean, ("data.episode_length", 30)), data, seed=9)
        torch.manual_seed(1)
        rollouts.append(env.rollout(100, break_when_any_done=False))
    assert_same(*rollouts, "rollout")

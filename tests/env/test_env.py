"""MarketEnv behaviour: API checkers, look-ahead, determinism, full passes, partial resets, bad config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

import grandmodel
from grandmodel.config.base import ConfigError
from grandmodel.config.curriculum import CurriculumLevel
from grandmodel.env import MarketEnv, to_gymnasium, to_pettingzoo
from grandmodel.env.baselines import joint_baseline
from grandmodel.env.kernel import replace_sorted
from grandmodel.errors import DataError
from tests.conftest import es_bars, write_csv
from tests.data.test_leakage import _perturbed


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    outputs = tmp_path_factory.mktemp("outputs")
    return grandmodel.load_config(
        ["experiment=smoke", f"paths.outputs_dir={outputs}", "env.n_envs=4"]
    )


@pytest.mark.parametrize("n_envs", [1, 8])
def test_torchrl_spec_check_passes(smoke, n_envs: int) -> None:
    check_env_specs(grandmodel.build_env(smoke, n_envs=n_envs), seed=0)


def test_pettingzoo_parallel_api(smoke) -> None:
    parallel_api_test(to_pettingzoo(smoke), num_cycles=200)


@pytest.mark.parametrize("role", ["strategic", "tactical", "risk"])
def test_gymnasium_checker_for_each_role(smoke, role: str) -> None:
    env = to_gymnasium(smoke, role=role)
    check_env(env, skip_render_check=True)
    observation, _ = env.reset(seed=3)
    assert env.observation_space.contains(observation)


class FixedPolicy(torch.nn.Module):
    """A deterministic function of the three observations (random but fixed projections)."""

    def __init__(self, sizes: dict[str, int]) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = {role: torch.randn(size, 5, generator=g) for role, size in sizes.items()}

    def __call__(self, td: TensorDict) -> TensorDict:
        z = {role: td.get((role, "observation")).flatten(1) @ self.w[role] for role in self.w}
        td.set(("strategic", "action"), z["strategic"][:, :3].argmax(1))
        tactical = torch.sigmoid(z["tactical"][:, :3]) * torch.tensor(
            [1.0, 0.049, 1.9]
        ) + torch.tensor([0.0, 0.001, 0.1])
        td.set(("tactical", "action"), tactical)
        td.set(("risk", "action"), z["risk"].argmax(1))
        return td


def _walk(env, policy, steps: int) -> list[TensorDict]:
    td, out = env.reset(), []
    for _ in range(steps):
        transition = env.step(policy(td))
        out.append(transition.clone())
        td = transition.get("next").clone()
    return out


def test_perturbing_the_future_changes_nothing_known_before(tmp_path: Path) -> None:
    frame = es_bars(days=14, seed=3)
    args = ["data=csv", "data.episode_length=200", "env.n_envs=1", "data.cache=false"]
    cfg_a = grandmodel.load_config(
        [
            *args,
            f"data.path={write_csv(frame, tmp_path / 'a.csv')}",
            f"paths.outputs_dir={tmp_path}",
        ]
    )
    env_a = grandmodel.build_env(cfg_a, mode="eval", split="val")
    start = env_a.data.splits["val"][0]
    known = env_a.data.tactical.known_ns
    cut_ns = int(known[start + 120])
    cut = frame.index[np.searchsorted(frame.index.as_unit("ns").asi8, cut_ns)]
    cfg_b = grandmodel.load_config(
        [
            *args,
            f"data.path={write_csv(_perturbed(frame, cut), tmp_path / 'b.csv')}",
            f"paths.outputs_dir={tmp_path}",
        ]
    )
    env_b = grandmodel.build_env(cfg_b, mode="eval", split="val")
    sizes = {
        r: int(np.prod(env_a.observation_spec[r, "observation"].shape[1:]))
        for r in ("strategic", "tactical", "risk")
    }
    policy = FixedPolicy(sizes)
    walk_a, walk_b = _walk(env_a, policy, 160), _walk(env_b, policy, 160)
    compared = 0
    for a, b in zip(walk_a, walk_b, strict=True):
        t = int(a.get(("info", "t")))
        if int(known[t + 1]) > cut_ns:  # the transition's reward is marked at t + 1
            break
        for key in a.keys(include_nested=True, leaves_only=True):
            torch.testing.assert_close(
                a.get(key), b.get(key), rtol=0, atol=0, equal_nan=True, msg=f"{t} {key}"
            )
        compared += 1
    assert compared >= 100
    later = walk_a[compared + 10].get(("next", "tactical", "observation"))
    assert not torch.equal(later, walk_b[compared + 10].get(("next", "tactical", "observation")))


def test_same_seed_same_trajectory(smoke) -> None:
    rollouts = []
    for _ in range(2):
        env = grandmodel.build_env(smoke, seed=11)
        torch.manual_seed(5)
        rollouts.append(env.rollout(150, break_when_any_done=False))
    for key in rollouts[0].keys(include_nested=True, leaves_only=True):
        torch.testing.assert_close(
            rollouts[0].get(key), rollouts[1].get(key), rtol=0, atol=0, equal_nan=True
        )
    env = grandmodel.build_env(smoke, seed=12)
    torch.manual_seed(5)
    assert not torch.equal(env.rollout(5).get(("info", "t")), rollouts[0][:, :5].get(("info", "t")))


def test_compiled_step_equals_the_eager_step_for_one_env(smoke) -> None:
    """``env.compile=true`` (inductor) gives the eager trajectory, at batch 1 too (the backtest's)."""
    rollouts = []
    for compiled in (False, True):
        cfg = smoke.copy()
        cfg.env.compile = compiled
        env = grandmodel.build_env(cfg, seed=3, n_envs=1, split="test", mode="eval")
        torch.manual_seed(7)
        rollouts.append(env.rollout(1000, break_when_any_done=False))
    for key in rollouts[0].keys(include_nested=True, leaves_only=True):
        torch.testing.assert_close(
            rollouts[1].get(key), rollouts[0].get(key), rtol=1e-9, atol=1e-9, equal_nan=True
        )
    assert rollouts[0].get(("info", "stop_hit")).any(), "no stop was hit: the scan went untested"


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_a_full_pass_over_each_split_is_finite(smoke, split: str) -> None:
    data = grandmodel.prepare_data(smoke)
    probe = grandmodel.build_env(smoke, data, mode="eval", split=split, n_envs=1)
    starts, ends = probe.sampler.windows()
    env = grandmodel.build_env(smoke, data, mode="eval", split=split, n_envs=len(starts))
    torch.manual_seed(0)
    rollout = env.rollout(
        int((ends - starts).max()),
        break_when_any_done=False,
        auto_reset=False,
        tensordict=env.reset(),
    )
    alive = torch.ones(len(starts), dtype=torch.bool)
    seen = 0
    for i in range(rollout.shape[1]):
        step = rollout[:, i][alive]
        for key in [(r, "observation") for r in ("strategic", "tactical", "risk")] + [
            ("next", r, "reward") for r in ("strategic", "tactical", "risk")
        ]:
            assert torch.isfinite(step.get(key)).all(), (split, i, key)
        seen += int(alive.sum())
        alive &= ~rollout[:, i].get(("next", "done")).view(-1)
    assert seen == int((ends - starts).sum()), "every decision of the split was visited once"


def test_partial_reset_only_touches_the_flagged_envs(smoke) -> None:
    env = grandmodel.build_env(smoke, seed=1)
    td = env.reset()
    policy = joint_baseline(env.data.strategic.feature_names)
    for _ in range(5):
        td = env.step(policy(td)).get("next").clone()
    before = {k: v.clone() for k, v in env.state.items()}
    td.set("_reset", torch.tensor([[True], [False], [False], [True]]))
    env.reset(td)
    for key, value in env.state.items():
        assert (
            torch.equal(value[1:3], before[key][1:3])
            or (value[1:3].isnan() == before[key][1:3].isnan()).all()
        ), key
    assert int(env.state["steps"][0]) == 0 and int(env.state["steps"][1]) == 5


def test_a_curriculum_level_given_at_construction_sets_the_market(tmp_path: Path) -> None:
    cfg = grandmodel.load_config(
        [
            "experiment=smoke",
            f"paths.outputs_dir={tmp_path}",
            "data.synthetic.days=20",
            "+curriculum=level0",
        ]
    )
    env = MarketEnv(grandmodel.prepare_data(cfg), cfg, n_envs=2, level=cfg.curriculum.levels[0])
    assert env.level == CurriculumLevel(["strong_trend"], [0.1, 0.3], 0.1, 500)
    assert set(env.data.regime.unique().tolist()) <= {0, 1}  # trends only
    env.reset()
    assert bool((env.state["end"] - env.state["ptr"] == 500).all())
    env.set_level(CurriculumLevel(["sideways"], [0.2, 0.3], 0.1, 64))
    assert set(env.data.regime.unique().tolist()) == {2}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "env.stop_bounds=[0.05,0.001]",
            "env.stop_bounds: expected [low, high] with 0 < low < high < 1",
        ),
        ("env.risk_cap=[0,0.5,0.25,0.75,1]", "env.risk_cap: expected 5 strictly increasing levels"),
        ("env.n_envs=0", "env.n_envs: must be >= 1, got 0"),
        ("env.costs.commission=-1", "env.costs.commission: must be >= 0"),
    ],
)
def test_bad_env_config_fails_at_composition(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        grandmodel.load_config([override])


def test_episode_longer_than_the_split_fails_at_construction(smoke) -> None:
    with pytest.raises(
        DataError, match=r"data\.episode_length=100000 is longer than the train split"
    ):
        grandmodel.build_env(
            grandmodel.load_config(["experiment=smoke", "data.episode_length=100000"])
        )


def test_risk_observation_reports_the_portfolio(smoke) -> None:
    env = grandmodel.build_env(smoke, n_envs=2, seed=3)
    policy = joint_baseline(env.data.strategic.feature_names, {"strategic": "random"})
    torch.manual_seed(3)
    rollout = env.rollout(
        60, policy, break_when_any_done=False
    )  # within the first (64-step) episode
    risk = rollout.get(("next", "risk", "observation"))
    info = rollout.get(("next", "info"))
    max_contracts = float(smoke.env.max_contracts)
    torch.testing.assert_close(risk[..., 0].double(), info.get("position")[..., 0] / max_contracts)
    capital = float(smoke.env.initial_capital)
    equity = info.get("equity")[..., 0]
    torch.testing.assert_close(
        risk[..., 3].double(), 100 * info.get("drawdown")[..., 0], rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(
        risk[..., 2].double(),
        100 * (info.get("realised")[..., 0] - info.get("costs")[..., 0]) / capital,
        rtol=1e-5,
        atol=1e-5,
    )
    # historical VaR 95: minus the 5th-smallest of the last 100 step returns (zeros before 100 steps)
    returns = info.get("terms")[..., 0]
    step = 50
    window = torch.cat(
        (returns[:, : step + 1], torch.zeros(2, 100 - step - 1, dtype=returns.dtype)), dim=1
    )
    expected = (-window.kthvalue(5, dim=1).values).clamp_min(0) * 100
    torch.testing.assert_close(risk[:, step, 5].double(), expected, rtol=1e-5, atol=1e-6)
    assert bool((equity > 0).all())


def test_sorted_return_window_is_the_sorted_ring_after_evictions() -> None:
    """``replace_sorted`` keeps each row equal to the sorted ring buffer of its last W returns, with
    ties (rounded values) and evictions of the smallest, largest and middle entries."""
    gen = torch.Generator().manual_seed(0)
    rows, width = 64, 10
    ring = torch.zeros(rows, width, dtype=torch.float32)
    kept = ring.clone()
    for step in range(300):
        value = (torch.randn(rows, generator=gen) * 4).round() / 4  # many ties
        slot = step % width
        kept = replace_sorted(kept, ring[:, slot].clone(), value)
        ring[:, slot] = value
        torch.testing.assert_close(kept, ring.sort(dim=1).values, rtol=0, atol=0)

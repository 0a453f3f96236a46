"""Decision-level Gymnasium views: checkers, reward sums between decisions, vector autoreset, SB3."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env, data_equivalence
from gymnasium.vector import AutoresetMode

import grandmodel
from grandmodel.config.env import ROLES
from grandmodel.data.pipeline import prepare_data
from grandmodel.env.baselines import joint_baseline
from grandmodel.env.gym_views import DecisionEnv, DecisionVectorEnv


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    outputs = tmp_path_factory.mktemp("outputs")
    cfg = grandmodel.load_config(["experiment=smoke", f"paths.outputs_dir={outputs}"])
    return cfg, prepare_data(cfg)


def _actions(role: str, k: int, n: int) -> np.ndarray:
    """A fixed, varied action sequence (decision k, n sub-envs)."""
    if role == "tactical":
        return np.tile(np.array([[0.5 + 0.5 * (k % 2), 0.01, 0.5 + k % 3]], np.float32), (n, 1))
    return np.full(n, k % (3 if role == "strategic" else 5), np.int64)


@pytest.mark.parametrize("role", ROLES)
def test_decision_env_passes_the_gymnasium_checker(smoke, role: str) -> None:
    cfg, data = smoke
    env = DecisionEnv(cfg, role, data)
    check_env(env, skip_render_check=True)
    observation, info = env.reset(seed=3)
    assert env.observation_space.contains(observation) and info["elapsed_steps"] == 0


def test_strategic_step_spans_the_base_steps_to_the_next_decision(smoke) -> None:
    """Oracle: the base MarketEnv stepped by hand with the same actions and baselines."""
    cfg, data = smoke
    view = DecisionEnv(cfg, "strategic", data)
    view.reset(seed=5)
    env = grandmodel.build_env(cfg, data, n_envs=1)
    env.set_seed(5)
    others = joint_baseline(data.strategic.feature_names)
    td = env.reset()
    while not bool(td.get(("strategic", "decision")).all()):
        td = env.step(others(td)).get("next")
    k, done = 0, False
    while not done:
        action = int(_actions("strategic", k, 1)[0])
        observation, reward, terminated, truncated, info = view.step(action)
        total, steps = 0.0, 0
        while True:
            td = others(td)
            td.set(("strategic", "action"), torch.tensor([action]))
            td = env.step(td).get("next")
            total += float(td.get(("strategic", "reward")))
            steps += 1
            done = bool(td.get("done"))
            if done or bool(td.get(("strategic", "decision"))):
                break
        assert info["elapsed_steps"] == steps and reward == pytest.approx(total, abs=1e-9)
        assert (terminated or truncated) == done
        assert info["strategic_decision"] or done
        np.testing.assert_array_equal(observation, td.get(("strategic", "observation"))[0].numpy())
        k += 1
    assert k > 3 and info["t"] == int(td.get(("info", "t")))


def test_tactical_and_risk_decide_every_base_step(smoke) -> None:
    cfg, data = smoke
    for role in ("tactical", "risk"):
        env = DecisionEnv(cfg, role, data)
        env.reset(seed=0)
        steps = [env.step(_actions(role, k, 1)[0])[4]["elapsed_steps"] for k in range(20)]
        assert steps == [1] * 20


def _rollout(venv: DecisionVectorEnv, seed: int, steps: int) -> list[tuple]:
    out = [venv.reset(seed=seed)]
    for k in range(steps):
        out.append(venv.step(_actions(venv.role, k, venv.num_envs)))
    return out


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_vector_view_spaces_autoreset_and_seed_determinism(smoke, mode: AutoresetMode) -> None:
    cfg, data = smoke
    venv = DecisionVectorEnv(cfg, "strategic", 4, data, autoreset_mode=mode)
    assert venv.metadata["autoreset_mode"] is mode
    first = _rollout(venv, seed=7, steps=40)
    previous, ended = None, np.zeros(4, bool)
    for result in first[1:]:
        observation, reward, terminated, truncated, info = result
        assert venv.observation_space.contains(observation), "observation outside its space"
        assert reward.shape == (4,) and reward.dtype == np.float64
        assert terminated.dtype == truncated.dtype == np.bool_
        assert previous is None or not np.shares_memory(observation, previous)
        if mode is AutoresetMode.NEXT_STEP:  # the step after an end resets: no reward, no time
            assert np.all(info["elapsed_steps"][ended] == 0) and np.all(reward[ended] == 0)
        else:  # reset in the same step: the returned observation is the next episode's
            done = terminated | truncated
            assert info.get("_final_obs", np.zeros(4, bool)).tolist() == done.tolist()
            for i in np.flatnonzero(done):
                assert venv.single_observation_space.contains(info["final_obs"][i])
        waiting = info["strategic_decision"] | terminated | truncated
        assert waiting.all(), "every running sub-env waits at a strategic decision"
        previous, ended = observation, terminated | truncated
    assert sum(int((r[2] | r[3]).sum()) for r in first[1:]) >= 4, "episodes ended and reset"
    again = _rollout(DecisionVectorEnv(cfg, "strategic", 4, data, autoreset_mode=mode), 7, 40)
    assert data_equivalence(first, again), "same seed, same actions: same results"
    other = _rollout(venv, seed=8, steps=2)
    assert not data_equivalence(first[:3], other)


def test_vector_rows_match_a_one_env_view(smoke) -> None:
    """Row 0 of four (frozen while the others catch up) plays as a view of its own would."""
    cfg, data = smoke
    kwargs = {"mode": "eval", "split": "val", "autoreset_mode": AutoresetMode.DISABLED}
    four = DecisionVectorEnv(cfg, "strategic", 4, data, **kwargs)
    one = DecisionVectorEnv(cfg, "strategic", 1, data, **kwargs)
    a, b = four.reset(seed=0), one.reset(seed=0)
    np.testing.assert_array_equal(a[0][0], b[0][0])
    for k in range(200):
        a = four.step(_actions("strategic", k, 4))
        b = one.step(_actions("strategic", k, 1))
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x[0], y[0])
        assert a[4]["elapsed_steps"][0] == b[4]["elapsed_steps"][0]
        if b[2][0] or b[3][0]:
            break
        if (a[2] | a[3]).any():
            four.reset(options={"reset_mask": a[2] | a[3]})
    assert b[2][0] or b[3][0]


def test_sb3_ppo_learns_on_the_vector_view(smoke) -> None:
    pytest.importorskip("stable_baselines3", reason="Stable-Baselines3 is in the bench extra")
    from stable_baselines3 import PPO

    from grandmodel.env.sb3 import SB3VecEnv

    cfg, data = smoke
    venv = SB3VecEnv(DecisionVectorEnv(cfg, "strategic", 8, data, autoreset_mode="SameStep"))
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=2, seed=0, device="cpu")
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=512)
    assert model.num_timesteps == 512
    after = list(model.policy.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(x, y) for x, y in zip(before, after, strict=True))

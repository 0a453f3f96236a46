"""Learners are env-agnostic and correct: GAE, networks, a learning check on CartPole."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from tensordict import TensorDict
from torchrl.envs import GymEnv, SerialEnv
from torchrl.objectives.value.functional import generalized_advantage_estimate

import grandmodel
from grandmodel.agents import build_learner, group_specs
from grandmodel.agents.advantage import decision_gae
from grandmodel.agents.networks import Encoder
from grandmodel.config.agent import DQNConfig, PPOConfig, ReplayConfig, SACConfig
from grandmodel.config.base import ConfigError
from grandmodel.evaluation.evaluator import EpisodeEvaluator
from grandmodel.training.single import fit_agent


def test_gae_on_every_step_equals_torchrl() -> None:
    torch.manual_seed(0)
    n, t = 3, 25
    reward, value, next_value = torch.randn(n, t), torch.randn(n, t), torch.randn(n, t)
    done = torch.zeros(n, t, dtype=torch.bool)
    done[0, 7], done[1, 12] = True, True
    terminated = done.clone()
    terminated[1, 12] = False  # a truncation bootstraps
    ours, target = decision_gae(
        reward, value, next_value, torch.ones(n, t, dtype=torch.bool), done, terminated, 0.99, 0.95
    )
    ref, ref_target = generalized_advantage_estimate(
        0.99,
        0.95,
        value.unsqueeze(-1),
        next_value.unsqueeze(-1),
        reward.unsqueeze(-1),
        done.unsqueeze(-1),
        terminated.unsqueeze(-1),
        time_dim=-2,
    )
    torch.testing.assert_close(ours.float(), ref.squeeze(-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(target.float(), ref_target.squeeze(-1), rtol=1e-5, atol=1e-5)


def test_gae_over_decision_points_matches_a_hand_computation() -> None:
    gamma, lam = 0.9, 0.8
    reward = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    value = torch.tensor([[10.0, 0.0, 0.0, 20.0, 0.0, 0.0]])
    next_value = torch.tensor([[0.0, 0.0, 20.0, 0.0, 0.0, 30.0]])
    decision = torch.tensor([[True, False, False, True, False, False]])
    done = torch.zeros(1, 6, dtype=torch.bool)
    advantage, target = decision_gae(reward, value, next_value, decision, done, done, gamma, lam)
    r0 = 1 + gamma * 2 + gamma**2 * 3
    r1 = 4 + gamma * 5 + gamma**2 * 6
    a1 = r1 + gamma**3 * 30 - 20  # the last segment bootstraps from the final next value
    a0 = r0 + gamma**3 * 20 - 10 + lam * gamma**3 * a1
    assert advantage[0, 0].item() == pytest.approx(a0) and advantage[0, 3].item() == pytest.approx(
        a1
    )
    assert advantage[0, [1, 2, 4, 5]].abs().sum() == 0
    assert target[0, 0].item() == pytest.approx(a0 + 10)


@pytest.mark.parametrize("kind", ["flatten", "conv1d", "gru", "last"])
def test_encoders_keep_leading_dimensions(kind: str) -> None:
    encoder = Encoder((48, 13), kind, 16)
    out = encoder(torch.randn(5, 7, 48, 13))
    assert out.shape == (5, 7, encoder.out_features)


def test_the_last_bar_encoder_sees_only_the_last_bar() -> None:
    encoder = Encoder((48, 13), "last")
    window = torch.randn(3, 48, 13)
    changed = window.clone()
    changed[:, :-1] = torch.randn(3, 47, 13)
    assert torch.equal(encoder(window), window[:, -1]) and torch.equal(
        encoder(changed), encoder(window)
    )


def _cartpole(n: int = 4):
    return SerialEnv(n, lambda: GymEnv("CartPole-v1", categorical_action_encoding=True))


@pytest.mark.parametrize(
    ("env_name", "cfg"),
    [
        (
            "CartPole-v1",
            PPOConfig(shared_layers=[16], policy_layers=[8], value_layers=[8], epochs_per_update=1),
        ),
        (
            "CartPole-v1",
            DQNConfig(
                hidden_layers=[16],
                batch_size=16,
                replay=ReplayConfig(buffer_size=200, min_size_to_train=16),
            ),
        ),
        (
            "Pendulum-v1",
            SACConfig(
                hidden_layers=[16],
                batch_size=16,
                gradient_steps=1,
                replay=ReplayConfig(buffer_size=200, min_size_to_train=16),
            ),
        ),
        (
            "Pendulum-v1",
            PPOConfig(shared_layers=[16], policy_layers=[8], value_layers=[8], epochs_per_update=1),
        ),
    ],
)
def test_learners_work_on_classic_control_envs(env_name: str, cfg) -> None:
    env = GymEnv(env_name, categorical_action_encoding=True)
    (group,) = group_specs(env).values()
    learner = build_learner(OmegaConf.structured(cfg), group)
    policy = learner.exploration_policy()
    rollout = env.rollout(64, policy, break_when_any_done=False)
    before = [p.detach().clone() for p in learner.parameters()]
    learner.observe(rollout.unsqueeze(0))
    metrics = learner.learn(0.5)
    assert metrics and all(v == v for v in metrics.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, learner.parameters(), strict=True))


def test_dqn_clearly_beats_random_on_cartpole() -> None:
    cfg = OmegaConf.structured(
        DQNConfig(
            lr=1e-3,
            batch_size=64,
            exploration_fraction=0.5,
            epsilon_end=0.05,
            target_update_interval=100,
            hidden_layers=[64, 64],
            replay=ReplayConfig(buffer_size=10_000, min_size_to_train=500, prioritized=False),
        )
    )
    evaluator = EpisodeEvaluator(
        lambda: GymEnv("CartPole-v1", categorical_action_encoding=True), episodes=10, max_steps=500
    )
    system = fit_agent(
        _cartpole,
        cfg,
        total_frames=8192,
        frames_per_batch=256,
        eval_every_frames=8192,
        evaluator=evaluator,
    )
    trained = evaluator(system.policy)["mean_return"]
    env = GymEnv("CartPole-v1", categorical_action_encoding=True)
    env.set_seed(1)
    random_returns = [float(env.rollout(500).get(("next", "reward")).sum()) for _ in range(20)]
    random = sum(random_returns) / len(random_returns)
    assert random < 40
    assert trained > 4 * random, (trained, random)


@pytest.mark.parametrize(
    "cfg",
    [
        PPOConfig(shared_layers=[16], policy_layers=[8], value_layers=[8]),
        DQNConfig(hidden_layers=[16, 8]),
    ],
)
def test_a_learner_rebuilt_from_its_stored_config_loads_its_weights(cfg) -> None:
    (group,) = group_specs(GymEnv("CartPole-v1", categorical_action_encoding=True)).values()
    learner = build_learner(OmegaConf.structured(cfg), group)
    stored = OmegaConf.to_container(OmegaConf.structured(cfg), enum_to_str=True)  # as checkpoints
    assert isinstance(stored, dict)
    for node in (stored, OmegaConf.create(stored), cfg):
        rebuilt = build_learner(node, group)
        assert rebuilt.cfg == cfg
        rebuilt.prepare_for_loading()
        rebuilt.load_state_dict(learner.state_dict())  # strict: same keys and shapes
    with pytest.raises(ConfigError, match="algorithm: unknown 'a2c'"):
        build_learner({**stored, "algorithm": "a2c"}, group)
    with pytest.raises(ConfigError, match="lr: must be > 0"):
        build_learner({**stored, "lr": -1.0}, group)


def test_orthogonal_init_starts_ppo_near_uniform_with_orthogonal_layers() -> None:
    env = GymEnv("CartPole-v1", categorical_action_encoding=True)
    (group,) = group_specs(env).values()
    layers = {"shared_layers": [32], "policy_layers": [16], "value_layers": [16]}
    observations = env.rollout(64, break_when_any_done=False).get("observation")
    default = build_learner(OmegaConf.structured(PPOConfig(**layers)), group)
    learner = build_learner(OmegaConf.structured(PPOConfig(**layers, init="orthogonal")), group)
    linears = [m for m in learner.agent.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 5  # trunk 1, policy head 2, value head 2
    for layer in linears:
        w = layer.weight.detach()
        small = w if w.shape[0] <= w.shape[1] else w.T  # orthonormal rows of the narrow side
        gain = small.norm(dim=1)[0]
        assert torch.allclose(small @ small.T / gain**2, torch.eye(small.shape[0]), atol=1e-5)
        assert torch.count_nonzero(layer.bias) == 0
    policy_out, value_out = linears[2], linears[4]
    assert float(policy_out.weight.norm(dim=1).max()) == pytest.approx(0.01, rel=1e-4)
    assert float(value_out.weight.norm(dim=1).max()) == pytest.approx(1.0, rel=1e-4)

    def probabilities(ppo) -> torch.Tensor:
        td = TensorDict({group.observation: observations}, batch_size=[64])
        ppo.agent.get_policy_operator()(td)
        return td.get(group.key("logits")).softmax(-1)

    # the first policy: near uniform over the actions on every observation (PyTorch's init is not)
    assert (probabilities(learner) - 0.5).abs().max() < 0.01
    assert (probabilities(default) - 0.5).abs().max() > 0.01
    with pytest.raises(ConfigError, match=r"agent\.strategic\.init: expected one of"):
        grandmodel.load_config(["agent.strategic.init=xavier"])


def test_bad_agent_config_fails_at_composition() -> None:
    with pytest.raises(ConfigError, match=r"agent\.strategic\.activation: expected one of"):
        grandmodel.load_config(["agent.strategic.activation=swishy"])
    with pytest.raises(ConfigError, match=r"agent\.learn: expected a non-empty subset"):
        grandmodel.load_config(["agent.learn=[boss]"])
    with pytest.raises(
        ConfigError, match=r"agent.risk.replay.beta: expected 0 <= beta <= beta_end <= 1"
    ):
        grandmodel.load_config(["agent.risk.replay.beta=1.5"])


@pytest.mark.parametrize(
    ("fraction", "progress", "share"), [(1.0, 0.7, 1.0), (0.0, 0.25, 0.75), (0.2, 1.0, 0.2)]
)
def test_ppo_learning_rate_falls_linearly_with_progress(fraction, progress, share) -> None:
    env = GymEnv("CartPole-v1", categorical_action_encoding=True)
    (group,) = group_specs(env).values()
    cfg = PPOConfig(shared_layers=[8], policy_layers=[8], value_layers=[8], epochs_per_update=1)
    cfg.lr_final_fraction = fraction
    learner = build_learner(OmegaConf.structured(cfg), group)
    learner.observe(env.rollout(32, learner.exploration_policy()).unsqueeze(0))
    metrics = learner.learn(progress)
    (optimizer,) = learner.make_optimizers()
    assert metrics["lr"] == pytest.approx(cfg.lr * share)
    assert all(g["lr"] == pytest.approx(cfg.lr * share) for g in optimizer.param_groups)


@pytest.mark.parametrize(
    ("fraction", "progress", "epsilon"),
    [(0.5, 0.0, 1.0), (0.5, 0.25, 0.525), (0.5, 0.5, 0.05), (0.5, 0.9, 0.05), (0.0, 0.1, 0.05)],
)
def test_dqn_epsilon_falls_linearly_over_the_exploration_fraction(
    fraction, progress, epsilon
) -> None:
    env = GymEnv("CartPole-v1", categorical_action_encoding=True)
    (group,) = group_specs(env).values()
    cfg = DQNConfig(hidden_layers=[8], epsilon_end=0.05, exploration_fraction=fraction)
    learner = build_learner(OmegaConf.structured(cfg), group)
    assert learner.epsilon == 1.0  # the first batch is collected at epsilon_start
    learner.observe(env.rollout(32, learner.exploration_policy()).unsqueeze(0))
    metrics = learner.learn(progress)  # sets the epsilon of the next collected batch
    assert metrics["epsilon"] == pytest.approx(epsilon)
    assert float(learner.egreedy.eps) == pytest.approx(epsilon)

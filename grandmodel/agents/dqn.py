"""Double DQN with a dueling head and ε-greedy exploration as a Lightning learner."""

from __future__ import annotations

from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torch.optim import Adam, Optimizer
from torchrl.modules import EGreedyModule, QValueActor
from torchrl.objectives import DQNLoss, HardUpdate, ValueEstimators

from grandmodel.agents.groups import GroupSpec
from grandmodel.agents.networks import DuelingHead, Encoder, mlp, mlp_width
from grandmodel.agents.off_policy import OffPolicy
from grandmodel.config.agent import DQNConfig


class DQN(OffPolicy):
    """ε falls linearly with the share of training done, from ``epsilon_start`` to ``epsilon_end``
    at ``exploration_fraction`` of the run's frames, then stays there (CleanRL's schedule). Driven
    by the restored frame count, so it does not depend on the env layout and survives resume."""

    config_type = DQNConfig
    cfg: DQNConfig

    def __init__(self, cfg: DQNConfig, group: GroupSpec) -> None:
        super().__init__(cfg, group)
        g = group
        if not g.discrete:
            raise TypeError(f"DQN needs a discrete action; group {g.name!r} has a continuous one")
        encoder = Encoder(tuple(g.observation_spec.shape), cfg.encoder, cfg.encoder_size)
        layers = cfg.hidden_layers
        width = mlp_width(encoder.out_features, layers)
        head: nn.Module = (
            DuelingHead(width, g.n_actions) if cfg.dueling else nn.Linear(width, g.n_actions)
        )
        net = nn.Sequential(
            encoder, mlp(encoder.out_features, layers, cfg.activation, cfg.dropout), head
        )
        self.qnet = QValueActor(
            TensorDictModule(net, in_keys=[g.observation], out_keys=[g.key("action_value")]),
            in_keys=[g.observation],
            spec=g.action_spec,
            action_space="categorical",
            action_key=g.action,
            action_value_key=g.key("action_value"),
            chosen_action_value_key=g.key("chosen_action_value"),
        )
        self.egreedy = EGreedyModule(
            g.action_spec,
            eps_init=cfg.epsilon_start,
            eps_end=cfg.epsilon_end,
            annealing_num_steps=1,
            action_key=g.action,
        )
        self.egreedy.eps.fill_(cfg.epsilon_start)
        self.policy = TensorDictSequential(self.qnet, self.egreedy)
        self.loss = DQNLoss(
            self.qnet,
            loss_function="l2",
            delay_value=True,
            double_dqn=cfg.double_dqn,
            action_space=g.action_spec,
        )
        self.loss.set_keys(
            action=g.action,
            action_value=g.key("action_value"),
            value=g.key("chosen_action_value"),
            reward=g.reward,
            priority="td_error",
        )
        self.loss.make_value_estimator(ValueEstimators.TD0, gamma=cfg.gamma)
        self.target_updater = HardUpdate(
            self.loss, value_network_update_interval=cfg.target_update_interval
        )

    @property
    def epsilon(self) -> float:
        return float(self.egreedy.eps)

    def exploration_policy(self) -> TensorDictModule:
        return self.policy

    def make_optimizers(self) -> list[Optimizer]:
        if not self._optimizers:
            self._optimizers = [
                Adam(self.loss.value_network_params.values(True, True), lr=self.cfg.lr)
            ]
        return self._optimizers

    def update(self, sample: TensorDictBase) -> dict[str, float]:
        losses = self.loss(sample)
        norm = self.step(
            losses["loss"],
            self.make_optimizers(),
            list(self.loss.parameters()),
            self.cfg.max_grad_norm,
            "DQN loss",
        )
        self.target_updater.step()
        return {
            "loss": float(losses["loss"].detach()),
            "td_error": float(sample.get("td_error").abs().mean())
            if "td_error" in sample.keys()
            else float("nan"),
            "grad_norm": norm,
        }

    def learn(self, progress: float) -> dict[str, float]:
        out = super().learn(progress)
        self.egreedy.eps.fill_(epsilon_at(self.cfg, progress))  # for the next collected batch
        out["epsilon"] = self.epsilon
        return out

    def extra_state(self) -> dict:
        return super().extra_state() | {"target_counter": int(self.target_updater.counter)}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.target_updater.counter = int(state["target_counter"])


def epsilon_at(cfg: DQNConfig, progress: float) -> float:
    """ε after ``progress`` (share of the run's frames) of training: linear to ``epsilon_end``."""
    done = min(progress / cfg.exploration_fraction, 1.0) if cfg.exploration_fraction > 0 else 1.0
    return cfg.epsilon_start + (cfg.epsilon_end - cfg.epsilon_start) * done

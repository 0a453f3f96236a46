"""SAC (twin critics, automatic temperature, soft target updates) as a Lightning learner."""

from __future__ import annotations

from tensordict import TensorDictBase
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torch.optim import Adam, Optimizer
from torchrl.modules import ValueOperator
from torchrl.objectives import SACLoss, SoftUpdate, ValueEstimators

from grandmodel.agents.groups import GroupSpec
from grandmodel.agents.networks import Encoder, StateActionNet, mlp, mlp_width
from grandmodel.agents.off_policy import OffPolicy
from grandmodel.config.agent import SACConfig


class SAC(OffPolicy):
    """Tanh-Gaussian actor bounded by the action spec; ``gradient_steps`` updates per env step."""

    config_type = SACConfig
    cfg: SACConfig

    def __init__(self, cfg: SACConfig, group: GroupSpec) -> None:
        super().__init__(cfg, group)
        g = group
        if g.discrete:
            raise TypeError(f"SAC needs a continuous action; group {g.name!r} has a discrete one")
        encoder = Encoder(tuple(g.observation_spec.shape), cfg.encoder, cfg.encoder_size)
        layers = cfg.hidden_layers
        actor_net = nn.Sequential(
            encoder,
            mlp(encoder.out_features, layers, cfg.activation, cfg.dropout),
            nn.Linear(mlp_width(encoder.out_features, layers), 2 * g.n_actions),
            NormalParamExtractor(scale_mapping="biased_softplus_1.0"),
        )
        self.actor = g.tanh_normal_actor(
            TensorDictModule(
                actor_net, in_keys=[g.observation], out_keys=[g.key("loc"), g.key("scale")]
            )
        )
        qnet = StateActionNet(tuple(g.observation_spec.shape), g.n_actions, cfg)
        qvalue = ValueOperator(
            qnet, in_keys=[g.observation, g.action], out_keys=[g.key("state_action_value")]
        )
        self.loss = SACLoss(
            self.actor,
            qvalue,
            num_qvalue_nets=2,
            loss_function="l2",
            alpha_init=cfg.alpha_init,
            action_spec=g.action_spec,
            target_entropy="auto",
        )
        self.loss.set_keys(
            action=g.action,
            state_action_value=g.key("state_action_value"),
            log_prob=g.log_prob,
            reward=g.reward,
            priority="td_error",
        )
        self.loss.make_value_estimator(ValueEstimators.TD0, gamma=cfg.gamma)
        self.target_updater = SoftUpdate(self.loss, tau=cfg.tau)
        self.prepare_for_loading()

    def prepare_for_loading(self) -> None:
        _ = self.loss.target_entropy  # SACLoss builds this buffer lazily; a strict load needs it

    def exploration_policy(self) -> TensorDictModule:
        return self.actor

    def make_optimizers(self) -> list[Optimizer]:
        if not self._optimizers:
            self._optimizers = [
                Adam(self.loss.actor_network_params.values(True, True), lr=self.cfg.lr),
                Adam(self.loss.qvalue_network_params.values(True, True), lr=self.cfg.lr),
                Adam([self.loss.log_alpha], lr=self.cfg.lr),
            ]
        return self._optimizers

    def update(self, sample: TensorDictBase) -> dict[str, float]:
        losses = self.loss(sample)
        loss = losses["loss_actor"] + losses["loss_qvalue"] + losses["loss_alpha"]
        norm = self.step(
            loss,
            self.make_optimizers(),
            list(self.loss.parameters()),
            self.cfg.max_grad_norm,
            "SAC loss",
        )
        if int(self.updates) % self.cfg.target_update_interval == 0:
            self.target_updater.step()
        return {
            "loss_actor": float(losses["loss_actor"].detach()),
            "loss_qvalue": float(losses["loss_qvalue"].detach()),
            "loss_alpha": float(losses["loss_alpha"].detach()),
            "alpha": float(losses["alpha"].detach())
            if "alpha" in losses.keys()
            else float(self.loss.log_alpha.exp()),
            "entropy": float(losses["entropy"].detach())
            if "entropy" in losses.keys()
            else float("nan"),
            "td_error": float(sample.get("td_error").abs().mean())
            if "td_error" in sample.keys()
            else float("nan"),
            "grad_norm": norm,
        }

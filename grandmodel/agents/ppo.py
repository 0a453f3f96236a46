"""PPO (clipped objective, GAE on the group's own decision points) as a Lightning learner."""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torch.optim import Adam, Optimizer
from torchrl.modules import ActorValueOperator, ProbabilisticActor, ValueOperator
from torchrl.objectives import ClipPPOLoss

from grandmodel.agents.advantage import decision_gae
from grandmodel.agents.base import Algorithm
from grandmodel.agents.groups import GroupSpec
from grandmodel.agents.networks import Encoder, mlp, mlp_width, orthogonal_init
from grandmodel.config.agent import PPOConfig


class PPO(Algorithm):
    """Shared trunk (encoder + ``shared_layers``) with policy and value heads."""

    config_type = PPOConfig
    cfg: PPOConfig

    def __init__(self, cfg: PPOConfig, group: GroupSpec) -> None:
        super().__init__(cfg, group)
        g = group
        encoder = Encoder(tuple(g.observation_spec.shape), cfg.encoder, cfg.encoder_size)
        shared = [cfg.hidden_size, cfg.hidden_size // 2] if cfg.hidden_size else cfg.shared_layers
        trunk = nn.Sequential(
            encoder, mlp(encoder.out_features, shared, cfg.activation, cfg.dropout)
        )
        width = mlp_width(encoder.out_features, shared)
        hidden = g.key("hidden")
        common = TensorDictModule(trunk, in_keys=[g.observation], out_keys=[hidden])
        if g.discrete:
            head = mlp(width, cfg.policy_layers, cfg.activation, cfg.dropout, g.n_actions)
            policy_module = TensorDictModule(head, in_keys=[hidden], out_keys=[g.key("logits")])
            actor = ProbabilisticActor(
                policy_module,
                in_keys={"logits": g.key("logits")},
                out_keys=[g.action],
                distribution_class=torch.distributions.Categorical,
                return_log_prob=True,
                log_prob_key=g.log_prob,
                spec=g.action_spec,
            )
        else:
            head = nn.Sequential(
                mlp(width, cfg.policy_layers, cfg.activation, cfg.dropout, 2 * g.n_actions),
                NormalParamExtractor(),
            )
            policy_module = TensorDictModule(
                head, in_keys=[hidden], out_keys=[g.key("loc"), g.key("scale")]
            )
            actor = g.tanh_normal_actor(policy_module)
        value_head = mlp(width, cfg.value_layers, cfg.activation, cfg.dropout, 1)
        if cfg.init == "orthogonal":
            orthogonal_init(trunk, math.sqrt(2))
            orthogonal_init(head, math.sqrt(2), output_gain=0.01)
            orthogonal_init(value_head, math.sqrt(2), output_gain=1.0)
        critic = ValueOperator(value_head, in_keys=[hidden], out_keys=[g.key("state_value")])
        self.agent = ActorValueOperator(common, actor, critic)
        self.loss = ClipPPOLoss(
            self.agent.get_policy_operator(),
            self.agent.get_value_operator(),
            clip_epsilon=cfg.clip_range,
            entropy_coeff=cfg.entropy_coeff,
            critic_coeff=cfg.value_loss_coeff,
            loss_critic_type="l2",
            normalize_advantage=cfg.normalize_advantage,
        )
        self.loss.set_keys(
            action=g.action,
            sample_log_prob=g.log_prob,
            value=g.key("state_value"),
            advantage=g.key("advantage"),
            value_target=g.key("value_target"),
            reward=g.reward,
        )
        self._samples: TensorDictBase | None = None

    def exploration_policy(self) -> TensorDictModule:
        return self.agent.get_policy_operator()

    def make_optimizers(self) -> list[Optimizer]:
        if not self._optimizers:
            self._optimizers = [Adam(self.loss.parameters(), lr=self.cfg.lr)]
        return self._optimizers

    @torch.no_grad()
    def observe(self, batch: TensorDictBase) -> None:
        """GAE over this batch's decision points; keep those transitions for :meth:`learn`."""
        g = self.group
        value_of = self.agent.get_value_operator()
        with self.evaluating():
            values = value_of(batch.select(g.observation).clone()).get(g.key("state_value"))[..., 0]
            next_values = value_of(batch.get("next").select(g.observation).clone()).get(
                g.key("state_value")
            )[..., 0]
        if g.decision_key is not None:
            decision = batch.get(g.decision_key)[..., 0]
        else:
            decision = torch.ones(batch.shape, dtype=torch.bool, device=values.device)
        nxt = batch.get("next")
        advantage, target = decision_gae(
            nxt.get(g.reward)[..., 0],
            values,
            next_values,
            decision,
            nxt.get("done")[..., 0],
            nxt.get("terminated")[..., 0],
            self.cfg.gamma,
            self.cfg.gae_lambda,
        )
        keep = decision.reshape(-1)
        flat = batch.reshape(-1)
        samples = TensorDict(
            {
                g.observation: flat.get(g.observation)[keep],
                g.action: flat.get(g.action)[keep],
                g.log_prob: flat.get(g.log_prob)[keep],
                g.key("advantage"): advantage.reshape(-1)[keep].float().unsqueeze(-1),
                g.key("value_target"): target.reshape(-1)[keep].float().unsqueeze(-1),
            },
            batch_size=[int(keep.sum())],
        )
        self._samples = samples
        self.batches += 1

    def learn(self, progress: float) -> dict[str, float]:
        samples, self._samples = self._samples, None
        # data-parallel processes see different numbers of decisions: all use the smallest
        usable = self.agreed(0 if samples is None else samples.numel())
        if samples is None or usable < 2:
            return {}
        optimizer = self.make_optimizers()[0]
        # linear schedule on the share of training done (CleanRL's anneal_lr at lr_final_fraction=0)
        lr = self.cfg.lr * (1.0 - (1.0 - self.cfg.lr_final_fraction) * min(progress, 1.0))
        for group in optimizer.param_groups:
            group["lr"] = lr
        totals: dict[str, float] = {}
        count = 0
        size = min(self.cfg.batch_size, usable)
        for _ in range(self.cfg.epochs_per_update):
            order = torch.randperm(samples.numel(), device=samples.device)
            for start in range(0, usable - size + 1, size):
                losses = self.loss(samples[order[start : start + size]])
                loss = (
                    losses["loss_objective"]
                    + losses["loss_critic"]
                    + losses.get("loss_entropy", 0.0)
                )
                norm = self.step(
                    loss,
                    [optimizer],
                    list(self.loss.parameters()),
                    self.cfg.max_grad_norm,
                    "PPO loss",
                )
                for key in (
                    "loss_objective",
                    "loss_critic",
                    "loss_entropy",
                    "entropy",
                    "kl_approx",
                    "clip_fraction",
                ):
                    if key in losses.keys():
                        totals[key] = totals.get(key, 0.0) + float(losses[key].detach().mean())
                totals["grad_norm"] = totals.get("grad_norm", 0.0) + norm
                count += 1
        out = {k: v / max(count, 1) for k, v in totals.items()}
        out["decisions"] = float(samples.numel())
        out["lr"] = lr
        return out

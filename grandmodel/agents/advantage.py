"""Generalised advantage estimation on a group's own decision points (semi-MDP).

A group that acts only at some steps (the strategic agent, at 30-minute closes) earns the rewards of
every step until its next decision. Its transition i spans tau_i steps: return
R_i = sum_k gamma^k r_{t_i + k}, discount gamma^{tau_i}, bootstrap V(s_{t_i + tau_i}). GAE then runs
over the decisions: A_i = delta_i + lambda gamma^{tau_i} A_{i+1}. Where every step is a decision
this is ordinary GAE (truncation bootstraps from the final observation, termination does not).
"""

from __future__ import annotations

import torch


@torch.no_grad()
def decision_gae(
    reward: torch.Tensor,
    value: torch.Tensor,
    next_value: torch.Tensor,
    decision: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and value targets ``[B, T]`` (zero where ``decision`` is false).

    All inputs are ``[B, T]``; ``next_value`` is V of the step's next observation; ``done`` /
    ``terminated`` say the step ended the episode.
    """
    n_envs, steps = reward.shape
    reward, value, next_value = reward.double(), value.double(), next_value.double()
    advantage = torch.zeros_like(reward)
    ret = torch.zeros(n_envs, dtype=torch.float64, device=reward.device)
    discount, boot, chain = torch.zeros_like(ret), torch.zeros_like(ret), torch.zeros_like(ret)
    for k in reversed(range(steps)):
        last = k == steps - 1
        next_is_decision = torch.ones_like(done[:, k]) if last else decision[:, k + 1]
        boundary = done[:, k] | next_is_decision
        alive = gamma * (~terminated[:, k]).double()
        ret = torch.where(boundary, reward[:, k], reward[:, k] + gamma * ret)
        discount = torch.where(boundary, alive, gamma * discount)
        boot = torch.where(boundary, next_value[:, k], boot)
        following = torch.zeros_like(chain) if last else advantage[:, k + 1]
        chain = torch.where(boundary, torch.where(done[:, k], 0.0, following), chain)
        delta = ret + discount * boot - value[:, k]
        advantage[:, k] = torch.where(decision[:, k], delta + lam * discount * chain, 0.0)
    return advantage, advantage + torch.where(decision, value, 0.0)

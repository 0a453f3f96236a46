"""The meta-updates, as pure functions of parameter dicts (names → tensors).

Reptile (Nichol et al., 2018) moves the initialisation θ towards the weights φ that ``k`` inner
updates on a task reached: ``θ ← θ + ε (φ − θ)``, averaged over the tasks of a meta-batch; it
needs no second-order gradients. First-order MAML (Finn et al., 2017) steps θ against the gradient
of the task's query loss evaluated at φ: ``θ ← θ − β ∇L_query(φ)``. :func:`inner_sgd` is a
functional inner loop (``torch.func``) for models given as a loss of their parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch.func import grad

Params = dict[str, torch.Tensor]


def reptile_step(
    theta: Mapping[str, torch.Tensor], adapted: Iterable[Mapping[str, torch.Tensor]], eps: float
) -> Params:
    """``θ + ε · mean_i(φ_i − θ)`` over the adapted weights ``φ_i`` of a meta-batch."""
    phis = list(adapted)
    return {
        name: value + eps * torch.stack([phi[name] - value for phi in phis]).mean(0)
        for name, value in theta.items()
    }


def fomaml_step(
    theta: Mapping[str, torch.Tensor],
    query_grads: Iterable[Mapping[str, torch.Tensor]],
    beta: float,
) -> Params:
    """``θ − β · mean_i ∇L_i(φ_i)``: the first-order MAML step from the query gradients."""
    grads = list(query_grads)
    return {
        name: value - beta * torch.stack([g[name] for g in grads]).mean(0)
        for name, value in theta.items()
    }


def inner_sgd(
    loss: Callable[[Params, object], torch.Tensor],
    params: Params,
    batches: Iterable[object],
    lr: float,
) -> Params:
    """Plain SGD on ``loss(params, batch)`` over ``batches`` (one step each), via ``torch.func.grad``."""
    step = grad(loss)
    for batch in batches:
        g = step(params, batch)
        params = {name: value - lr * g[name] for name, value in params.items()}
    return params

"""Reptile and first-order MAML updates on a toy problem, against steps computed by hand.

Task i: L_i(w) = ½‖w − c_i‖². From θ, k SGD steps of size α reach φ_i = c_i + (1 − α)^k (θ − c_i).
"""

from __future__ import annotations

import torch

from grandmodel.meta.updates import fomaml_step, inner_sgd, reptile_step

THETA = {"w": torch.tensor([1.0, 2.0])}
TASKS = [torch.tensor([3.0, -2.0]), torch.tensor([-1.0, 0.0])]


def quadratic(params: dict[str, torch.Tensor], centre: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((params["w"] - centre) ** 2).sum()


def test_inner_sgd_reaches_the_closed_form() -> None:
    phi = inner_sgd(quadratic, THETA, [TASKS[0]] * 2, lr=0.1)
    # c + 0.9² (θ − c) = [3 + 0.81·(−2), −2 + 0.81·4]
    torch.testing.assert_close(phi["w"], torch.tensor([1.38, 1.24]))


def test_reptile_step_by_hand() -> None:
    phis = [inner_sgd(quadratic, THETA, [c] * 2, lr=0.1) for c in TASKS]
    # φ_1 = [1.38, 1.24]; φ_2 = [−1 + 0.81·2, 0 + 0.81·2] = [0.62, 1.62]
    # θ + ½·mean(φ − θ) = [1, 2] + ½·[(0.38 − 0.38)/2, (−0.76 − 0.38)/2] = [1.0, 1.715]
    new = reptile_step(THETA, phis, eps=0.5)
    torch.testing.assert_close(new["w"], torch.tensor([1.0, 1.715]))
    one = reptile_step(THETA, phis[:1], eps=0.5)
    torch.testing.assert_close(one["w"], torch.tensor([1.19, 1.62]))
    torch.testing.assert_close(reptile_step(THETA, phis[:1], eps=1.0)["w"], phis[0]["w"])


def test_first_order_maml_step_by_hand() -> None:
    phi = inner_sgd(quadratic, THETA, [TASKS[0]] * 2, lr=0.1)
    grad = {"w": phi["w"] - TASKS[0]}  # ∇L at φ = φ − c = [−1.62, 3.24]
    new = fomaml_step(THETA, [grad], beta=0.1)
    torch.testing.assert_close(new["w"], torch.tensor([1.162, 1.676]))

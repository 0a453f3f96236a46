"""The differential Sharpe ratio term against its definition (Moody & Saffell 1998)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grandmodel.env.rewards import differential_sharpe

ETA = 0.01


def run(returns: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The term at every step and the moving Sharpe ratio ``A / sqrt(B − A²)`` after it."""
    a = b = torch.zeros(1, dtype=torch.float64)
    terms, sharpe = [], []
    for r in returns:
        term, a, b = differential_sharpe(r.reshape(1), a, b, ETA)
        terms.append(float(term))
        sharpe.append(float(a / (b - a * a).sqrt()) if float(b - a * a) > 0 else 0.0)
    return np.array(terms), np.array(sharpe)


def test_one_step_by_hand() -> None:
    a, b, r = torch.tensor([1e-4]), torch.tensor([3e-7]), torch.tensor([5e-4])
    term, a1, b1 = differential_sharpe(r, a, b, ETA)
    d = (3e-7 * (5e-4 - 1e-4) - 0.5 * 1e-4 * (25e-8 - 3e-7)) / (3e-7 - 1e-8) ** 1.5
    assert float(term) == pytest.approx(ETA * d, rel=1e-5)
    assert float(a1) == pytest.approx(1e-4 + ETA * 4e-4)
    assert float(b1) == pytest.approx(3e-7 + ETA * (25e-8 - 3e-7))


def test_the_term_is_the_step_change_of_the_moving_sharpe_ratio() -> None:
    """η·D is the first-order change of S = A / sqrt(B − A²): once the moments have settled, the
    term and S_t − S_{t−1} agree step by step, in sign and in size."""
    gen = torch.Generator().manual_seed(0)
    returns = 1e-4 + 5e-4 * torch.randn(4000, generator=gen, dtype=torch.float64)
    terms, sharpe = run(returns)
    change = np.diff(sharpe)[999:]  # S_t − S_{t−1} for t >= 1000
    term = terms[1000:]
    assert np.corrcoef(term, change)[0, 1] > 0.999
    assert np.abs(term).mean() == pytest.approx(np.abs(change).mean(), rel=0.05)
    assert np.abs(term).max() < 1.0  # the ±1 clip is a guard, not in play at these sizes


def test_a_steady_positive_edge_earns_a_positive_term_on_average() -> None:
    gen = torch.Generator().manual_seed(1)
    edge = 2e-4 + 5e-4 * torch.randn(4000, generator=gen, dtype=torch.float64)
    terms, _ = run(torch.cat((-edge[:2000], edge[2000:])))  # a losing then a winning stretch
    assert terms[2200:2600].mean() > 0 > terms[200:600].mean()


def test_vol_scaled_rewards_are_the_plain_rewards_over_the_decision_bars_volatility(
    tmp_path,
) -> None:
    """``reward.vol_scaled``: every role's reward of a step decided at bar t is the plain reward
    times ``σ̃ / max(σ_t, σ̃ / 10)``; equity, positions and the reward terms are untouched."""
    import grandmodel
    from grandmodel.env.kernel import vol_scaling

    rollouts = {}
    for scaled in (False, True):
        cfg = grandmodel.load_config(
            ["experiment=smoke", f"paths.outputs_dir={tmp_path}", f"reward.vol_scaled={scaled}"]
        )
        env = grandmodel.build_env(cfg, n_envs=4)
        env.set_seed(0)
        torch.manual_seed(0)
        rollouts[scaled] = env.rollout(300, break_when_any_done=False)
        kernel = env.kernel
    plain, scaled = rollouts[False]["next"], rollouts[True]["next"]
    for key in (("info", "equity"), ("info", "position"), ("info", "terms")):
        assert torch.equal(plain.get(key), scaled.get(key)), key

    sigma = kernel.sigma
    typical = sigma[sigma > 0].median()
    factor = typical / torch.maximum(sigma, typical / 10)
    assert torch.equal(vol_scaling(sigma), factor)
    assert factor.min() < 0.8 and factor.max() > 1.25  # the market's volatility does vary

    t = plain.get(("info", "t")).reshape(4, 300) - 1  # the bar each step was decided at
    assert bool((t >= 0).all())
    for role in ("strategic", "tactical", "risk"):
        expected = plain.get((role, "reward")).reshape(4, 300).double() * factor[t]
        got = scaled.get((role, "reward")).reshape(4, 300).double()
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-9), role
        assert bool((got != 0).any())

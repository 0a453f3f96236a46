"""The regime filter: the Hamilton forward filter against brute-force enumeration, causality, how
well it finds the synthetic market's regimes, and its place beside the oracle in evaluations."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

import grandmodel
from grandmodel.config.data import SyntheticConfig
from grandmodel.data.synthetic.generators import REGIMES, generate
from grandmodel.evaluation.comparison import filter_model, references
from grandmodel.evaluation.regime_filter import (
    RegimeModel,
    decision_posteriors,
    forward_filter,
    minute_posteriors,
    posteriors,
)
from grandmodel.evaluation.walk import Walk


def _brute_force(lik: np.ndarray, transition: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """``P(S_t = j | r_0..r_t)`` by summing the joint probability of every state path."""
    steps, k = lik.shape
    out = np.zeros((steps, k))
    for t in range(steps):
        for path in itertools.product(range(k), repeat=t + 1):
            p = prior[path[0]] * lik[0, path[0]]
            for s in range(1, t + 1):
                p *= transition[path[s - 1], path[s]] * lik[s, path[s]]
            out[t, path[-1]] += p
        out[t] /= out[t].sum()
    return out


def test_forward_filter_equals_brute_force_enumeration() -> None:
    # two regimes, three returns: by hand, alpha_0 = (0.5·0.8, 0.5·0.2) / 0.5 = (0.8, 0.2);
    # alpha_1 ∝ b_1 ⊙ (P^T alpha_0) = (0.1·0.78, 0.6·0.22) = (0.078, 0.132)
    transition = np.array([[0.9, 0.1], [0.3, 0.7]])
    prior = np.array([0.5, 0.5])
    lik = np.array([[0.8, 0.2], [0.1, 0.6], [0.5, 0.5]])
    expected = _brute_force(lik, transition, prior)
    np.testing.assert_allclose(expected[0], [0.8, 0.2])
    np.testing.assert_allclose(expected[1], np.array([0.078, 0.132]) / 0.21)
    for chunk in (None, 1, 2, 5):
        got = np.exp(forward_filter(np.log(lik), transition, prior, chunk))
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    # a random 3-state chain over 7 steps, every chunk length
    rng = np.random.default_rng(3)
    transition = rng.dirichlet(np.ones(3), size=3)
    prior, lik = rng.dirichlet(np.ones(3)), rng.uniform(0.01, 2.0, (7, 3))
    expected = _brute_force(lik, transition, prior)
    for chunk in range(1, 9):
        got = np.exp(forward_filter(np.log(lik), transition, prior, chunk))
        np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_a_regime_that_cannot_persist_or_start_is_handled() -> None:
    """Zeros in the transition matrix and the prior are -inf in log space, never nan."""
    transition = np.array([[0.0, 1.0], [1.0, 0.0]])  # strictly alternating
    prior = np.array([1.0, 0.0])
    got = np.exp(forward_filter(np.zeros((5, 2)), transition, prior, chunk=2))
    np.testing.assert_array_equal(got, [[1, 0], [0, 1], [1, 0], [0, 1], [1, 0]])


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    outputs = tmp_path_factory.mktemp("outputs")
    cfg = grandmodel.load_config(["experiment=smoke", f"paths.outputs_dir={outputs}"])
    return cfg, grandmodel.prepare_data(cfg)


def test_posteriors_are_causal(market) -> None:
    """Perturbing every bar after a decision's last known bar leaves every posterior up to that
    decision bit-identical; each decision reads only one-minute bars closed by then."""
    cfg, data = market
    model = filter_model(Walk(cfg, data, "val"))
    assert model is not None
    base = minute_posteriors(data, model)
    before = decision_posteriors(data, base)
    t0 = int(data.splits["val"][0]) + 17
    strategic_close = data.strategic.known_ns[data.strategic_index[t0]]
    cutoff = int(np.searchsorted(data.base.known_ns.numpy(), int(strategic_close), side="right"))
    close = data.base.close.clone()
    noise = np.random.default_rng(0).normal(0, 0.01, len(close) - cutoff)
    close[cutoff:] *= torch.from_numpy(np.exp(noise))
    data.base.close, original = close, data.base.close
    try:
        after = decision_posteriors(data, minute_posteriors(data, model))
    finally:
        data.base.close = original
    np.testing.assert_array_equal(after[: t0 + 1], before[: t0 + 1])
    assert not np.array_equal(after, before)
    # the bar each decision reads closed no later than the decision itself
    index = data.strategic_index.numpy()
    assert (index[data.meta["first_decision"] :] >= 0).all()
    known = data.strategic.known_ns.numpy()[np.maximum(index, 0)]
    last = np.searchsorted(data.base.known_ns.numpy(), known, "right") - 1
    assert (data.base.known_ns.numpy()[last] <= data.tactical.known_ns.numpy())[index >= 0].all()


def test_the_filter_finds_the_regimes_of_generated_data() -> None:
    cfg = SyntheticConfig(days=12, seed=11)
    frame = generate(cfg)
    model = RegimeModel.from_config(cfg)
    returns = np.diff(np.log(frame["close"].to_numpy()), prepend=np.log(cfg.initial_price))
    post = posteriors(model, returns)
    truth = frame["regime"].to_numpy()
    chance = np.bincount(truth).max() / truth.size  # always guessing the commonest regime
    accuracy = (model.codes[post.argmax(axis=1)] == truth).mean()
    assert chance < 0.45 and accuracy > 0.8, (chance, accuracy)
    up, down = REGIMES.index("trend_up"), REGIMES.index("trend_down")
    trending = np.isin(truth, (up, down))
    direction = post[:, list(model.codes).index(up)] > post[:, list(model.codes).index(down)]
    assert (direction == (truth == up))[trending].mean() > 0.75


def test_the_regime_filter_stands_beside_the_oracle_on_regime_data_only(market) -> None:
    cfg, data = market
    walk = Walk(cfg, data, "test")
    policies = references(walk)
    assert list(policies)[-2:] == ["oracle", "regime_filter"]
    lean, torch_walk = (walk.run(policies["regime_filter"], lean=flag) for flag in (True, False))
    np.testing.assert_equal(lean.metrics, torch_walk.metrics)
    assert lean.metrics["trades"] > 0
    garch = grandmodel.load_config(["experiment=smoke", "data.synthetic.generator=garch"])
    assert filter_model(Walk(garch, grandmodel.prepare_data(garch), "test")) is None


def test_training_and_evaluate_print_the_regime_filter_row(tmp_path: Path, capsys) -> None:
    from grandmodel.evaluation.commands import run_evaluation
    from grandmodel.train import train

    paths = [f"paths.outputs_dir={tmp_path}", "logger=csv"]
    run = tmp_path / "run"
    tiny = [
        f"trainer.{key}=128" for key in ("total_frames", "frames_per_batch", "eval_every_frames")
    ]
    train(grandmodel.load_config(["experiment=smoke", *paths, f"paths.output_dir={run}", *tiny]))
    final = capsys.readouterr().out  # the final table: every policy's Sharpe ratio and interval
    assert "sharpe [95% CI] oracle" in final and "sharpe [95% CI] regime_filter" in final
    cfg = grandmodel.load_config(
        [
            f"run={run}",
            "counterfactual=false",
            "policy=torch",
            *paths,
            f"paths.output_dir={tmp_path / 'ev'}",
        ],
        config_name="evaluate",
    )
    result = run_evaluation(cfg)
    rows = [line for line in capsys.readouterr().out.splitlines() if "regime_filter" in line]
    assert len(rows) == 1, "one row of the comparison table"
    assert {"oracle", "regime_filter"} <= set(result["metrics"])

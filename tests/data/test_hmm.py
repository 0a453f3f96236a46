"""The fitted regime features (``grandmodel/data/hmm.py``): the bar-by-bar filter is the batch
one, the per-base-bar model is the fitted chain's, and only the training split shapes the fit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import grandmodel
from grandmodel.config import validate
from grandmodel.data.features import OBSERVATION
from grandmodel.data.hmm import RegimeFit
from grandmodel.data.pipeline import prepare
from grandmodel.errors import DataError
from tests.conftest import es_bars, write_csv
from tests.data.test_leakage import _perturbed

FITTED = ("regime_edge", "regime_vol")


def test_the_bar_by_bar_filter_is_the_batch_filter() -> None:
    rng = np.random.default_rng(5)
    fit = RegimeFit(mean=[-2e-5, 0.0, 3e-5], var=[4e-8, 1e-8, 9e-8], bars=[300.0, 900.0, 120.0])
    returns = rng.normal(0.0, 2e-4, 2_000)
    batch = fit.posteriors(returns)
    posterior = None
    for t, r in enumerate(returns):
        posterior = fit.step(posterior, float(r))
        np.testing.assert_allclose(posterior, batch[t], atol=1e-9)
    # the features are the posterior's expectations
    values = fit.features(batch[-1:])
    p = np.exp(batch[-1])
    assert values["regime_edge"][0] == pytest.approx(p @ (np.array(fit.mean) * fit.bars))
    assert values["regime_vol"][0] == pytest.approx(p @ np.sqrt(fit.var))


def test_the_fit_recovers_a_planted_chain_per_base_bar() -> None:
    """Two regimes of one-minute returns (a calm up-trend, a volatile down-trend, mean duration 600
    minutes), fitted on 30-minute sums: the per-minute model is the planted one."""
    rng = np.random.default_rng(11)
    mean, sd, duration, n = np.array([3e-5, -3e-5]), np.array([3e-4, 6e-4]), 600.0, 600_000
    state = np.zeros(n, dtype=np.int64)
    switches = np.flatnonzero(rng.random(n) < 1.0 / duration)
    for start in switches:
        state[start:] = 1 - state[start]
    returns = rng.normal(mean[state], sd[state])
    fit = RegimeFit.fit(returns, summed=30, states=2, restarts=2)
    # sorted by mean: the down-trend first
    np.testing.assert_allclose(fit.mean, mean[::-1], rtol=0.25)
    np.testing.assert_allclose(np.sqrt(fit.var), sd[::-1], rtol=0.05)
    np.testing.assert_allclose(fit.bars, duration, rtol=0.25)
    # filtered with it, the posterior finds the planted regime most of the time
    found = np.exp(fit.posteriors(returns)).argmax(1) == 1 - state
    assert found.mean() > 0.8


def _prepare(path: Path, outputs: Path, features: bool = True):
    names = ",".join((*OBSERVATION["strategic"], *FITTED))
    overrides = [f"data.features.strategic=[{names}]"] if features else []
    cfg = grandmodel.load_config(
        ["data=csv", f"data.path={path}", f"paths.outputs_dir={outputs}", "data.cache=false",
         "data.episode_length=64", "data.regime_fit.restarts=2", *overrides]
    )  # fmt: skip
    return prepare(validate(cfg).data, Path(cfg.paths.cache_dir))


def test_only_the_training_split_shapes_the_fit(tmp_path: Path) -> None:
    """Bars after the training split change nothing known before them; bars inside it change the
    fit. A model's own fit is used on other data, and statistics without one are refused."""
    frame = es_bars(days=14, seed=3)
    tables, data = _prepare(write_csv(frame, tmp_path / "a.csv"), tmp_path / "a")
    train_end = int(data.tactical.known_ns[data.splits["train"][1] - 1])
    fit = data.norm["strategic"].regime
    assert fit is not None and data.norm["tactical"].regime is None
    assert len(fit["mean"]) == 5 and fit["fitted_on"]["summed"] == 30
    strategic = tables.frames["strategic"]
    assert np.isfinite(strategic[list(FITTED)].to_numpy()).all()
    assert strategic["regime_edge"].std() > 0
    for fraction, same in ((0.85, True), (0.3, False)):
        cut = frame.index[int(len(frame) * fraction)]
        assert (cut.value > train_end) == same
        other = write_csv(_perturbed(frame, cut), tmp_path / f"{fraction}.csv")
        tables_b, data_b = _prepare(other, tmp_path / f"b{fraction}")
        assert (data_b.norm["strategic"].regime == fit) == same
        if same:
            known = strategic["known_ns"].to_numpy() <= cut.value
            np.testing.assert_array_equal(
                strategic.loc[known, list(FITTED)].to_numpy(),
                tables_b.frames["strategic"].loc[known, list(FITTED)].to_numpy(),
            )
    # the model's fit on other data: the filter runs, nothing is refitted
    other = write_csv(es_bars(days=14, seed=4), tmp_path / "other.csv")
    cfg = grandmodel.load_config(
        ["data=csv", f"data.path={other}", f"paths.outputs_dir={tmp_path / 'c'}",
         "data.episode_length=64", f"data.features.strategic=[{','.join((*OBSERVATION['strategic'], *FITTED))}]"]
    )  # fmt: skip
    _, given = prepare(validate(cfg).data, Path(cfg.paths.cache_dir), data.norm)
    assert given.norm["strategic"].regime == fit
    # too little training data for the states asked: one line naming the key, before any EM run
    cfg.data.regime_fit.states = 60
    with pytest.raises(
        DataError, match=r"^data.regime_fit: the training split holds \d+ strategic"
    ):
        prepare(validate(cfg).data, Path(cfg.paths.cache_dir))
    cfg.data.regime_fit.states = 5
    without = {**data.norm, "strategic": replace(data.norm["strategic"], regime=None)}
    with pytest.raises(DataError, match="hold no regime fit"):
        prepare(validate(cfg).data, Path(cfg.paths.cache_dir), without)


def test_a_second_run_on_the_same_data_reads_the_first_runs_fit(
    tmp_path: Path, monkeypatch
) -> None:
    """The fit is kept beside the data cache, keyed by the data's content, the training split and
    the settings: the same data reads it back (no EM run), other settings fit anew."""
    path = write_csv(es_bars(days=14, seed=3), tmp_path / "a.csv")
    names = ",".join((*OBSERVATION["strategic"], *FITTED))
    overrides = ["data=csv", f"data.path={path}", f"paths.outputs_dir={tmp_path}",
                 "data.episode_length=64", "data.regime_fit.restarts=2", f"data.features.strategic=[{names}]"]  # fmt: skip
    cfg = grandmodel.load_config(overrides)
    first = prepare(validate(cfg).data, Path(cfg.paths.cache_dir))
    fits = list((Path(cfg.paths.cache_dir) / "regime_fits").rglob("*.json"))
    assert len(fits) == 1

    def no_em(*args, **kwargs):
        raise AssertionError("fitted again")

    monkeypatch.setattr(RegimeFit, "fit", no_em)
    second = prepare(validate(cfg).data, Path(cfg.paths.cache_dir))
    assert second[1].norm["strategic"].regime == first[1].norm["strategic"].regime
    np.testing.assert_array_equal(
        second[0].frames["strategic"][list(FITTED)].to_numpy(),
        first[0].frames["strategic"][list(FITTED)].to_numpy(),
    )
    other = grandmodel.load_config([*overrides, "data.regime_fit.states=4"])
    with pytest.raises(AssertionError, match="fitted again"):
        prepare(validate(other).data, Path(other.paths.cache_dir))

"""The QuantGAN scenario generator: fitted from the CLI for a few steps, saved with its config and
data hash, reloaded weights-only, sampled deterministically into valid OHLCV bars on the calendar;
conditioning follows the requested regimes; the generator's own drift is removed; the networks are
causal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from grandmodel.checkpoints import load_checkpoint
from grandmodel.config import ConfigError, typed
from grandmodel.config.data import SyntheticConfig
from grandmodel.config.meta import GanConfig
from grandmodel.data.synthetic import generate, session_index
from grandmodel.data.synthetic.gan import (
    QuantGAN,
    fit_gan,
    gaussianize,
    heavy_tails,
    lambert_delta,
    load_generator,
    output_drift,
    sample_returns,
    save_generator,
)
from grandmodel.errors import GrandModelError

TINY = ["gan.steps=3", "gan.window=32", "gan.layers=3", "gan.hidden=8", "gan.batch_size=8"]


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generator fitted through the CLI on the test bars (3 steps, tiny networks)."""
    import subprocess
    import sys

    from tests.conftest import ROOT, es_bars, write_csv

    folder = tmp_path_factory.mktemp("gan")
    csv = write_csv(es_bars(days=4), folder / "es.csv")
    out = folder / "out"
    args = [sys.executable, "-m", "grandmodel.data.fit_generator", f"paths.outputs_dir={out}",
            "data=csv", f"data.path={csv}", "logger=csv", *TINY]  # fmt: skip
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "use it: data.synthetic.generator=gan" in proc.stdout
    (path,) = out.glob("runs/*/generator.pt")
    record = [json.loads(line) for line in (path.parent / "tracking/record.jsonl").open()]
    assert record[0]["tags"]["kind"] == "generator"
    assert any(op["op"] == "artifact" and op["path"] == str(path) for op in record)
    assert record[-1] == {**record[-1], "op": "status", "status": "FINISHED"}
    return path


def test_saved_with_config_and_data_hash_and_loads_weights_only(generator_file: Path) -> None:
    payload = load_checkpoint(generator_file)  # torch.load(weights_only=True)
    assert payload["format"] == "grandmodel-gan"
    assert payload["config"]["window"] == 32 and payload["config"]["layers"] == 3
    assert len(payload["data_hash"]) == 16 and payload["steps"] == 3
    assert 0 < payload["scale"]["std"] < 1e-2
    volatility = payload["volatility"]  # gan.intraday_profile and gan.daily_level are on
    assert volatility["daily"] and len(volatility["profile"]) == 1440
    assert len(set(volatility["profile"])) > 100  # fitted, not the identity's ones


def _synthetic(path: Path, seed: int) -> SyntheticConfig:
    return typed(
        {"generator": "gan", "gan_path": str(path), "days": 2, "seed": seed}, SyntheticConfig
    )


def test_sampling_is_seeded_and_gives_valid_bars_on_the_calendar(generator_file: Path) -> None:
    a, b = generate(_synthetic(generator_file, 3)), generate(_synthetic(generator_file, 3))
    other = generate(_synthetic(generator_file, 4))
    assert a.equals(b)
    assert not a["close"].equals(other["close"])
    assert a.index.equals(session_index("2023-01-02", 2))
    assert (a["high"] >= a[["open", "close"]].max(axis=1)).all()
    assert (a["low"] <= a[["open", "close"]].min(axis=1)).all()
    assert (a["volume"] >= 1).all() and np.isfinite(a.to_numpy()).all()


def test_sampling_removes_the_generators_own_drift(generator_file: Path, tmp_path: Path) -> None:
    """A generator shifted by half a standard deviation a minute samples the data's mean once the
    fit has measured its drift; a file without the measurement (before version 3) keeps the shift."""
    assert len(load_checkpoint(generator_file)["scale"]["drift"]) == 1  # the CLI fit measured it
    model, payload = load_generator(generator_file)
    with torch.no_grad():
        model.generator.out.bias += 0.5
    scale = dict(payload["scale"])
    scale["drift"] = output_drift(model, scale, np.zeros(8), None)  # the data's mean is 0
    assert scale["drift"][0] > payload["scale"]["drift"][0] + 0.1
    n, wanted = 50_000, np.full(50_000, 2, np.int8)
    means = {}
    for name, file_scale in (("measured", scale), ("unmeasured", {**scale, "drift": [0.0]})):
        path = save_generator(model, file_scale, tmp_path / f"{name}.pt", "hash", 3)
        returns, _, _ = sample_returns(path, n, wanted, np.random.default_rng(5))
        means[name] = (returns.mean() - scale["mean"]) / scale["std"]
    assert abs(means["measured"]) < 0.05, means  # the data's mean, within sampling error
    assert means["unmeasured"] > 0.1, means  # u_std and the tails scale the shift down


def test_conditional_generator_follows_the_requested_regimes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    returns = 1e-3 * rng.standard_normal(3000)
    labels = np.repeat(np.arange(4, dtype=np.int8), 750)
    cfg = GanConfig(window=32, layers=3, hidden=8, batch_size=8, steps=2, conditional=True,
                    intraday_profile=False, daily_level=False)  # fmt: skip
    model, scale, _ = fit_gan(returns, labels, cfg, seed=0)
    path = save_generator(model, scale, tmp_path / "g.pt", "hash", cfg.steps)
    wanted = np.repeat(np.array([2, 3], np.int8), 500)
    first = sample_returns(path, 1000, wanted, np.random.default_rng(1))
    again = sample_returns(path, 1000, wanted, np.random.default_rng(1))
    np.testing.assert_array_equal(first[2], wanted)
    np.testing.assert_array_equal(first[0], again[0])
    assert first[0].shape == first[1].shape == (1000,) and (first[1] > 0).all()


def test_generator_is_causal() -> None:
    model = QuantGAN(GanConfig(window=32, layers=3, hidden=8)).eval()
    rf = model.receptive_field
    noise = torch.randn(1, 3, 100 + rf - 1)
    changed = noise.clone()
    changed[..., 60 + rf - 1 :] += 1.0  # perturb noise from output step 60 on
    with torch.no_grad():
        before, after = model.generate(noise, None), model.generate(changed, None)
    assert torch.equal(before[..., :60], after[..., :60])
    assert not torch.equal(before[..., 60:], after[..., 60:])


def test_lambert_w_gaussianises_heavy_tails_and_inverts() -> None:
    from scipy import stats

    rng = np.random.default_rng(0)
    t = rng.standard_t(4, 20_000)
    t /= t.std()
    delta = lambert_delta(t)
    assert 0.05 < delta < 0.5
    assert abs(stats.kurtosis(gaussianize(t, delta))) < 0.1 < stats.kurtosis(t)
    np.testing.assert_allclose(heavy_tails(gaussianize(t, delta), delta), t, rtol=1e-9, atol=1e-12)
    assert lambert_delta(rng.standard_normal(20_000)) < 0.03


def test_missing_or_foreign_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gan_path"):
        typed({"generator": "gan"}, SyntheticConfig)
    with pytest.raises(GrandModelError, match="file not found"):
        generate(_synthetic(tmp_path / "none.pt", 0))
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(GrandModelError, match="not a generator file"):
        generate(_synthetic(tmp_path / "other.pt", 0))

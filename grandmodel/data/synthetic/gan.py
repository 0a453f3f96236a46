"""A QuantGAN-style scenario generator: temporal convolutions over standardised one-minute log returns.

Returns are divided by their intraday profile and daily level (:mod:`volatility`: what a one-hour
receptive field cannot learn), standardised and Gaussianised (inverse Lambert W, as QuantGAN does)
before training; sampling puts the profile and a daily level drawn from the fitted AR(1) back.
Generator and critic are temporal convolutional networks (dilated causal convolutions, kernel 2,
skip connections; Wiese et al., 2020) trained as a Wasserstein GAN with gradient penalty. The
generator maps a noise sequence (and, when ``conditional``, one-hot regime labels) to a return
sequence of any length, so one pass samples a whole path. A fitted generator is one weights-only
file (:func:`save_generator`): weights, the hyperparameters, the return scale and the data hash.
Sampling draws its noise from the caller's numpy generator, so a seed fixes the path, and removes
the generator's own drift (:func:`output_drift`), which no critic of short windows can see.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from scipy.special import lambertw
from torch import nn

from grandmodel.checkpoints import load_checkpoint, save_atomic
from grandmodel.config.meta import GanConfig
from grandmodel.data.synthetic.volatility import Calendar, VolatilityModel
from grandmodel.errors import GrandModelError

GAN_FORMAT = "grandmodel-gan"
GAN_VERSION = 3  # 2: the volatility components ("volatility"); 3: the output drift (scale "drift")
READABLE_VERSIONS = (1, 2, 3)  # a version-1 file has no components (the identity), < 3 no drift
DRIFT_STEPS = 2**17  # generated minutes that measure the generator's mean output
N_LABELS = 4  # trend_up, trend_down, sideways, volatile (``generators.REGIMES``)
LABEL_MINUTES = 240  # look-back of the causal regime labeller
SIGMA_HALFLIFE = 30.0  # minutes; EWMA of |r| that stands in for the per-minute volatility
MAX_GAUSSIAN = 8.0  # generated Gaussianised values are clipped here before the tails come back


class TemporalBlock(nn.Module):
    """Two dilated causal convolutions (no padding: the sequence shortens by ``2 * dilation``)
    with a residual connection; returns the block output and its skip contribution."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.shrink = 2 * dilation
        self.net = nn.Sequential(
            nn.Conv1d(channels, channels, 2, dilation=dilation),
            nn.PReLU(),
            nn.Conv1d(channels, channels, 2, dilation=dilation),
            nn.PReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.shrink :] + self.net(x)


class TCN(nn.Module):
    """``in_channels`` → ``out_channels`` over time; the output is shorter by ``receptive_field - 1``."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.inp = nn.Conv1d(in_channels, hidden, 1)
        self.blocks = nn.ModuleList(TemporalBlock(hidden, 2**i) for i in range(layers))
        self.out = nn.Conv1d(hidden, out_channels, 1)
        self.receptive_field = 1 + sum(b.shrink for b in self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = block(h)
        return self.out(h)


class QuantGAN(nn.Module):
    """Generator and critic of the same depth; the critic scores each window by its mean output."""

    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        self.cfg = cfg
        cond = N_LABELS if cfg.conditional else 0
        self.generator = TCN(cfg.noise_channels + cond, 1, cfg.hidden, cfg.layers)
        self.critic = TCN(1 + cond, 1, cfg.hidden, cfg.layers)
        self.receptive_field = self.generator.receptive_field

    def generate(self, noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """``[B, noise, T + rf - 1]`` noise (and ``[B, 4, T + rf - 1]`` labels) → ``[B, 1, T]``."""
        return self.generator(noise if labels is None else torch.cat([noise, labels], 1))

    def score(self, returns: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = returns if labels is None else torch.cat([returns, labels], 1)
        return self.critic(x).mean(dim=(1, 2))


def regime_labels(returns: np.ndarray, minutes: int = LABEL_MINUTES) -> np.ndarray:
    """Causal regime codes of a return series (``generators.REGIMES`` order): volatile where the
    trailing volatility exceeds 1.5x its median, else trend up/down where the trailing drift is over
    one standard error, else sideways. Labels real series for a conditional generator."""
    r = np.asarray(returns, dtype=np.float64)
    kernel = np.ones(minutes)
    total = np.convolve(r, kernel)[: r.size]
    count = np.minimum(np.arange(1, r.size + 1), minutes)
    mean = total / count
    var = np.maximum(np.convolve(r**2, kernel)[: r.size] / count - mean**2, 1e-18)
    sd = np.sqrt(var)
    z = mean / (sd / np.sqrt(count))
    labels = np.where(z > 1.0, 0, np.where(z < -1.0, 1, 2))
    return np.where(sd > 1.5 * np.median(sd), 3, labels).astype(np.int8)


def gaussianize(z: np.ndarray, delta: float) -> np.ndarray:
    """Inverse Lambert W x Gaussian transform (Goerg, 2015): thins heavy tails of standardised
    returns so the networks fit a near-Gaussian series (QuantGAN's preprocessing)."""
    if delta <= 0:
        return np.asarray(z, dtype=np.float64)
    return np.sign(z) * np.sqrt(np.real(lambertw(delta * np.asarray(z) ** 2)) / delta)


def heavy_tails(u: np.ndarray, delta: float) -> np.ndarray:
    """The forward transform ``u exp(delta u² / 2)`` (inverse of :func:`gaussianize`)."""
    u = np.clip(u, -MAX_GAUSSIAN, MAX_GAUSSIAN)
    return u * np.exp(0.5 * delta * u**2)


def lambert_delta(z: np.ndarray) -> float:
    """The tail parameter whose :func:`gaussianize` leaves the least excess kurtosis (grid search)."""
    grid = np.linspace(0.0, 1.0, 101)
    excess = [abs(float(stats.kurtosis(gaussianize(z, d)))) for d in grid]
    return float(grid[int(np.argmin(excess))])


def _one_hot(labels: np.ndarray) -> torch.Tensor:
    """``[B, T]`` codes → ``[B, 4, T]`` float one-hot."""
    codes = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    return nn.functional.one_hot(codes, N_LABELS).permute(0, 2, 1).float()


def _gradient_penalty(
    model: QuantGAN, real: torch.Tensor, fake: torch.Tensor, labels
) -> torch.Tensor:
    mix = torch.rand(real.shape[0], 1, 1)
    point = (mix * real + (1 - mix) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(model.score(point, labels).sum(), point, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def fit_gan(
    returns: np.ndarray,
    labels: np.ndarray | None,
    cfg: GanConfig,
    *,
    seed: int = 0,
    calendar: Calendar | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[QuantGAN, dict[str, Any], VolatilityModel]:
    """Fit a generator to a one-minute log-return series (WGAN-GP, ``cfg.steps`` generator steps
    or ``cfg.max_minutes`` of wall time, whichever comes first) on its standardised,
    Gaussianised returns after removing the volatility components ``cfg`` asks for (they need the
    returns' ``calendar``). Returns the model, the transform back to returns (``scale``: mean and
    std of the adjusted returns, Lambert W tail parameter ``delta``, mean, std and range after
    Gaussianising, the generator's ``drift``) and the volatility components."""
    if (cfg.intraday_profile or cfg.daily_level) and calendar is None:
        raise ValueError("calendar: needed by gan.intraday_profile / gan.daily_level")
    volatility = VolatilityModel()
    if calendar is not None:
        volatility = VolatilityModel.fit(
            returns, calendar, profile=cfg.intraday_profile, daily=cfg.daily_level
        )
        returns = volatility.adjust(returns, calendar)
    r = np.asarray(returns, dtype=np.float64)
    scale: dict[str, Any] = {"mean": float(r.mean()), "std": float(r.std())}
    standard = (r - scale["mean"]) / scale["std"]
    scale["delta"] = lambert_delta(standard)
    u = gaussianize(standard, scale["delta"])
    scale["u_mean"], scale["u_std"] = float(u.mean()), float(u.std())
    scale["u_low"], scale["u_high"] = float(u.min()), float(u.max())
    z = torch.as_tensor((u - scale["u_mean"]) / scale["u_std"], dtype=torch.float32)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = QuantGAN(cfg)
    rf, window = model.receptive_field, cfg.window
    if z.numel() < window + rf:
        raise GrandModelError(
            f"data: {z.numel()} returns; expected at least {window + rf} for gan.window={window}"
        )
    g_opt = torch.optim.Adam(model.generator.parameters(), lr=cfg.lr, betas=(0.0, 0.9))
    c_opt = torch.optim.Adam(model.critic.parameters(), lr=cfg.lr, betas=(0.0, 0.9))
    deadline = time.monotonic() + 60 * cfg.max_minutes
    history: dict[str, float] = {}

    def batch() -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        starts = rng.integers(rf - 1, z.numel() - window + 1, cfg.batch_size)
        real = torch.stack([z[s : s + window] for s in starts]).unsqueeze(1)
        noise = torch.as_tensor(
            rng.standard_normal((cfg.batch_size, cfg.noise_channels, window + rf - 1)),
            dtype=torch.float32,
        )
        if labels is None:
            return real, None, noise, None
        long = np.stack([labels[s - rf + 1 : s + window] for s in starts])
        return real, _one_hot(long[:, rf - 1 :]), noise, _one_hot(long)

    for step in range(1, cfg.steps + 1):
        for _ in range(cfg.critic_steps):
            real, real_labels, noise, noise_labels = batch()
            with torch.no_grad():
                fake = model.generate(noise, noise_labels)
            wasserstein = (
                model.score(real, real_labels).mean() - model.score(fake, real_labels).mean()
            )
            penalty = _gradient_penalty(model, real, fake, real_labels)
            c_opt.zero_grad(set_to_none=True)
            (cfg.gradient_penalty * penalty - wasserstein).backward()
            c_opt.step()
        _, real_labels, noise, noise_labels = batch()
        g_loss = -model.score(model.generate(noise, noise_labels), real_labels).mean()
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        history = {
            "gan/wasserstein": wasserstein.item(),
            "gan/penalty": penalty.item(),
            "gan/generator_loss": g_loss.item(),
        }
        if on_step is not None:
            on_step(step, history)
        if time.monotonic() > deadline:
            break
    model.eval()
    scale["drift"] = output_drift(model, scale, standard, labels)
    return model, scale, volatility


def _standardised(z: np.ndarray, scale: dict[str, Any]) -> np.ndarray:
    """Generated Gaussianised values → standardised returns (clipped to the data's range first:
    beyond it the tail transform would blow them up exponentially)."""
    u = np.clip(scale["u_mean"] + scale["u_std"] * z, scale["u_low"], scale["u_high"])
    return heavy_tails(u, scale["delta"])


@torch.no_grad()
def output_drift(
    model: QuantGAN, scale: dict[str, Any], standard: np.ndarray, labels: np.ndarray | None
) -> list[float]:
    """Mean of the generator's standardised returns minus the data's (``standard``), per regime
    label when conditional (one value otherwise), over ``DRIFT_STEPS`` generated minutes.

    A mean off by a few hundredths of a standard deviation a minute is invisible to a critic of
    128-minute windows (the window mean's standard error is 1/√128 ≈ 0.09) but compounds over a
    path: an unconditional fit to the default market's training split drew +0.027 a minute, and its
    500-day market rose from 4,000 to 545,000 (experiments/generators, "agents"). Measured after the
    tail transform, where a skewed output also shifts the mean. Sampling subtracts it, so a path
    drifts as the data did (per label: a trend regime keeps its own drift)."""
    rf, cfg = model.receptive_field, model.cfg
    noise = np.random.default_rng(0).standard_normal((1, cfg.noise_channels, DRIFT_STEPS + rf - 1))
    noise_t = torch.as_tensor(noise, dtype=torch.float32)

    def generated(cond: torch.Tensor | None) -> float:
        z = model.generate(noise_t, cond)[0, 0].double().numpy()
        return float(_standardised(z, scale).mean())

    if labels is None:
        return [generated(None) - float(np.mean(standard))]
    out = []
    for code in range(N_LABELS):
        mine = standard[np.asarray(labels) == code]
        cond = _one_hot(np.full((1, noise.shape[-1]), code))
        out.append(generated(cond) - (float(mine.mean()) if mine.size else 0.0))
    return out


def save_generator(
    model: QuantGAN,
    scale: dict[str, Any],
    path: str | Path,
    data_hash: str,
    steps: int,
    volatility: VolatilityModel | None = None,
) -> Path:
    """One weights-only file: weights, hyperparameters, return scale, volatility components, data
    hash (atomic write)."""
    payload = {
        "format": GAN_FORMAT,
        "version": GAN_VERSION,
        "config": asdict(model.cfg),
        "state_dict": model.state_dict(),
        "scale": dict(scale),
        "volatility": (volatility or VolatilityModel()).to_dict(),
        "data_hash": data_hash,
        "steps": int(steps),
    }
    save_atomic(payload, path)
    return Path(path)


def load_generator(path: str | Path) -> tuple[QuantGAN, dict[str, Any]]:
    """The generator of a file written by :func:`save_generator` (read with ``weights_only``),
    and the file's payload (scale, data hash, config)."""
    if not Path(path).is_file():
        raise GrandModelError(
            f"data.synthetic.gan_path={path}: file not found; expected a generator written by "
            "python -m grandmodel.data.fit_generator"
        )
    payload = load_checkpoint(path)
    if payload.get("format") != GAN_FORMAT or payload.get("version") not in READABLE_VERSIONS:
        raise GrandModelError(
            f"data.synthetic.gan_path={path}: not a generator file (format "
            f"{payload.get('format')!r} version {payload.get('version')!r}); expected "
            f"{GAN_FORMAT!r} version {' or '.join(map(str, READABLE_VERSIONS))}"
        )
    model = QuantGAN(GanConfig(**payload["config"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload


def ewma_sigma(returns: np.ndarray, start: float, halflife: float = SIGMA_HALFLIFE) -> np.ndarray:
    """Causal EWMA estimate of the per-minute volatility (sqrt(pi/2) E|r| for a normal r)."""
    decay = 0.5 ** (1.0 / halflife)
    out = np.empty(returns.size)
    level = start
    for t, value in enumerate((np.abs(returns) * np.sqrt(np.pi / 2)).tolist()):
        out[t] = level
        level = decay * level + (1 - decay) * value
    return out


@torch.no_grad()
def sample_returns(
    path: str | Path,
    n: int,
    wanted_labels: np.ndarray,
    rng: np.random.Generator,
    calendar: Calendar | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` one-minute log returns from the generator file at ``path``, their volatility and
    regime labels. A conditional generator follows ``wanted_labels``; an unconditional one's
    labels come from :func:`regime_labels` of what it generated. The volatility components are
    put back at the returns' ``calendar`` positions (needed when the file has any).
    Deterministic given ``rng``."""
    model, payload = load_generator(path)
    volatility = VolatilityModel(**payload.get("volatility", {}))
    if calendar is None and volatility != VolatilityModel():
        raise ValueError("calendar: needed to sample a generator with volatility components")
    rf, cfg = model.receptive_field, model.cfg
    noise = torch.as_tensor(
        rng.standard_normal((1, cfg.noise_channels, n + rf - 1)), dtype=torch.float32
    )
    cond = None
    if cfg.conditional:
        padded = np.concatenate([np.full(rf - 1, wanted_labels[0]), wanted_labels])
        cond = _one_hot(padded[None, :])
    z = model.generate(noise, cond)[0, 0].double().numpy()
    scale = payload["scale"]
    drift = np.asarray(scale.get("drift", [0.0]))  # files before version 3: none measured
    drift = drift[wanted_labels.astype(np.int64)] if cfg.conditional else drift[0]
    returns = scale["mean"] + scale["std"] * (_standardised(z, scale) - drift)
    if calendar is not None:
        returns = returns * volatility.scale(calendar, rng)
    labels = wanted_labels.astype(np.int8) if cfg.conditional else regime_labels(returns)
    return returns, ewma_sigma(returns, scale["std"]), labels

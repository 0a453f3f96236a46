"""Networks built from config: an encoder for windowed observations, MLPs, and a dueling Q head."""

from __future__ import annotations

import math

import torch
from torch import nn
from torchrl.modules import MLP

from grandmodel.config.agent import SACConfig

ACTIVATION = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}


def mlp(
    in_features: int,
    layers: list[int],
    activation: str,
    dropout: float = 0.0,
    out_features: int | None = None,
) -> nn.Module:
    """torchrl's ``MLP``: each of ``layers`` is linear → (dropout →) activation; then a plain linear
    ``out_features`` output, or (without one) the last hidden layer is the activated output."""
    cells = list(layers)
    activate_last = out_features is None
    if activate_last:
        if not cells:
            return nn.Identity()
        *cells, out_features = cells
    return MLP(
        in_features=in_features,
        out_features=out_features,
        num_cells=cells,
        activation_class=ACTIVATION[activation],
        dropout=dropout or None,
        activate_last_layer=activate_last,
    )


def mlp_width(in_features: int, layers: list[int]) -> int:
    """Output width of ``mlp(in_features, layers, ...)`` without an output layer."""
    return layers[-1] if layers else in_features


def orthogonal_init(module: nn.Module, gain: float, output_gain: float | None = None) -> None:
    """Orthogonal weights (Saxe et al. 2014) with ``gain`` and zero biases for every linear layer
    of ``module``; the last one gets ``output_gain`` when given.

    The PPO recipe of Andrychowicz et al. 2021 ("What Matters in On-Policy Reinforcement
    Learning?", ICLR, section 3.2) and CleanRL: hidden layers gain sqrt(2), the policy output 0.01
    so the first policy is near uniform whatever the observation, the value output 1. Other layer
    types (convolutions, GRUs) keep PyTorch's init.
    """
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    for i, layer in enumerate(linears):
        last = i == len(linears) - 1 and output_gain is not None
        nn.init.orthogonal_(layer.weight, output_gain if last else gain)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


class Encoder(nn.Module):
    """Turns an observation ``[..., W, F]`` (a window of bars) or ``[..., D]`` into a vector.

    ``flatten`` (default): concatenate the window. ``conv1d``: two temporal convolutions, then the
    mean over time and the last step. ``gru``: the last hidden state of a GRU over the window.
    ``last``: the last bar's features only; the features already summarise the past (EMAs, RSI,
    ATR, Bollinger bands), so the input shrinks from W·F to F numbers, which a policy learned from
    a few hundred days of noisy rewards can fit without memorising the window.
    """

    def __init__(self, shape: tuple[int, ...], kind: str = "flatten", size: int = 32) -> None:
        super().__init__()
        self.shape, self.kind = tuple(shape), kind
        windowed = len(self.shape) == 2
        if kind == "flatten" or not windowed:
            self.out_features = math.prod(self.shape)
        elif kind == "last":
            self.out_features = self.shape[1]
        elif kind == "conv1d":
            features = self.shape[1]
            self.conv = nn.Sequential(
                nn.Conv1d(features, size, 5, padding=2),
                nn.ReLU(),
                nn.Conv1d(size, size, 5, padding=2),
                nn.ReLU(),
            )
            self.out_features = 2 * size
        elif kind == "gru":
            self.gru = nn.GRU(self.shape[1], size, batch_first=True)
            self.out_features = size
        else:
            raise ValueError(f"unknown encoder {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[: x.dim() - len(self.shape)]
        x = x.reshape(-1, *self.shape)
        if self.kind == "flatten" or len(self.shape) == 1:
            z = x.flatten(1)
        elif self.kind == "last":
            z = x[:, -1, :]
        elif self.kind == "conv1d":
            h = self.conv(x.transpose(1, 2))
            z = torch.cat((h.mean(dim=2), h[:, :, -1]), dim=1)
        else:
            z = self.gru(x)[1][-1]
        return z.reshape(*lead, self.out_features)


class DuelingHead(nn.Module):
    """Q(s, a) = V(s) + A(s, a) − mean_a A(s, a) (Wang et al. 2016)."""

    def __init__(self, in_features: int, n_actions: int) -> None:
        super().__init__()
        self.value = nn.Linear(in_features, 1)
        self.advantage = nn.Linear(in_features, n_actions)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        advantage = self.advantage(h)
        return self.value(h) + advantage - advantage.mean(dim=-1, keepdim=True)


class StateActionNet(nn.Module):
    """Q(s, a) for continuous actions: encode the observation, concatenate the action, MLP → 1."""

    def __init__(self, shape: tuple[int, ...], action_dim: int, cfg: SACConfig) -> None:
        super().__init__()
        self.encoder = Encoder(shape, cfg.encoder, cfg.encoder_size)
        self.head = mlp(
            self.encoder.out_features + action_dim,
            cfg.hidden_layers,
            cfg.activation,
            cfg.dropout,
            1,
        )

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.head(
            torch.cat((self.encoder(observation), action.to(observation.dtype)), dim=-1)
        )

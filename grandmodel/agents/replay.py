"""Prioritized experience replay (Schaul et al. 2016, proportional variant) for TorchRL buffers.

torchrl's ``PrioritizedSampler`` needs its C++ segment trees, which do not load with torch 2.13.
``ProportionalPrioritizedSampler`` is a pure-torch drop-in replacement (one O(N) cumulative sum
per ``sample`` call), and ``make_replay_buffer`` uses torchrl's sampler only when it can be built.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
from torchrl.data import (
    LazyTensorStorage,
    PrioritizedSampler,
    RandomSampler,
    TensorDictReplayBuffer,
)
from torchrl.data.replay_buffers.samplers import Sampler
from torchrl.data.replay_buffers.storages import Storage

WEIGHT_KEY = "priority_weight"  # info/sample key of the importance weights, as in torchrl
_STATE_FILE = "sampler_state.pt"
_EMPTY_STORAGE_ERROR = "Cannot sample from an empty storage."


class ProportionalPrioritizedSampler(Sampler):
    """Proportional prioritized replay in pure torch.

    P(i) = p_i^alpha / sum_k p_k^alpha with p_i = |priority_i| + eps; importance weights
    w_i = (N * P(i))^(-beta) / max_j w_j over the N stored entries (= (p_i / p_min)^(-beta)).
    New entries get the current max raw priority (1.0 initially). Sampling draws from
    ``torch.rand`` (the buffer's generator if it set one, else torch's global RNG), so restoring
    the RNG state and ``state_dict`` reproduces the same samples. Only 1-D storages are supported.

    Registered as a virtual subclass of torchrl's ``PrioritizedSampler``: torchrl's buffers gate
    ``update_tensordict_priority`` (and filling priorities of pre-filled storages) on that check.
    """

    def __init__(
        self,
        max_capacity: int,
        alpha: float,
        beta: float,
        eps: float = 1e-8,
        dtype: torch.dtype = torch.float64,
        max_priority_within_buffer: bool = False,
        reduction: str = "max",
    ) -> None:
        if max_capacity < 1:
            raise ValueError(f"max_capacity must be >= 1, got {max_capacity}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0 so every stored priority is positive, got {eps}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating point dtype, got {dtype}")
        self._max_capacity = int(max_capacity)
        self._alpha = float(alpha)
        self.beta = beta
        self._eps = float(eps)
        self.dtype = dtype
        self.reduction = reduction  # read by TensorDictReplayBuffer for multi-element priorities
        self._max_priority_within_buffer = max_priority_within_buffer
        self._empty()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(max_capacity={self._max_capacity}, alpha={self._alpha}, "
            f"beta={self._beta}, eps={self._eps}, reduction={self.reduction})"
        )

    @property
    def max_size(self) -> int:
        return self._max_capacity

    @property
    def alpha(self) -> float:
        return self._alpha

    @property
    def beta(self) -> float:
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"beta must be >= 0, got {value}")
        self._beta = float(value)

    @property
    def default_priority(self) -> float:
        """Raw priority given to new entries: the max priority seen (or held, if within buffer)."""
        return self._max_priority

    def _empty(self) -> None:
        self._raw = torch.zeros(self._max_capacity, dtype=self.dtype)  # |priority| as given
        self._priority = torch.zeros(self._max_capacity, dtype=self.dtype)  # (|p| + eps) ** alpha
        self._max_priority = 1.0

    def sample(
        self, storage: Storage, batch_size: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if storage.ndim > 1:
            raise NotImplementedError(f"{type(self).__name__} supports 1-D storages only")
        n = len(storage)
        if n == 0:
            raise RuntimeError(_EMPTY_STORAGE_ERROR)
        if n > self._max_capacity:
            raise RuntimeError(f"storage holds {n} entries but max_capacity={self._max_capacity}")
        priority = self._priority[:n]
        p_min = priority.min()
        if p_min <= 0:
            raise RuntimeError(
                "some stored entries have no priority; add data through the buffer (extend/add) "
                "or call update_priority for every stored index"
            )
        cdf = priority.cumsum(0)
        mass = torch.rand(batch_size, dtype=self.dtype, generator=self._rng) * cdf[-1]
        index = torch.searchsorted(cdf, mass, right=True).clamp_max_(n - 1)
        weight = (priority[index] / p_min).pow(-self._beta)
        return index, {WEIGHT_KEY: weight}

    def add(self, index: int | torch.Tensor) -> None:
        self.mark_update(index)

    def extend(self, index: torch.Tensor) -> None:
        self.mark_update(index)

    def mark_update(self, index: int | torch.Tensor, *, storage: Storage | None = None) -> None:
        """Gives (re)written entries the current max priority."""
        self.update_priority(index, self.default_priority)

    @torch.no_grad()
    def update_priority(
        self,
        index: int | torch.Tensor,
        priority: float | torch.Tensor,
        *,
        storage: Storage | None = None,
    ) -> None:
        """Sets p_i = |priority_i| + eps; negative indices are skipped, duplicates: last wins."""
        if isinstance(index, tuple) or torch.as_tensor(index).ndim > 1:
            raise NotImplementedError(f"{type(self).__name__} supports 1-D storages only")
        index = torch.as_tensor(index, dtype=torch.long).to("cpu").reshape(-1)
        priority = torch.as_tensor(priority).detach().to(device="cpu", dtype=self.dtype)
        if priority.numel() == 1:
            priority = priority.reshape(()).expand(index.shape)
        elif priority.numel() == index.numel():
            priority = priority.reshape(-1)
        else:
            raise RuntimeError(
                f"priority should be a number or hold one value per index; got priority of "
                f"shape {tuple(priority.shape)} for {index.numel()} indices"
            )
        if not torch.isfinite(priority).all():
            raise ValueError(f"priorities must be finite, got {priority[~priority.isfinite()]}")
        keep = index >= 0  # MaxValueWriter marks entries it did not write with -1
        index, priority = index[keep], priority[keep].abs()
        if index.numel() == 0:
            return
        unique, inverse = torch.unique(index, return_inverse=True)
        if unique.numel() < index.numel():
            order = torch.arange(index.numel())
            last = torch.zeros_like(unique).scatter_reduce_(
                0, inverse, order, reduce="amax", include_self=False
            )
            index, priority = unique, priority[last]
        self._raw[index] = priority
        self._priority[index] = (priority + self._eps).pow(self._alpha)
        if self._max_priority_within_buffer:
            self._max_priority = float(self._raw.max())
        else:
            self._max_priority = max(self._max_priority, float(priority.max()))

    def state_dict(self) -> dict[str, Any]:
        """Priorities and hyper-parameters; tensors and python scalars only."""
        return {
            "max_capacity": self._max_capacity,
            "alpha": self._alpha,
            "beta": self._beta,
            "eps": self._eps,
            "max_priority": self._max_priority,
            "raw_priority": self._raw.clone(),
            "priority": self._priority.clone(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict["max_capacity"] != self._max_capacity:
            raise RuntimeError(
                f"state_dict max_capacity={state_dict['max_capacity']} differs from "
                f"this sampler's {self._max_capacity}"
            )
        self._alpha = float(state_dict["alpha"])
        self.beta = state_dict["beta"]
        self._eps = float(state_dict["eps"])
        self._max_priority = float(state_dict["max_priority"])
        self._raw = state_dict["raw_priority"].to(device="cpu", dtype=self.dtype, copy=True)
        self._priority = state_dict["priority"].to(device="cpu", dtype=self.dtype, copy=True)

    def dumps(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path / _STATE_FILE)

    def loads(self, path: str | Path) -> None:
        self.load_state_dict(torch.load(Path(path) / _STATE_FILE, weights_only=True))


PrioritizedSampler.register(ProportionalPrioritizedSampler)


@functools.cache
def torchrl_prioritized_available() -> bool:
    """Whether torchrl's own ``PrioritizedSampler`` can be built (its C++ extension loads)."""
    try:
        PrioritizedSampler(max_capacity=1, alpha=0.6, beta=0.4)
    except RuntimeError:
        return False
    return True


def make_replay_buffer(
    capacity: int,
    batch_size: int,
    *,
    prioritized: bool,
    alpha: float = 0.6,
    beta: float = 0.4,
    priority_key: str = "td_error",
    device: str | torch.device = "cpu",
) -> TensorDictReplayBuffer:
    """A ``LazyTensorStorage`` buffer, uniform or prioritized (weights under ``WEIGHT_KEY``).

    Prioritized buffers use torchrl's ``PrioritizedSampler`` when its extension loads, else
    ``ProportionalPrioritizedSampler``; both in float64, so the weights are float64 either way.
    """
    sampler: Sampler
    if not prioritized:
        sampler = RandomSampler()
    elif torchrl_prioritized_available():
        sampler = PrioritizedSampler(capacity, alpha, beta, dtype=torch.float64)
    else:
        sampler = ProportionalPrioritizedSampler(capacity, alpha, beta, dtype=torch.float64)
    return TensorDictReplayBuffer(
        storage=LazyTensorStorage(capacity, device=device),
        sampler=sampler,
        batch_size=batch_size,
        priority_key=priority_key,
    )


def set_beta(buffer: TensorDictReplayBuffer, beta: float) -> None:
    """Sets the importance-sampling exponent of a prioritized buffer; no-op for uniform ones."""
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if isinstance(buffer.sampler, PrioritizedSampler):
        buffer.sampler.beta = beta

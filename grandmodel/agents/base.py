"""``Algorithm``: the small base every learner implements (BenchMARL style), as a LightningModule.

A learner owns one agent group. The collector acts with :meth:`exploration_policy`; the training
loop hands it each collected batch (:meth:`observe`) and asks it to :meth:`learn`. Learners run with
manual optimisation and also work outside a Lightning ``Trainer`` (plain loops, benchmarks).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch.optim import Optimizer

from grandmodel.agents.groups import GroupSpec


class NonFiniteError(RuntimeError):
    """A loss or gradient of a learner became NaN or infinite."""


class Algorithm(pl.LightningModule, abc.ABC):
    """One learning agent group: policy, loss, optimisers and (for off-policy) its replay buffer.

    ``config_type`` is the dataclass schema of the learner's ``cfg`` (``build_learner`` converts).
    """

    config_type: ClassVar[type]

    def __init__(self, cfg: Any, group: GroupSpec) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.cfg, self.group = cfg, group
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))
        self.register_buffer("batches", torch.zeros((), dtype=torch.int64))
        self._optimizers: list[Optimizer] = []
        self._handles: list[Any] = []  # what ``step`` calls: Lightning's wrappers under a Trainer

    # ---- the interface
    @abc.abstractmethod
    def exploration_policy(self) -> TensorDictModuleBase:
        """Acting module for the collector (stochastic in exploration mode, greedy in deterministic)."""

    @abc.abstractmethod
    def make_optimizers(self) -> list[Optimizer]:
        """Create (once) and return this learner's optimisers."""

    @abc.abstractmethod
    def observe(self, batch: TensorDictBase) -> None:
        """Take in a collected ``[n_envs, steps]`` batch (keys of every group are present)."""

    @abc.abstractmethod
    def learn(self, progress: float) -> dict[str, float]:
        """Run the updates due now; ``progress`` in [0, 1] is the share of training done."""

    def use_optimizers(self, handles: list[Any]) -> None:
        """Step through these (Lightning's ``LightningOptimizer`` wrappers of ``make_optimizers()``)."""
        self._handles = list(handles)

    def extra_state(self) -> dict[str, Any]:
        """State outside ``state_dict`` that checkpoints must carry (replay buffers)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        del state

    def prepare_for_loading(self) -> None:
        """Create lazily built buffers so a strict ``load_state_dict`` finds them."""

    # ---- helpers for subclasses
    def _wrapped(self, optimizers: list[Optimizer]) -> list[Any]:
        if not self._handles:
            return optimizers
        by_id = {id(getattr(h, "optimizer", h)): h for h in self._handles}
        return [by_id.get(id(opt), opt) for opt in optimizers]

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Temporarily in eval mode (no dropout): acting and value targets use the full network."""
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)

    def agreed(self, count: int) -> int:
        """``count`` as every data-parallel process can follow it: the smallest over the processes
        (under ``trainer.strategy=ddp`` each must run as many backward passes, or the gradient
        all-reduce waits forever); ``count`` itself in one process."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return count
        value = torch.tensor(count, device=self.device)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MIN)
        return int(value)

    def _backward(self, loss: torch.Tensor) -> None:
        """Through Lightning (precision plugins) when attached to a Trainer, else plain autograd."""
        if self._trainer is not None and not self.automatic_optimization:
            self.manual_backward(loss)
        else:
            loss.backward()

    def step(
        self,
        loss: torch.Tensor,
        optimizers: list[Optimizer],
        parameters: list[torch.nn.Parameter],
        max_norm: float | None,
        what: str,
    ) -> float:
        """Backward ``loss`` and step ``optimizers``; refuse non-finite losses or gradients."""
        if not torch.isfinite(loss):
            raise NonFiniteError(
                f"{self.group.name}: non-finite {what} ({loss.item()}) at update {int(self.updates)}"
            )
        handles = self._wrapped(optimizers)
        for optimizer in handles:
            optimizer.zero_grad(set_to_none=True)
        self._backward(loss)
        norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm or float("inf"))
        if not torch.isfinite(norm):
            raise NonFiniteError(
                f"{self.group.name}: non-finite gradient of {what} at update {int(self.updates)}"
            )
        for optimizer in handles:
            optimizer.step()
        self.updates += 1
        return float(norm)

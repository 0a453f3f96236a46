"""The lean deterministic walk: the env's kernel driven directly, the policies as plain modules.

:func:`~grandmodel.evaluation.walk.run_policy` steps the TorchRL env (a TensorDict per step, the
actors' distributions and log-probabilities). :func:`lean_rollout` produces the same rollout, field
for field, for every policy :func:`lean_policy` can express: it calls the env's fused transition
(:meth:`~grandmodel.env.kernel.StepKernel.transition`) with the actions of plain modules (the
networks inside the TorchRL actors, with the actors' deterministic decoding) and writes each step
into preallocated tensors. tests/evaluation/test_lean.py holds the two equal.

Rules that are a function of the decision alone (the strategic and tactical baselines, the regime
oracle, an ONNX graph of raw feature windows) act for every step at once before the walk: their
observations do not depend on the portfolio. The networks act step by step at the env's batch size:
a float32 matrix product's last bit depends on the batch size (batch 1 runs as a matrix-vector
product), so batching them over time would not reproduce the TorchRL walk exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from tensordict import TensorDict
from tensordict.nn import (
    ProbabilisticTensorDictModule,
    TensorDictModule,
    TensorDictModuleBase,
    TensorDictSequential,
)
from torch import nn
from torch.distributions import Categorical
from torchrl.modules import EGreedyModule, QValueModule, TanhNormal

from grandmodel.config.env import ROLES
from grandmodel.env import MarketEnv
from grandmodel.env.baselines import StrategicBaseline, TacticalBaseline
from grandmodel.training.phases import PhasedRole

Key = tuple[str, ...]
TIME = ("info", "t")
# the env's inputs a role may read; all but the risk observation are functions of the decision alone
INPUTS = (*((role, "observation") for role in ROLES), TIME)
CHUNK = 4096  # decisions per batched call of the rules that act on all steps at once
# what a lean rollout keeps (what the ledger and the walk's metrics read), by dtype
INFO_F64 = (
    "equity", "position", "costs", "mark", "traded", "fill_price", "stop_price",
    "closed_fill_pnl", "closed_stop_pnl",
)  # fmt: skip
INFO_I64 = ("direction", "trades", "wins", "stop_bar")


@dataclass
class Actor:
    """One role's deterministic action from one env input ``key``; ``timeless``: a function of the
    decision alone, exact row by row, so it acts on every step at once."""

    key: Key
    act: Callable[[torch.Tensor], torch.Tensor]
    timeless: bool = False


LeanPolicy = dict[str, Actor]


@dataclass
class _Step:
    in_keys: list[Key]
    fn: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]]
    out_keys: list[Key]


class Chain(nn.Module):
    """TensorDict-free steps from one input key to one action key (what a TorchRL actor computes)."""

    def __init__(self, key: Key, steps: list[_Step], action: Key) -> None:
        super().__init__()
        self.key, self.steps, self.action = key, steps, action
        self.parts = nn.ModuleList([s.fn for s in steps if isinstance(s.fn, nn.Module)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.key: x}
        for step in self.steps:
            out = step.fn(*(values[k] for k in step.in_keys))
            if len(step.out_keys) == 1:
                values[step.out_keys[0]] = out  # type: ignore[assignment]
            else:
                values.update(zip(step.out_keys, out, strict=True))
        return values[self.action]


class CategoricalMode(nn.Module):
    """``torch.distributions.Categorical(logits=x).mode``, op for op (ties as the distribution)."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits - logits.logsumexp(dim=-1, keepdim=True)
        return torch.softmax(logits, dim=-1).argmax(dim=-1)


class TanhNormalMode(nn.Module):
    """torchrl ``TanhNormal(loc, scale, low, high).deterministic_sample``, op for op."""

    def __init__(self, low: torch.Tensor, high: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("centre", (high + low) / 2)
        self.register_buffer("radius", (high - low) / 2)

    def forward(self, loc: torch.Tensor) -> torch.Tensor:
        limit = 1.0 - torch.finfo(loc.dtype).resolution
        return self.centre + self.radius * loc.tanh().clamp(-limit, limit)


class Argmax(nn.Module):
    """torchrl ``QValueModule``'s categorical action."""

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return torch.argmax(values, dim=-1).to(torch.long)


def lean_policy(policy: TensorDictModuleBase | LeanPolicy) -> LeanPolicy | None:
    """The plain actors of a TorchRL joint policy (one part per role), or None where a part is not
    expressible (then the walk runs through TorchRL)."""
    if isinstance(policy, dict):
        return policy
    parts = policy.module if isinstance(policy, TensorDictSequential) else [policy]
    out: LeanPolicy = {}
    for part in parts:
        made = lean_actor(part)
        if made is None:
            return None
        out[made[0]] = made[1]
    return out if set(out) == set(ROLES) else None


def lean_actor(module: TensorDictModuleBase) -> tuple[str, Actor] | None:
    """(role, actor) of one role's TorchRL module, or None where it is not expressible."""
    steps = _steps(module)
    return None if steps is None else _actor(steps)


def _steps(module: nn.Module) -> list[_Step] | None:
    """The TensorDict-free steps of a deterministic TorchRL module tree, or None."""
    inner = getattr(module, "module", None)
    if type(module).__name__ == "Deterministic" and isinstance(inner, TensorDictModuleBase):
        return _steps(inner)
    if isinstance(module, PhasedRole):  # its baseline or its learner, as the phase says now
        return _steps(module.acting())
    if isinstance(module, EGreedyModule):
        return []  # acts only when exploring
    if isinstance(module, QValueModule):
        if module.action_space != "categorical" or module.action_mask_key is not None:
            return None
        return [_Step([module.action_value_key], Argmax(), [module.out_keys[0]])]
    if isinstance(module, ProbabilisticTensorDictModule):
        return _decode(module)
    if isinstance(module, TensorDictSequential):
        steps: list[_Step] = []
        for part in module.module:
            more = _steps(part)
            if more is None:
                return None
            steps += more
        return steps
    if isinstance(module, TensorDictModule) and not isinstance(inner, TensorDictModuleBase):
        return [_Step(list(module.in_keys), module.module, list(module.out_keys))]
    return None


def _decode(module: ProbabilisticTensorDictModule) -> list[_Step] | None:
    """The deterministic sample of the distributions the actors use, or None."""
    kwargs = dict(module.distribution_kwargs)
    keys = dict(zip(module.dist_keys, module.in_keys, strict=True))
    if getattr(module, "safe", False):
        return None
    if module.distribution_class is Categorical and set(keys) == {"logits"} and not kwargs:
        return [_Step([keys["logits"]], CategoricalMode(), [module.out_keys[0]])]
    if module.distribution_class is TanhNormal and set(kwargs) == {"low", "high"}:
        low, high = (torch.as_tensor(kwargs[k]) for k in ("low", "high"))
        return [_Step([keys["loc"]], TanhNormalMode(low, high), [module.out_keys[0]])]
    return None


def _actor(steps: list[_Step]) -> tuple[str, Actor] | None:
    written: set[Key] = set()
    read: list[Key] = []
    for step in steps:
        read += [k for k in step.in_keys if k not in written and k not in read]
        written.update(step.out_keys)
    actions = [k for k in written if len(k) == 2 and k[0] in ROLES and k[1] == "action"]
    if len(read) != 1 or read[0] not in INPUTS or len(actions) != 1:
        return None
    key, role = read[0], actions[0][0]
    rules = all(isinstance(s.fn, StrategicBaseline | TacticalBaseline) for s in steps)
    timeless = key != ("risk", "observation") and (rules or _oracle(steps))
    if len(steps) == 1 and len(steps[0].out_keys) == 1:
        return role, Actor(key, steps[0].fn, timeless)  # type: ignore[arg-type]
    return role, Actor(key, Chain(key, steps, actions[0]), timeless)


def _oracle(steps: list[_Step]) -> bool:
    return len(steps) == 1 and type(steps[0].fn).__name__ == "RegimeOracle"


def lean_rollout(env: MarketEnv, policy: LeanPolicy, steps: int) -> tuple[TensorDict, torch.Tensor]:
    """What :func:`~grandmodel.evaluation.walk.run_policy` returns for ``policy`` (the kept
    entries the ledger and the metrics read), from the env's next reset."""
    return lean_rollouts(env, [policy], steps)[0]


def lean_rollouts(
    env: MarketEnv, policies: list[LeanPolicy], steps: int
) -> list[tuple[TensorDict, torch.Tensor]]:
    """:func:`lean_rollout` of each policy, all walked at once: the env's ``n`` reset rows are
    repeated once per policy and one kernel call per step advances every copy (the transition is
    row by row, so each copy's rows are what its own walk gives; a kernel call costs about the
    same at 10 × ``n`` rows as at ``n``). Each policy acts on its own rows at the env's batch
    size, as in its own walk; the rules that act on every step at once draw in policy order."""
    modes = {
        module: module.training
        for policy in policies
        for actor in policy.values()
        if isinstance(actor.act, nn.Module)
        for module in actor.act.modules()
    }
    for module in modes:
        module.eval()
    try:
        with torch.no_grad():
            return _walk(env, policies, steps)
    finally:
        for module, training in modes.items():
            module.training = training


def _walk(
    env: MarketEnv, policies: list[LeanPolicy], steps: int
) -> list[tuple[TensorDict, torch.Tensor]]:
    kernel, n, copies = env.kernel, env.n, len(policies)
    first = env.reset()
    t = first.get(TIME)[:, 0]
    # each env's decision at every step of its first episode (later steps are masked out)
    times = (t + torch.arange(steps).unsqueeze(1)).clamp_max(kernel.last_decision)
    ahead = [
        {role: _timeless(actor, kernel, times) for role, actor in policy.items() if actor.timeless}
        for policy in policies
    ]
    live = [{r: a for r, a in policy.items() if not a.timeless} for policy in policies]
    rows = [slice(k * n, (k + 1) * n) for k in range(copies)]
    state = {
        name: value.repeat(copies, *([1] * (value.dim() - 1))) for name, value in env.state.items()
    }
    t = t.repeat(copies)
    decision = first.get(("strategic", "decision"))[:, 0].repeat(copies)
    risk = first.get(("risk", "observation")).repeat(
        copies, *([1] * (first.get(("risk", "observation")).dim() - 1))
    )
    width = n * copies
    f64 = torch.empty((steps, len(INFO_F64), width), dtype=torch.float64)
    i64 = torch.empty((steps, len(INFO_I64) + 1, width), dtype=torch.int64)  # + the decision t
    flags = torch.empty(
        (steps, 4, width), dtype=torch.bool
    )  # decision, stop, terminated, truncated
    terms = rewards = None
    acted: list[dict[str, torch.Tensor]] = [{} for _ in policies]
    for k in range(steps):
        joint: dict[str, list[torch.Tensor]] = {role: [] for role in ROLES}
        for c, (mine, rules) in enumerate(zip(live, ahead, strict=True)):
            actions = _act(kernel, mine, t[rows[c]], risk[rows[c]])
            if not acted[c]:
                acted[c] = {
                    r: torch.empty((steps, *a.shape), dtype=a.dtype) for r, a in actions.items()
                }
            for role, action in actions.items():
                acted[c][role][k] = action
            actions |= {role: rules[role][k] for role in rules}
            for role in ROLES:
                joint[role].append(actions[role])
        together = (torch.cat(joint[role]) if copies > 1 else joint[role][0] for role in ROLES)
        state, out = kernel.transition(state, *together)
        if terms is None:
            terms = torch.empty((steps, *out["terms"].shape), dtype=out["terms"].dtype)
            rewards = torch.empty((steps, *out["rewards"].shape), dtype=out["rewards"].dtype)
        values = {**state, **out}
        torch.stack([values[key] for key in INFO_F64], out=f64[k])
        torch.stack([*(values[key] for key in INFO_I64), t], out=i64[k])
        torch.stack(
            (decision, out["stop_hit"], out["terminated"][:, 0], out["truncated"][:, 0]),
            out=flags[k],
        )
        terms[k] = out["terms"]
        rewards[k] = out["rewards"]
        t, decision, risk = out["t"], out["decision"][:, 0], out["risk"]
    env.state = {name: value[rows[-1]] for name, value in state.items()}
    assert terms is not None and rewards is not None
    return [
        _rollout(
            env,
            f64[..., rows[c]],
            i64[..., rows[c]],
            flags[..., rows[c]],
            terms[:, rows[c]],
            rewards[:, rows[c]],
            acted[c] | ahead[c],
            steps,
        )
        for c in range(copies)
    ]


def _act(kernel, live: LeanPolicy, t: torch.Tensor, risk: torch.Tensor) -> dict[str, torch.Tensor]:
    """The step-by-step actors' actions at decisions ``t`` of their own rows."""
    windows = kernel.windows_at(t) if _needs_windows(live) else {}
    inputs = {("risk", "observation"): risk, TIME: t.unsqueeze(1)}
    inputs |= {(name, "observation"): w for name, w in windows.items()}
    return {role: actor.act(inputs[actor.key]) for role, actor in live.items()}


def _needs_windows(live: LeanPolicy) -> bool:
    return any(actor.key[0] in ("strategic", "tactical") for actor in live.values())


def _timeless(actor: Actor, kernel, times: torch.Tensor) -> torch.Tensor:
    """``actor``'s action at every ``[step, env]`` decision, a chunk of steps per call (in step
    order: a random rule draws what it would draw step by step)."""
    parts = []
    rows = max(1, CHUNK // times.shape[1])
    for chunk in times.split(rows):
        if actor.key == TIME:
            x = chunk.unsqueeze(-1)
        else:
            x = kernel.windows_at(chunk.reshape(-1))[actor.key[0]]
            x = x.reshape(*chunk.shape, *x.shape[1:])
        parts.append(actor.act(x))
    return torch.cat(parts)


def _rollout(
    env: MarketEnv,
    f64: torch.Tensor,
    i64: torch.Tensor,
    flags: torch.Tensor,
    terms: torch.Tensor,
    rewards: torch.Tensor,
    acted: dict[str, torch.Tensor],
    steps: int,
) -> tuple[TensorDict, torch.Tensor]:
    """The kept entries as ``run_policy`` lays them out (``[envs, steps, ...]``) and the mask of
    each env's first-episode steps."""
    column = lambda x: x.transpose(0, 1).unsqueeze(-1)  # noqa: E731  [steps, envs] -> [envs, steps, 1]
    info = {key: column(f64[:, i]) for i, key in enumerate(INFO_F64)}
    info |= {key: column(i64[:, i]) for i, key in enumerate(INFO_I64)}
    info["stop_hit"] = column(flags[:, 1])
    info["terms"] = terms.transpose(0, 1)
    done = column(flags[:, 2] | flags[:, 3])
    rewards = rewards.transpose(0, 1)
    source = {
        "info": {"t": column(i64[:, len(INFO_I64)])},
        "strategic": {"decision": column(flags[:, 0])},
        "next": {
            "info": info,
            "done": done,
            **{role: {"reward": rewards[..., i : i + 1]} for i, role in enumerate(ROLES)},
        },
    }
    for role, action in acted.items():
        source[role] = {**source.get(role, {}), "action": action.transpose(0, 1)}
    rollout = TensorDict(source, batch_size=[env.n, steps], device=env.device)
    ended_before = torch.cumsum(done[..., 0].int(), dim=-1) - done[..., 0].int()
    return rollout, ended_before == 0

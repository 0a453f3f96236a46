"""``MarketEnv``: the batched three-agent futures env on TorchRL (docs/architecture.md, "Time and
look-ahead" and "Reward").

The clock is the tactical bar. At decision t (the close of tactical bar t) the agents see only bars
known then; orders fill at the open of the next base bar; stops are checked on the base bars up to
the next decision; the portfolio is marked at the close of tactical bar t+1. The strategic action is
read only where ``("strategic", "decision")`` is set (a new strategic bar has closed) and holds in
between. All data and state are tensors on the env's device; nothing loops over envs. The maths is in
:class:`~grandmodel.env.kernel.StepKernel`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase, is_tensor_collection
from torchrl.envs import EnvBase

from grandmodel.config import typed
from grandmodel.config.curriculum import CurriculumLevel
from grandmodel.config.data import DataConfig
from grandmodel.config.env import ROLES, EnvConfig, RewardConfig
from grandmodel.data.market_data import MarketData
from grandmodel.env import specs
from grandmodel.env.allocator import keep_freed_memory
from grandmodel.env.episodes import EpisodeSampler
from grandmodel.env.kernel import StepKernel
from grandmodel.env.scenario import level_market
from grandmodel.env.state import State, fresh_state, replace_rows


class MarketEnv(EnvBase):
    """Batched env over :class:`MarketData`.

    ``cfg`` is the composed root config or a run's stored one (kept as ``self.cfg``); its ``env``,
    ``data`` and ``reward`` parts are validated once into ``env_cfg``, ``data_cfg``, ``reward_cfg``.
    ``level``: a curriculum level whose markets the resets draw from (see :meth:`set_level`).
    """

    batch_locked = True

    def __init__(
        self,
        data: MarketData,
        cfg: Any,
        *,
        n_envs: int | None = None,
        split: str = "train",
        mode: str = "train",
        device: str | torch.device | None = None,
        seed: int | None = None,
        compile: bool | None = None,
        level: CurriculumLevel | Any | None = None,
    ) -> None:
        env_cfg = typed(cfg.env, EnvConfig)
        n = env_cfg.n_envs if n_envs is None else n_envs
        device = torch.device(env_cfg.device if device is None else device)
        super().__init__(batch_size=torch.Size([n]), device=device)
        self.cfg, self.n, self.env_cfg = cfg, n, env_cfg
        self.data_cfg = typed(cfg.data, DataConfig)
        self.reward_cfg = typed(cfg.reward, RewardConfig)
        self.cache_dir = Path(cfg.paths.cache_dir)
        self.compiled = env_cfg.compile if compile is None else compile
        self.lean_step, self._lean_checked = env_cfg.lean_step, False
        keep_freed_memory(env_cfg.keep_freed_mb)  # per-step tensors reuse the heap (allocator.py)
        self.rng = torch.Generator()
        self.rng.manual_seed(int(cfg.seed if seed is None else seed))
        length = int(data.meta.get("episode_length", self.data_cfg.episode_length))
        self.sampler = EpisodeSampler(data, length, self.data_cfg.episode_sampling, n)
        self.sampler.set_mode(mode, split)
        self.load_data(data)
        self.state: State = fresh_state(n, env_cfg.var_window, env_cfg.initial_capital, device)
        n_features = {
            name: len(getattr(data, name).feature_names) for name in ("strategic", "tactical")
        }
        self.observation_spec = specs.observation_spec(n, data.window, n_features, device)
        self.action_spec = specs.action_spec(
            n, env_cfg.stop_bounds, env_cfg.scale_bounds, len(env_cfg.risk_cap), device
        )
        self.reward_spec = specs.reward_spec(n, device)
        self.full_done_spec = specs.done_spec(n, device)
        self.level: CurriculumLevel | None = None
        if level is not None:
            self.set_level(level)

    def load_data(self, data: MarketData) -> None:
        """Use ``data`` from the next reset on (also how curriculum levels swap markets)."""
        self.data = data
        self.kernel = StepKernel(
            data, self.env_cfg, self.reward_cfg, self.device, compile=self.compiled
        )
        self.sampler.splits = dict(data.splits)

    def set_level(self, level: CurriculumLevel | Any) -> None:
        """Draw the next resets from a curriculum level's markets: regenerated (synthetic data) or
        the matching training windows (historical data), episodes of the level's length.

        ``level``: a ``CurriculumLevel`` or a ``curriculum.levels`` config node."""
        level = typed(level, CurriculumLevel)
        vol = self.kernel.sigma.cpu() * self.kernel.annualiser
        data, allowed = level_market(self.data_cfg, self.cache_dir, self.data, level, vol)
        if data is not self.data:
            self.load_data(data)
        self.sampler.allowed = allowed
        self.sampler.set_length(level.episode_length)
        self.level = level

    # ---------------------------------------------------------------- episodes
    def set_mode(self, mode: str, split: str | None = None) -> None:
        """``train``: random (or overlapping) windows of the split; ``eval``: walk it in order."""
        self.sampler.set_mode(mode, split or ("train" if mode == "train" else "val"))

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
        self.rng.manual_seed(int(seed))

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDictBase:
        mask = None if tensordict is None else tensordict.get("_reset", None)
        rows = torch.ones(self.n, dtype=torch.bool) if mask is None else mask.view(-1)
        return self._reset_rows(rows)

    def _reset_rows(self, rows: torch.Tensor) -> TensorDict:
        """New episodes where ``rows`` (``[n]`` bool) is set; the observation of every env."""
        rows = rows.cpu()
        cfg = self.env_cfg
        fresh = fresh_state(self.n, cfg.var_window, cfg.initial_capital, self.device)
        start, end = self.sampler.draw(rows, self.rng)
        fresh["ptr"], fresh["end"] = start.to(self.device), end.to(self.device)
        self.state = replace_rows(self.state, rows.to(self.device), fresh)
        return self.current_observation()

    # ---------------------------------------------------------------- step
    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        self.state, out = self.kernel.step(
            self.state,
            tensordict.get(("strategic", "action")),
            tensordict.get(("tactical", "action")),
            tensordict.get(("risk", "action")),
        )
        return self._pack(out, self.state)

    # ---------------------------------------------------------------- lean collector path
    def step_and_maybe_reset(
        self, tensordict: TensorDictBase
    ) -> tuple[TensorDictBase, TensorDictBase]:
        """TorchRL's contract (0.14.1) at a fraction of its cost: ``tensordict`` gets ``"next"``
        (observations, rewards, done flags), and the returned carry-over is ``step_mdp`` of it
        (the root's entries but rewards and done flags, the next observations and done flags),
        reset where done, with the policy's entries zeroed in the rows of a partial reset.

        The generic version (``EnvBase.step``, ``_step_proc_data``, ``step_mdp``, ``maybe_reset``)
        re-checks shapes and keys and walks the nested TensorDict every call: 100-200 µs per call
        more than this one whatever the batch, +43% env-steps/s at 64 envs (compiled), +8% at 1024
        (experiments/env_throughput/README.md, 2026-11-30). Here the output keys are checked
        against the specs once, the carry-over is built on the TensorDicts' dicts, and done envs are
        reset with tensor ops. ``env.lean_step=false``, or an input this path does not cover (another
        TensorDict class, dim names, ``"next"`` or ``"_step"`` entries, TorchRL's compiled step or
        hooks), takes the generic version; tests/env/test_lean_step.py holds the two equal.
        """
        if tensordict.device != self.device:
            tensordict = tensordict.to(self.device)
        if not self._lean_fits(tensordict):
            return super().step_and_maybe_reset(tensordict)
        nxt = self._step(tensordict)
        if not self._lean_checked:
            self._check_lean_keys(nxt)
        tensordict._set_str("next", nxt, validated=True, inplace=False, non_blocking=False)
        mdp = self._step_mdp
        carry = _carry(tensordict, nxt, mdp.exclude_from_root, mdp.keys_from_next)
        carry = tensordict.empty() if carry is None else carry
        done = nxt._tensordict["done"].view(-1)
        if done.any():
            fresh = self._reset_rows(done)
            if done.all():
                carry.update(fresh, update_batch_size=True)
            else:
                _merge_rows(carry, fresh, done)
        return tensordict, carry

    def _lean_fits(self, td: TensorDictBase) -> bool:
        """Whether ``td`` is what the lean path covers (a few dict lookups per call)."""
        return (
            self.lean_step
            and type(td) is TensorDict
            and td.batch_size == self.batch_size
            and td._td_dim_names is None
            and "next" not in td._tensordict
            and "_step" not in td._tensordict
            and not self.run_type_checks
            and self._post_step_mdp_hooks is None
            and "_compiled_step_and_maybe_reset" not in self.__dict__
            and not self.__dict__.get("_torchrl_native_autoreset", False)
            and all(
                type(td._tensordict.get(key)) in _PLAIN
                for key, sub in self._step_mdp.exclude_from_root.items()
                if sub is not None
            )
        )

    def _check_lean_keys(self, nxt: TensorDict) -> None:
        """Once: a step's output has exactly the specs' keys, shapes and dtypes (so TorchRL's
        ``_step_proc_data`` would change nothing), and every TensorDict in it is a plain one."""
        specs_out = self.output_spec
        expected = {
            key: spec
            for part in ("full_observation_spec", "full_reward_spec", "full_done_spec")
            for key, spec in specs_out[part].items(True, True)
        }
        got = dict(nxt.items(True, True))
        if set(got) != set(expected):
            raise RuntimeError(f"step output keys {sorted(got)} differ from the specs'")
        for key, spec in expected.items():
            if got[key].shape != spec.shape or got[key].dtype != spec.dtype:
                raise RuntimeError(f"step output {key} is not {spec.shape} {spec.dtype}")
        if any(type(v) is not TensorDict for v in nxt.values(True) if is_tensor_collection(v)):
            raise RuntimeError("step output holds a TensorDict of another class")
        self._lean_checked = True

    def _pack(self, out: dict[str, torch.Tensor], s: State) -> TensorDict:
        """Observations, rewards, done flags and accounting info as the nested TensorDict of the specs.

        Built with ``TensorDict._new_unsafe``: every entry already matches the specs (checked by
        ``check_env_specs`` in the tests), and per-entry validation would cost more than the step.
        """
        stepped = "rewards" in out
        info = {
            "equity": s["equity"], "position": s["position"], "realised": s["realised"],
            "unrealised": out["unrealised"], "costs": s["costs"], "mark": out["mark"],
            "drawdown": out["drawdown"], "t": out["t"], "trades": s["trades"], "wins": s["wins"],
            "direction": s["direction"],
        }  # fmt: skip
        info |= {k: out[k] for k in STEP_INFO} if stepped else _no_transition(s["equity"])
        info = {key: value.unsqueeze(1) for key, value in info.items()}
        info["terms"] = (
            out["terms"]
            if stepped
            else torch.zeros((self.n, specs.N_TERMS), dtype=torch.float64, device=self.device)
        )
        source: dict[str, Any] = {
            "strategic": {"observation": out["strategic"], "decision": out["decision"]},
            "tactical": {"observation": out["tactical"]},
            "risk": {"observation": out["risk"]},
            "info": info,
        }
        if stepped:
            rewards = out["rewards"]
            for i, role in enumerate(ROLES):
                source[role]["reward"] = rewards[:, i : i + 1]
            source["terminated"], source["truncated"] = out["terminated"], out["truncated"]
            source["done"] = out["terminated"] | out["truncated"]
        return TensorDict._new_unsafe(source, batch_size=self.batch_size, device=self.device)

    # ---------------------------------------------------------------- checkpointing
    def env_state_dict(self) -> dict[str, Any]:
        """Portfolio/episode state, sampler cursors and the reset RNG (for exact resume)."""
        return {
            "state": {k: v.clone() for k, v in self.state.items()},
            "rng": self.rng.get_state(),
            "sampler": self.sampler.state_dict(),
        }

    def load_env_state_dict(self, state: dict[str, Any]) -> None:
        self.state = {k: v.to(self.device).clone() for k, v in state["state"].items()}
        self.rng.set_state(state["rng"])
        self.sampler.load_state_dict(state["sampler"])

    def current_observation(self) -> TensorDict:
        """The observation of the current state (what the last step or reset returned)."""
        out = self._pack(self.kernel.observe(self.state), self.state)
        zeros = torch.zeros((self.n, 1), dtype=torch.bool, device=self.device)
        out.update({"done": zeros, "terminated": zeros.clone(), "truncated": zeros.clone()})
        return out


_ABSENT = object()
_PLAIN = (TensorDict, type(None))  # what the lean path walks: plain TensorDicts (or nothing)

STEP_INFO = (
    "step_cost",
    "traded",
    "fill_price",
    "stop_price",
    "stop_hit",
    "stop_bar",
    "closed_fill_pnl",
    "closed_stop_pnl",
)


def _no_transition(like: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-transition info after a reset, when nothing has traded yet."""
    zero, nan = torch.zeros_like(like), torch.full_like(like, float("nan"))
    return {
        "step_cost": zero, "traded": zero, "fill_price": zero, "stop_price": zero,
        "stop_hit": torch.zeros_like(like, dtype=torch.bool), "stop_bar": torch.full_like(like, -1, dtype=torch.int64),
        "closed_fill_pnl": nan, "closed_stop_pnl": nan,
    }  # fmt: skip


def _carry(
    root: TensorDict, nxt: TensorDict, drop: dict[str, Any], take: dict[str, Any]
) -> TensorDict | None:
    """TorchRL's ``step_mdp`` (``_StepMDP``: exclude, then grab and place) in one pass over plain
    TensorDicts: ``root``'s entries but those of ``drop`` (``None``: a whole entry), then those of
    ``take`` from ``nxt``. Sub-TensorDicts are new (their tensors shared); ``None`` when empty."""
    source = {}
    for key, value in root._tensordict.items():
        gone, new = drop.get(key, _ABSENT), take.get(key, _ABSENT)
        if gone is None or new is None:
            continue  # dropped, or a leaf of nxt's replaces it below
        if gone is _ABSENT and new is _ABSENT:
            source[key] = value.copy() if is_tensor_collection(value) else value
            continue
        fresh = nxt._tensordict[key] if new is not _ABSENT else value
        if fresh.batch_size == value.batch_size:  # (TorchRL starts from an empty one otherwise)
            kept = _carry(
                value, fresh, {} if gone is _ABSENT else gone, {} if new is _ABSENT else new
            )
            if kept is not None:
                source[key] = kept
    for key, new in take.items():
        if key not in source:
            value = nxt._tensordict[key]
            if new is not None:
                value = _carry(value.empty(), value, {}, new)
            elif is_tensor_collection(value):
                value = value.copy()
            source[key] = value
    if not source:
        return None
    return TensorDict._new_unsafe(
        source, batch_size=root.batch_size, device=root.device, nested=False
    )


def _merge_rows(carry: TensorDict, fresh: TensorDict | None, rows: torch.Tensor) -> None:
    """Rows ``rows`` of ``carry`` take ``fresh``'s entries; its other entries are zeroed there
    (TorchRL's ``carry.where(~rows, fresh, out=carry, pad=0)`` of a partial reset). ``fresh``'s
    keys (a reset's observations and done flags) are all in ``carry``."""
    for key, value in list(carry._tensordict.items()):
        other = None if fresh is None else fresh._tensordict.get(key)
        if is_tensor_collection(value):
            _merge_rows(value, other, rows)
            continue
        mask = rows.view(-1, *([1] * (value.dim() - 1)))
        if other is None:
            other = torch.zeros((), dtype=value.dtype, device=value.device)
        carry._set_str(
            key, torch.where(mask, other, value), validated=True, inplace=False, non_blocking=False
        )

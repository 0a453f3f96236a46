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
from tensordict import TensorDict, TensorDictBase
from torchrl.envs import EnvBase

from grandmodel.config import typed
from grandmodel.config.curriculum import CurriculumLevel
from grandmodel.config.data import DataConfig
from grandmodel.config.env import ROLES, EnvConfig, RewardConfig
from grandmodel.data.market_data import MarketData
from grandmodel.env import specs
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
        rows = torch.ones(self.n, dtype=torch.bool) if mask is None else mask.view(-1).cpu()
        cfg = self.env_cfg
        fresh = fresh_state(self.n, cfg.var_window, cfg.initial_capital, self.device)
        start, end = self.sampler.draw(rows, self.rng)
        fresh["ptr"], fresh["end"] = start.to(self.device), end.to(self.device)
        self.state = replace_rows(self.state, rows.to(self.device), fresh)
        out = self._pack(self.kernel.observe(self.state), self.state)
        zeros = torch.zeros((self.n, 1), dtype=torch.bool, device=self.device)
        out.update({"done": zeros, "terminated": zeros.clone(), "truncated": zeros.clone()})
        return out

    # ---------------------------------------------------------------- step
    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        self.state, out = self.kernel.step(
            self.state,
            tensordict.get(("strategic", "action")),
            tensordict.get(("tactical", "action")),
            tensordict.get(("risk", "action")),
        )
        return self._pack(out, self.state)

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

"""Schema of the ``agent`` config group (package ``grandmodel.agents``): one learner per role."""

from __future__ import annotations

from dataclasses import dataclass, field

from grandmodel.config.base import Problem, check
from grandmodel.config.env import ROLES

ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "silu", "leaky_relu")
ENCODERS = ("flatten", "conv1d", "gru", "last")
INITS = ("default", "orthogonal")


def _network_problems(obj, fields: tuple[str, ...]) -> list[Problem]:
    out = check(
        obj.activation in ACTIVATIONS,
        "activation",
        f"expected one of {list(ACTIVATIONS)}, got {obj.activation!r}",
    )
    out += check(
        obj.encoder in ENCODERS, "encoder", f"expected one of {list(ENCODERS)}, got {obj.encoder!r}"
    )
    out += check(0.0 <= obj.dropout < 1.0, "dropout", f"must be in [0, 1), got {obj.dropout}")
    out += check(obj.encoder_size >= 1, "encoder_size", f"must be >= 1, got {obj.encoder_size}")
    for name in fields:
        layers = list(getattr(obj, name))
        out += check(
            all(int(n) >= 1 for n in layers), name, f"expected positive layer sizes, got {layers}"
        )
    out += check(obj.lr > 0, "lr", f"must be > 0, got {obj.lr}")
    out += check(0.0 <= obj.gamma <= 1.0, "gamma", f"must be in [0, 1], got {obj.gamma}")
    out += check(obj.batch_size >= 1, "batch_size", f"must be >= 1, got {obj.batch_size}")
    return out


@dataclass
class ReplayConfig:
    """Experience replay, prioritized (proportional) with β annealed to ``beta_end`` over training."""

    buffer_size: int = 100_000
    min_size_to_train: int = 1000
    prioritized: bool = True
    alpha: float = 0.6
    beta: float = 0.4
    beta_end: float = 1.0

    def problems(self) -> list[Problem]:
        out = check(self.buffer_size >= 1, "buffer_size", f"must be >= 1, got {self.buffer_size}")
        out += check(
            0 <= self.min_size_to_train <= self.buffer_size,
            "min_size_to_train",
            f"must be in [0, buffer_size], got {self.min_size_to_train}",
        )
        out += check(0 <= self.alpha <= 1, "alpha", f"must be in [0, 1], got {self.alpha}")
        out += check(
            0 <= self.beta <= self.beta_end <= 1,
            "beta",
            f"expected 0 <= beta <= beta_end <= 1, got {self.beta} -> {self.beta_end}",
        )
        return out


@dataclass
class PPOConfig:
    """Strategic agent: clipped PPO with GAE on its own (30-minute) decision points."""

    algorithm: str = "ppo"
    lr: float = 3e-4
    lr_final_fraction: float = (
        1.0  # lr falls linearly to lr x this at the end of training (1: constant)
    )
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    entropy_coeff: float = 0.01
    value_loss_coeff: float = 0.5
    max_grad_norm: float = 0.5
    epochs_per_update: int = 10
    batch_size: int = 64
    normalize_advantage: bool = True
    encoder: str = "flatten"
    encoder_size: int = 32
    hidden_size: int | None = None  # when set, shared_layers = [h, h // 2] (one knob for sweeps)
    shared_layers: list[int] = field(default_factory=lambda: [256, 128])
    policy_layers: list[int] = field(default_factory=lambda: [64, 32])
    value_layers: list[int] = field(default_factory=lambda: [64, 32])
    activation: str = "relu"
    dropout: float = 0.0
    # default: PyTorch's layer init. orthogonal: every linear layer orthogonal with gain sqrt(2),
    # the policy output with gain 0.01 (a near-uniform first policy), the value output with 1
    init: str = "default"

    def problems(self) -> list[Problem]:
        out = _network_problems(self, ("shared_layers", "policy_layers", "value_layers"))
        out += check(
            self.init in INITS, "init", f"expected one of {list(INITS)}, got {self.init!r}"
        )
        out += check(
            0 < self.clip_range < 1, "clip_range", f"must be in (0, 1), got {self.clip_range}"
        )
        out += check(
            0 <= self.gae_lambda <= 1, "gae_lambda", f"must be in [0, 1], got {self.gae_lambda}"
        )
        out += check(
            0 <= self.lr_final_fraction <= 1,
            "lr_final_fraction",
            f"must be in [0, 1], got {self.lr_final_fraction}",
        )
        out += check(
            self.epochs_per_update >= 1,
            "epochs_per_update",
            f"must be >= 1, got {self.epochs_per_update}",
        )
        out += check(
            self.max_grad_norm > 0, "max_grad_norm", f"must be > 0, got {self.max_grad_norm}"
        )
        return out


@dataclass
class SACConfig:
    """Tactical agent: SAC with twin critics and automatic temperature."""

    algorithm: str = "sac"
    lr: float = 1e-3
    gamma: float = 0.99
    batch_size: int = 256
    tau: float = 0.005
    alpha_init: float = 1.0
    target_update_interval: int = 1
    gradient_steps: float = 0.25  # updates per vectorised env step (update-to-data ratio)
    max_grad_norm: float = 10.0
    encoder: str = "flatten"
    encoder_size: int = 32
    hidden_layers: list[int] = field(default_factory=lambda: [128, 128])
    activation: str = "relu"
    dropout: float = 0.0
    replay: ReplayConfig = field(default_factory=ReplayConfig)

    def problems(self) -> list[Problem]:
        out = _network_problems(self, ("hidden_layers",))
        out += check(0 < self.tau <= 1, "tau", f"must be in (0, 1], got {self.tau}")
        out += check(self.alpha_init > 0, "alpha_init", f"must be > 0, got {self.alpha_init}")
        out += check(
            self.target_update_interval >= 1,
            "target_update_interval",
            f"must be >= 1, got {self.target_update_interval}",
        )
        out += check(
            self.gradient_steps >= 0, "gradient_steps", f"must be >= 0, got {self.gradient_steps}"
        )
        return out


@dataclass
class DQNConfig:
    """Risk agent: double DQN with a dueling head; ε falls linearly to ``epsilon_end`` over the first
    ``exploration_fraction`` of the run's frames."""

    algorithm: str = "dqn"
    lr: float = 2.5e-4
    gamma: float = 0.99
    batch_size: int = 128
    epsilon_start: float = 1.0
    epsilon_end: float = 0.01
    exploration_fraction: float = 0.5
    target_update_interval: int = 100
    gradient_steps: float = 1.0  # updates per vectorised env step (update-to-data ratio)
    max_grad_norm: float = 10.0
    dueling: bool = True
    double_dqn: bool = True
    encoder: str = "flatten"
    encoder_size: int = 32
    hidden_layers: list[int] = field(default_factory=lambda: [120, 84])
    activation: str = "relu"
    dropout: float = 0.0
    replay: ReplayConfig = field(default_factory=ReplayConfig)

    def problems(self) -> list[Problem]:
        out = _network_problems(self, ("hidden_layers",))
        out += check(
            0 <= self.epsilon_end <= self.epsilon_start <= 1,
            "epsilon_start",
            f"expected 0 <= epsilon_end <= epsilon_start <= 1, got {self.epsilon_start} -> {self.epsilon_end}",
        )
        out += check(
            0 <= self.exploration_fraction <= 1,
            "exploration_fraction",
            f"must be in [0, 1], got {self.exploration_fraction}",
        )
        out += check(
            self.target_update_interval >= 1,
            "target_update_interval",
            f"must be >= 1, got {self.target_update_interval}",
        )
        out += check(
            self.gradient_steps >= 0, "gradient_steps", f"must be >= 0, got {self.gradient_steps}"
        )
        return out


@dataclass
class BaselineConfig:
    """How roles that do not learn act (unless frozen): a baseline policy per role."""

    strategic: str = "ma_crossover"
    tactical: str = "full_entry"
    risk: str = "fixed"
    tactical_stop: float = 0.01
    tactical_scale: float = 1.0
    risk_level: int = 4


@dataclass
class FrozenConfig:
    """Checkpoints (``.ckpt`` of an earlier run) whose trained policy a non-learning role uses."""

    strategic: str | None = None
    tactical: str | None = None
    risk: str | None = None


@dataclass
class PhasesConfig:
    """``[start, end]`` of each learning role, as shares of ``trainer.total_frames``: before
    ``start`` the role acts by its baseline (``agent.baselines``) and does not learn; from
    ``start`` to ``end`` it acts by its learner and learns (its schedules, e.g. PPO's learning
    rate and DQN's ε, run over this window); after ``end`` it acts greedily by its learner and no
    longer learns. ``[0, 1]`` (the default) learns throughout; ``grandmodel/training/phases.py``."""

    strategic: list[float] = field(default_factory=lambda: [0.0, 1.0])
    tactical: list[float] = field(default_factory=lambda: [0.0, 1.0])
    risk: list[float] = field(default_factory=lambda: [0.0, 1.0])

    def window(self, role: str) -> tuple[float, float]:
        start, end = getattr(self, role)
        return float(start), float(end)

    def phased(self, role: str) -> bool:
        """Whether ``role`` has a window other than the whole run (a malformed one, which
        ``problems`` reports, counts as none)."""
        value = list(getattr(self, role))
        return len(value) == 2 and (float(value[0]), float(value[1])) != (0.0, 1.0)

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        for role in ROLES:
            value = list(getattr(self, role))
            out += check(
                len(value) == 2 and 0.0 <= value[0] < value[1] <= 1.0,
                role,
                f"expected [start, end] with 0 <= start < end <= 1, got {value}",
            )
        return out


@dataclass
class AgentGroupConfig:
    """``marl``: all three learn; ``ppo`` / ``sac`` / ``dqn``: only that role learns."""

    name: str = "marl"
    learn: list[str] = field(default_factory=lambda: list(ROLES))
    strategic: PPOConfig = field(default_factory=PPOConfig)
    tactical: SACConfig = field(default_factory=SACConfig)
    risk: DQNConfig = field(default_factory=DQNConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    frozen: FrozenConfig = field(default_factory=FrozenConfig)
    phases: PhasesConfig = field(default_factory=PhasesConfig)

    def problems(self) -> list[Problem]:
        bad = [r for r in self.learn if r not in ROLES]
        out = check(
            bool(self.learn) and not bad,
            "learn",
            f"expected a non-empty subset of {list(ROLES)}, got {list(self.learn)}",
        )
        both = [r for r in self.learn if r in ROLES and getattr(self.frozen, r)]
        out += check(
            not both,
            "frozen",
            f"roles {both} both learn and are frozen; drop them from agent.learn or agent.frozen",
        )
        phased = [r for r in ROLES if r not in self.learn and self.phases.phased(r)]
        out += check(
            not phased,
            "phases",
            f"roles {phased} do not learn, so they have no learning phase; "
            "expected [0.0, 1.0] for them or the roles in agent.learn",
        )
        return out

"""Pure-torch proportional prioritized replay: distribution, weights, priorities, checkpoints."""

from __future__ import annotations

import io

import pytest
import torch
from scipy.stats import chisquare
from tensordict import TensorDict
from torchrl.data import (
    LazyTensorStorage,
    PrioritizedSampler,
    RandomSampler,
    ReplayBuffer,
    TensorDictReplayBuffer,
)

from grandmodel.agents.replay import (
    WEIGHT_KEY,
    ProportionalPrioritizedSampler,
    make_replay_buffer,
    set_beta,
    torchrl_prioritized_available,
)

EPS = 1e-8


def make_buffer(
    capacity: int = 16, batch_size: int = 32, alpha: float = 0.6, beta: float = 0.4, **kwargs
) -> tuple[TensorDictReplayBuffer, ProportionalPrioritizedSampler]:
    sampler = ProportionalPrioritizedSampler(capacity, alpha, beta, **kwargs)
    rb = TensorDictReplayBuffer(
        storage=LazyTensorStorage(capacity),
        sampler=sampler,
        batch_size=batch_size,
        priority_key="td_error",
    )
    return rb, sampler


def transitions(n: int, start: int = 0) -> TensorDict:
    obs = torch.arange(start, start + n, dtype=torch.float32).unsqueeze(-1)
    return TensorDict({"obs": obs}, batch_size=[n])


def probabilities(priority: torch.Tensor, alpha: float) -> torch.Tensor:
    p = (priority.double().abs() + EPS) ** alpha
    return p / p.sum()


def raw(sampler: ProportionalPrioritizedSampler) -> torch.Tensor:
    return sampler.state_dict()["raw_priority"]


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_sampling_frequencies_match_priorities(alpha: float) -> None:
    priority = torch.tensor([0.5, 1.0, 2.0, 4.0, 0.25, 3.0, 8.0, 0.1], dtype=torch.float64)
    rb, sampler = make_buffer(8, alpha=alpha)
    rb.extend(transitions(8))
    rb.update_priority(torch.arange(8), priority)
    torch.manual_seed(0)
    n = 400_000
    index, _ = sampler.sample(rb.storage, n)
    counts = torch.bincount(index, minlength=8).double()
    expected = probabilities(priority, alpha)
    assert chisquare(counts.numpy(), (n * expected).numpy()).pvalue > 1e-3
    assert (counts / n - expected).abs().max() < 3e-3


@pytest.mark.parametrize("beta", [0.4, 1.0, 0.0])
def test_importance_weights_are_exact(beta: float) -> None:
    # 0.001 is (almost) never drawn: the max weight is over the buffer, not over the batch
    priority = torch.tensor([0.3, 1.0, 2.0, 5.0, 0.001, 1.5], dtype=torch.float64)
    rb, sampler = make_buffer(8, alpha=0.7, beta=0.9)  # N = 6 stored, capacity 8
    rb.extend(transitions(6))
    rb.update_priority(torch.arange(6), priority)
    set_beta(rb, beta)
    assert sampler.beta == beta
    torch.manual_seed(1)
    index, info = sampler.sample(rb.storage, 64)
    w = (6 * probabilities(priority, 0.7)) ** -beta
    torch.testing.assert_close(info[WEIGHT_KEY], (w / w.max())[index], rtol=0, atol=1e-9)
    if beta == 0.0:
        assert torch.equal(info[WEIGHT_KEY], torch.ones(64, dtype=torch.float64))
    with pytest.raises(ValueError, match="beta"):
        sampler.beta = -0.1


def test_new_items_get_max_priority_and_updates_change_sampling() -> None:
    rb, sampler = make_buffer(8, alpha=1.0)
    rb.extend(transitions(4))
    assert sampler.default_priority == 1.0
    assert torch.equal(raw(sampler)[:4], torch.ones(4, dtype=torch.float64))
    torch.manual_seed(2)
    before = (sampler.sample(rb.storage, 20_000)[0] == 0).double().mean()
    rb.update_priority(torch.tensor([0]), torch.tensor([9.0]))
    after = (sampler.sample(rb.storage, 20_000)[0] == 0).double().mean()
    assert abs(before - 0.25) < 0.02 and abs(after - 0.75) < 0.02
    assert sampler.default_priority == 9.0
    rb.extend(transitions(1, start=4))
    state = sampler.state_dict()
    assert state["raw_priority"][4] == 9.0 and state["priority"][4] == state["priority"][0]
    rb.update_priority(0, 0.5)  # the max seen so far is kept ...
    assert sampler.default_priority == 9.0


def test_max_priority_within_buffer_tracks_stored_priorities() -> None:
    rb, sampler = make_buffer(8, max_priority_within_buffer=True)
    rb.extend(transitions(4))
    rb.update_priority(torch.arange(4), torch.tensor([0.5, 3.0, 0.2, 0.1]))
    assert sampler.default_priority == 3.0
    rb.update_priority(1, 0.4)  # ... unless only the priorities held count
    assert sampler.default_priority == 0.5
    rb.extend(transitions(1, start=4))
    assert raw(sampler)[4] == 0.5


def test_wrap_around_reuses_slots_with_max_priority() -> None:
    rb, sampler = make_buffer(4, alpha=1.0)
    rb.extend(transitions(4))
    rb.update_priority(torch.arange(4), torch.tensor([0.125, 0.25, 5.0, 0.0625]))
    rb.extend(transitions(2, start=4))  # overwrites slots 0 and 1
    assert len(rb) == 4
    assert rb.storage[0]["obs"].item() == 4.0 and rb.storage[1]["obs"].item() == 5.0
    assert torch.equal(raw(sampler), torch.tensor([5.0, 5.0, 5.0, 0.0625], dtype=torch.float64))
    torch.manual_seed(3)
    index, info = sampler.sample(rb.storage, 10_000)
    assert index.max() < 4
    assert abs((index == 3).double().mean() - 0.0625 / 15.0625) < 3e-3
    torch.testing.assert_close(
        info[WEIGHT_KEY][index == 3], torch.ones_like(index[index == 3]).double()
    )


def test_update_priority_edge_cases() -> None:
    rb, sampler = make_buffer(8, alpha=0.6)
    rb.extend(transitions(4))
    rb.update_priority(torch.tensor([1, 1, 2, 1]), torch.tensor([3.0, 0.5, 2.0, 0.75]))
    assert raw(sampler)[1] == 0.75 and raw(sampler)[2] == 2.0  # last write wins
    rb.update_priority(3, 0.0)
    expected = torch.tensor(EPS, dtype=torch.float64) ** 0.6
    torch.testing.assert_close(sampler.state_dict()["priority"][3], expected, rtol=1e-12, atol=0)
    rb.update_priority(0, -2.0)  # signed TD errors count by magnitude
    assert raw(sampler)[0] == 2.0
    rb.update_priority(torch.tensor([-1, 2]), torch.tensor([9.0, 1.5]))  # -1: not written
    assert raw(sampler)[2] == 1.5
    assert sampler.default_priority == 2.0  # neither the skipped 9.0 nor the overwritten 3.0
    before = sampler.state_dict()
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="finite"):
            rb.update_priority(torch.tensor([0, 1]), torch.tensor([1.0, bad]))
    assert torch.equal(sampler.state_dict()["raw_priority"], before["raw_priority"])
    with pytest.raises(RuntimeError, match="one value per index"):
        rb.update_priority(torch.tensor([0, 1, 2]), torch.tensor([1.0, 2.0]))


def test_empty_buffer_cannot_be_sampled() -> None:
    rb, sampler = make_buffer(8)
    with pytest.raises(RuntimeError, match="empty"):
        sampler.sample(LazyTensorStorage(8), 4)
    rb.extend(transitions(3))
    rb.update_priority(0, 7.0)
    rb.empty()
    assert sampler.default_priority == 1.0 and raw(sampler).abs().sum() == 0
    with pytest.raises(RuntimeError, match="empty"):
        rb.sample()


def test_sampling_uses_torch_global_rng() -> None:
    rb, sampler = make_buffer(16, alpha=0.8)
    rb.extend(transitions(16))
    rb.update_priority(torch.arange(16), torch.arange(1.0, 17.0))
    draws = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        draws.append(sampler.sample(rb.storage, 64)[0])
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


def _filled_buffer() -> tuple[TensorDictReplayBuffer, ProportionalPrioritizedSampler]:
    rb, sampler = make_buffer(32, batch_size=64)
    rb.extend(transitions(20))
    torch.manual_seed(4)
    rb.update_priority(torch.arange(20), torch.rand(20) * 3)
    for _ in range(3):
        sample = rb.sample()
        sample["td_error"] = torch.randn(64, 1)
        rb.update_tensordict_priority(sample)
    rb.extend(transitions(5, start=20))
    return rb, sampler


def test_state_dict_round_trip_reproduces_samples(tmp_path) -> None:
    rb1, sampler1 = _filled_buffer()
    buffer = io.BytesIO()
    torch.save(sampler1.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    rng = torch.get_rng_state()
    first, second = rb1.sample(), rb1.sample()
    assert not torch.equal(first["index"], second["index"])  # the RNG moves on

    rb2, sampler2 = make_buffer(32, batch_size=64)
    rb2.extend(transitions(25))
    torch.set_rng_state(rng)
    assert not torch.equal(rb2.sample()["index"], first["index"])  # priorities matter
    sampler2.load_state_dict(state)
    torch.set_rng_state(rng)
    for ref in (first, second):
        got = rb2.sample()
        for key in ("index", WEIGHT_KEY, "obs"):
            assert torch.equal(got[key], ref[key])

    rb3, _ = make_buffer(32, batch_size=64)  # whole-buffer state, storage included
    rb3.load_state_dict(rb1.state_dict())
    torch.set_rng_state(rng)
    got = rb3.sample()
    assert torch.equal(got["index"], first["index"]) and torch.equal(got["obs"], first["obs"])

    sampler1.dumps(tmp_path / "sampler")
    sampler4 = ProportionalPrioritizedSampler(32, 0.1, 0.1)
    sampler4.loads(tmp_path / "sampler")
    for key, value in sampler1.state_dict().items():
        loaded = sampler4.state_dict()[key]
        assert torch.equal(loaded, value) if isinstance(value, torch.Tensor) else loaded == value
    with pytest.raises(RuntimeError, match="max_capacity"):
        ProportionalPrioritizedSampler(16, 0.6, 0.4).load_state_dict(state)


def test_inside_torchrl_replay_buffers() -> None:
    rb, sampler = make_buffer(16, batch_size=8, alpha=1.0)
    data = transitions(10)
    data["td_error"] = torch.linspace(0.1, 1.0, 10).unsqueeze(-1)
    rb.extend(data)  # priorities read from td_error
    torch.testing.assert_close(raw(sampler)[:10], torch.linspace(0.1, 1.0, 10).double())
    sample = rb.sample()
    assert sample[WEIGHT_KEY].shape == (8,) and sample["index"].shape == (8,)
    sample["td_error"] = torch.full((8, 1), 50.0)
    rb.update_tensordict_priority(sample)
    assert (raw(sampler)[sample["index"]] == 50.0).all()
    hot = torch.zeros(10, dtype=torch.bool)
    hot[sample["index"]] = True
    assert hot[sampler.sample(rb.storage, 1000)[0]].double().mean() > 0.9

    plain = ReplayBuffer(
        storage=LazyTensorStorage(8), sampler=ProportionalPrioritizedSampler(8, 0.6, 0.4)
    )
    plain.extend(torch.arange(8))
    values, info = plain.sample(5, return_info=True)
    assert values.shape == (5,) and info[WEIGHT_KEY].shape == (5,)


def test_make_replay_buffer_picks_a_sampler() -> None:
    assert torchrl_prioritized_available() is torchrl_prioritized_available()
    expected = (
        PrioritizedSampler if torchrl_prioritized_available() else ProportionalPrioritizedSampler
    )
    rb = make_replay_buffer(64, 16, prioritized=True, alpha=0.5, beta=0.4)
    assert type(rb.sampler) is expected
    rb.extend(transitions(32))
    sample = rb.sample()
    assert sample.batch_size == (16,) and WEIGHT_KEY in sample
    set_beta(rb, 1.0)
    assert rb.sampler.beta == 1.0
    sample["td_error"] = torch.full((16,), 4.0)
    rb.update_tensordict_priority(sample)
    assert rb.sampler.default_priority == 4.0

    uniform = make_replay_buffer(64, 16, prioritized=False)
    assert isinstance(uniform.sampler, RandomSampler)
    uniform.extend(transitions(32))
    set_beta(uniform, 1.0)  # no-op
    assert WEIGHT_KEY not in uniform.sample()

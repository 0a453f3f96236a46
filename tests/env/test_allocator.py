"""``env.keep_freed_mb``: a batched env's steps stop faulting their tensors' pages in (glibc)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from grandmodel.env.allocator import keep_freed_memory

STEPS = """
import json, resource, sys, torch
import grandmodel
cfg = grandmodel.load_config(["experiment=smoke", "paths.outputs_dir=" + sys.argv[2],
                              "env.keep_freed_mb=" + sys.argv[1]])
env = grandmodel.build_env(cfg, grandmodel.prepare_data(cfg), n_envs=1024)
td = env.reset()
def step(td):
    td.set(("strategic", "action"), torch.randint(3, (1024,)))
    td.set(("tactical", "action"), torch.rand(1024, 3) * 0.04 + 0.01)
    td.set(("risk", "action"), torch.randint(5, (1024,)))
    return env.step_and_maybe_reset(td)[1]
for _ in range(5):  # the smoke episodes (64 steps) do not end in the measured steps
    td = step(td)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    td = step(td)
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 40))
"""


def _faults_per_step(keep_mb: int, outputs) -> float:
    """Minor page faults per 1024-env step, glibc's mmap threshold pinned at its static 128 KiB.

    glibc raises the threshold on the fly (up to 32 MiB) as mapped blocks are freed, so with its
    defaults the faults per step depend on the process's allocation history (158-298 in
    experiments/env_throughput, 120 in one test run, ~20 in another). Pinning it through glibc's
    ``MALLOC_MMAP_THRESHOLD_`` makes the baseline the state the dynamic threshold starts from, and
    ``keep_freed_memory`` must override it (``mallopt`` is called after the variable is read)."""
    done = subprocess.run(
        [sys.executable, "-c", STEPS, str(keep_mb), str(outputs)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 << 10)},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
def test_steps_reuse_freed_memory_instead_of_faulting_pages_in(tmp_path):
    glibc = _faults_per_step(0, tmp_path)  # 1024 envs: ~4 MB of observations per step
    kept = _faults_per_step(256, tmp_path)
    assert glibc > 500, f"glibc's static threshold faults {glibc:.1f} pages in per step"
    assert kept < 0.1 * glibc, (
        f"{kept:.2f} page faults per step with 256 MB kept, {glibc:.1f} without"
    )


def test_zero_leaves_the_allocator_alone():
    assert keep_freed_memory(0) is False

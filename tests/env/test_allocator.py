"""``env.keep_freed_mb``: a batched env's steps stop faulting their tensors' pages in (glibc)."""

from __future__ import annotations

import json
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
for _ in range(30):
    td = step(td)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    td = step(td)
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 40))
"""


def _faults_per_step(keep_mb: int, outputs) -> float:
    done = subprocess.run(
        [sys.executable, "-c", STEPS, str(keep_mb), str(outputs)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
def test_steps_reuse_freed_memory_instead_of_faulting_pages_in(tmp_path):
    glibc = _faults_per_step(0, tmp_path)  # 1024 envs: ~4 MB of observations per step
    kept = _faults_per_step(256, tmp_path)
    assert glibc > 10, f"glibc's defaults fault {glibc:.1f} pages in per step"
    assert kept < 0.1 * glibc, (
        f"{kept:.2f} page faults per step with 256 MB kept, {glibc:.1f} without"
    )


def test_zero_leaves_the_allocator_alone():
    assert keep_freed_memory(0) is False

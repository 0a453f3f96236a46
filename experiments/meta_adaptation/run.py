"""Fast adaptation to held-out markets: a meta-trained (Reptile) initialisation against training from
scratch and against a multi-task-pretrained initialisation, each fine-tuned K updates (see README.md).

    .venv/bin/python experiments/meta_adaptation/run.py --seeds 0 1 2 3 4 --ks 0 10 100 --markets 4
        [--set agent.strategic.gae_lambda=0.0 ...] [--out experiments/meta_adaptation/outputs]

For each seed: meta-train the strategic agent (``python -m grandmodel.meta``, in-process); pretrain
the same learner on the same tasks with the same number of updates, one task after another
(multi-task); take a fresh initialisation (scratch). Then, for each held-out market (parameters
drawn from the same family with another seed) and each K, ``adapt_to_market`` fine-tunes K updates
on the market's training split and walks its test split. Results: outputs/results.json and a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from grandmodel.checkpoints import load_checkpoint, save_atomic
from grandmodel.config import load_config, typed
from grandmodel.config.meta import MarketFamilyConfig, MetaConfig
from grandmodel.env import MarketEnv
from grandmodel.evaluation.evaluator import MarketEvaluator
from grandmodel.meta.adaptation import adapt_to_market
from grandmodel.meta.family import MarketFamily, synthetic_overrides, task_parameters
from grandmodel.meta.inner import Rollouts, adapt
from grandmodel.meta.system import MetaSystem, run_meta

HERE = Path(__file__).resolve().parent
OUT = HERE / "outputs"
SIZES = [
    "experiment=smoke", "logger=csv", "data.episode_length=128", "env.n_envs=8",
    "meta.family.tasks=8", "meta.family.days=20", "meta.meta_batch=2", "meta.inner_updates=4",
    "meta.frames_per_update=256", "meta.log_every=5", "agent.strategic.epochs_per_update=4",
]  # fmt: skip
HELD_OUT_DAYS = 40


def initialisations(seed: int, iterations: int, extra: list[str]) -> dict[str, Path]:
    """Meta-trained, multi-task-pretrained and scratch initialisations, as meta checkpoints
    (``extra``: overrides of the meta-training config; the adaptations inherit its agent config)."""
    folder = OUT / f"seed{seed}"
    cfg = load_config([*SIZES, *extra, f"seed={seed}", f"meta.iterations={iterations}",
                       f"paths.outputs_dir={OUT}", f"paths.output_dir={folder}/meta"],
                      config_name="meta_train")  # fmt: skip
    run_meta(cfg)
    meta_ckpt = folder / "meta" / "checkpoints" / "last.ckpt"
    checkpoint = load_checkpoint(meta_ckpt)
    rc = typed(cfg.meta.family, MarketFamilyConfig)
    family = MarketFamily(cfg, rc, seed)
    torch.manual_seed(seed)
    system = MetaSystem(cfg, typed(cfg.meta, MetaConfig), family, seed)
    scratch = {k: v.clone() for k, v in system.learner.state_dict().items()}
    learner, meta = system.learner, cfg.meta
    for visit in range(iterations * meta.meta_batch):  # same tasks, same number of updates
        run_cfg, data = family.task(visit % len(family))
        env = MarketEnv(data, run_cfg, split="train", mode="train", seed=seed * 7919 + visit)
        adapt(learner, meta.role, dict(system.fixed), Rollouts(env, meta.frames_per_update),
              meta.inner_updates)  # fmt: skip
    out = {"meta": meta_ckpt}
    for name, state in (("multitask", learner.state_dict()), ("scratch", scratch)):
        path = folder / f"{name}.ckpt"
        save_atomic({"state_dict": {f"learner.{k}": v for k, v in state.items()},
                     "grandmodel": checkpoint["grandmodel"]}, path)  # fmt: skip
        out[name] = path
    return out


def held_out_markets(count: int) -> list[dict]:
    params = task_parameters(MarketFamilyConfig(tasks=count), seed=10_000)
    return [synthetic_overrides(p, HELD_OUT_DAYS) for p in params]


def test_sharpe(init: Path, market: dict, k: int, seed: int, tag: str) -> tuple[float, float]:
    cfg = load_config([f"run={init}", "data=synthetic", "logger=csv", f"seed={seed}",
                       f"adapt.steps={k}", "adapt.split=test", f"paths.outputs_dir={OUT}",
                       f"paths.output_dir={OUT}/adapt/{tag}"], config_name="adapt")  # fmt: skip
    cfg.data = OmegaConf.merge(
        cfg.data, {"synthetic": market, "episode_length": 128, "cache": False}
    )
    metrics = adapt_to_market(cfg, MarketEvaluator)["metrics"]
    return metrics["initial/test/sharpe"], metrics["test/sharpe"]


def main() -> None:
    global OUT
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--ks", type=int, nargs="+", default=[0, 10, 100])
    parser.add_argument("--markets", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument(
        "--set", nargs="*", default=[], help="overrides of the meta-training config"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="results and checkpoints folder")
    args = parser.parse_args()
    OUT = args.out
    torch.set_num_threads(1)
    markets = held_out_markets(args.markets)
    rows = []
    for seed in args.seeds:
        started = time.perf_counter()
        inits = initialisations(seed, args.iterations, args.set)
        print(f"seed {seed}: initialisations in {time.perf_counter() - started:.0f}s", flush=True)
        for m, market in enumerate(markets):
            for name, path in inits.items():
                for k in [k for k in args.ks if k > 0]:
                    before, after = test_sharpe(path, market, k, seed, f"s{seed}-m{m}-{name}-k{k}")
                    rows.append({"seed": seed, "market": m, "init": name, "k": k, "sharpe": after})
                    if k == min(x for x in args.ks if x > 0) and 0 in args.ks:
                        rows.append(
                            {"seed": seed, "market": m, "init": name, "k": 0, "sharpe": before}
                        )
                    print(rows[-1], flush=True)
        (OUT / "results.json").write_text(json.dumps(rows, indent=1))
    summarise(rows)


def summarise(rows: list[dict]) -> None:
    """Mean test Sharpe per (init, K) with a 95% bootstrap interval over seeds x markets."""
    rng = np.random.default_rng(0)
    print("| init | K | mean test Sharpe | 95% interval | n |\n|---|---:|---:|---|---:|")
    for init in ("meta", "multitask", "scratch"):
        for k in sorted({r["k"] for r in rows}):
            x = np.array([r["sharpe"] for r in rows if r["init"] == init and r["k"] == k])
            if x.size == 0:
                continue
            boot = rng.choice(x, (2000, x.size)).mean(axis=1)
            low, high = np.percentile(boot, [2.5, 97.5])
            print(f"| {init} | {k} | {x.mean():.2f} | [{low:.2f}, {high:.2f}] | {x.size} |")


if __name__ == "__main__":
    main()

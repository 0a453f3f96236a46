"""The error contract of every entry point, over a corpus of bad configs and requests.

Each case must exit with status 2 and print exactly one stderr line ``error: <key or file>: …``
naming what is wrong, and leave nothing behind (no run folder, no MLflow store, no cache). Cases that
fail at composition run in-process through the same wrapper the entry points use
(:func:`grandmodel.cli.run`); those that need the data, a checkpoint or Hydra's own start run as
subprocesses, in parallel.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import grandmodel
from grandmodel import cli
from grandmodel.errors import reported
from tests.conftest import ROOT, es_bars

# (entry point's config, command line, what the error line must name first, text it must hold)
COMPOSITION = [
    ("train", ["agent=nosuch"], "agent", "choices: dqn, marl, ppo, sac)"),
    ("train", ["+curriculum=level9"], "curriculum", "choices: auto, level0, level1"),
    ("train", ["agent.strategic.lr=abc"], "agent.strategic.lr", "'abc' is not a number"),
    ("train", ["seed=abc"], "seed", "'abc' is not an integer"),
    ("train", ["trainer.totl_frames=10"], "trainer.totl_frames", "did you mean total_frames"),
    ("train", ["+trainer.totl_frames=10"], "trainer.totl_frames", "did you mean total_frames"),
    ("train", ["nosuchkey=1"], "nosuchkey", "no such key"),
    ("train", ["seed"], "seed", "expected seed=<value>"),
    ("train", ["seed=[1"], "seed=[1", "cannot be read"),
    ("train", ["hydra/launcher=nosuch"], "hydra/launcher", "choices: basic"),
    ("train", ["hydra.job.chdir=abc"], "hydra.job.chdir", "expected true or false"),
    ("train", ["hydra.nosuch=1"], "hydra.nosuch", "no such key"),
    ("train", ["curriculum.start_level=2"], "curriculum.start_level", "+curriculum=<option>"),
    ("train", ["trainer.total_frames=-5"], "trainer.total_frames", "must be >= 1"),
    ("train", ["+seed=3"], "seed", "without '+'"),
    ("train", ["data.synthetic.generator=foo"], "data.synthetic.generator", "choices: monte_carlo"),
    ("train", ["agent=agent_schema"], "agent", "'agent_schema' is not an option"),
    ("train", ["debug=nan"], "debug", "quote a name that reads as a number"),
    ("train", ["seed=-1"], "seed", "must be >= 0"),
    ("train", ["seed=null"], "seed", "null is not allowed"),
    ("train", ["data.timeframes.base=7q"], "data.timeframes.base", "'7q'"),
    ("train", ["logger.kind=foo"], "logger.kind", "'foo'"),
    ("train", ["experiment=nosuch"], "experiment", "choices: smoke"),
    ("train", ["agent.strategic.shared_layers=abc"], "agent.strategic.shared_layers", "not a list"),
    ("train", ["data.splits.val=1.5"], "data.splits.val", "must be in (0, 1)"),
    ("train", ["data=csv"], "data.path", "expected the path"),
    ("train", ["data.start=notadate"], "data.start", "'notadate' is not a date"),
    ("train", ["data.start=2024-01-01", "data.end=2023-01-01"], "data.end", "must be after start"),
    ("train", ["data.timezone=Mars/Base"], "data.timezone", "IANA time zone"),
    ("train", ["data.regime_fit.states=1"], "data.regime_fit.states", "must be >= 2"),
    ("train", ["trainer.precision=8-bit"], "trainer.precision", "'8-bit'"),
    ("train", ["trainer.eval_split=holdout"], "trainer.eval_split", "'holdout'"),
    ("train", ["trainer.selection.metric=val/bogus"], "trainer.selection.metric", "not logged"),
    ("train", ["trainer.selection.min_trades=-1"], "trainer.selection.min_trades", "negative"),
    (
        "train",
        ["trainer.strategy=ddp", "trainer.collector=multi_sync"],
        "trainer.strategy",
        "collector",
    ),
    ("train", ["agent.tactical.gradient_steps=-0.5"], "agent.tactical.gradient_steps", ">= 0"),
    (
        "train",
        ["+curriculum=level2", "curriculum.start_level=9"],
        "curriculum.start_level",
        "[0, 3]",
    ),
    ("train", ["agent.learn=[foo]"], "agent.learn", "['foo']"),
    ("train", ["agent.phases.tactical=[0.6,0.5]"], "agent.phases.tactical", "start < end"),
    ("train", ["agent.phases.risk=[0.5]"], "agent.phases.risk", "[start, end]"),
    ("train", ["agent=ppo", "agent.phases.tactical=[0.5,1]"], "agent.phases", "do not learn"),
    (
        "train",
        [
            "agent.phases.tactical=[0.5,1]",
            "trainer.collector=multi_sync",
            "trainer.collector_workers=2",
        ],
        "agent.phases",
        "expected trainer.collector=single",
    ),
    ("train", ["--multirun", "seed=0,abc"], "seed", "'abc' is not an integer"),
    ("train", ["-m", "agent=ppo,nosuch"], "agent", "'nosuch' is not an option"),
    ("train", ["--cfg", "job", "trainer=nosuch"], "trainer", "choices: default"),
    ("train", ["--help", "agent=nosuch"], "agent", "choices: dqn"),
    ("prepare", ["data=nosuch"], "data", "choices: csv"),
    ("prepare", ["data.splits.train=abc"], "data.splits.train", "'abc' is not a number"),
    ("evaluate", [], "run", "expected run=<run folder | MLflow run id | checkpoint file>"),
    ("evaluate", ["run=x", "split=holdout"], "split", "'holdout'"),
    ("evaluate", ["run=x", "data=nosuch"], "data", "choices: csv"),
    ("evaluate", ["run=x", "episodes=-1"], "episodes", "must be >= 0"),
    ("evaluate", ["run=x", "data.path=a.csv"], "data.path", "expected data=<option> first"),
    ("backtest", ["run=x", "start=notadate"], "start", "'notadate' is not a date"),
    ("backtest", ["run=x", "end=2023-13-45"], "end", "'2023-13-45' is not a date"),
    ("backtest", ["run=x", "start=2024-02-01", "end=2024-01-01"], "end", "must be after start"),
    ("backtest", ["run=x", "initial_capital=-5"], "initial_capital", "must be > 0"),
    ("backtest", ["run=x", "walk_forward.folds=1"], "walk_forward.folds", "must be 0 or >= 2"),
    ("export", [], "run", "expected run=<run folder"),
    ("export", ["run=x", "export.opset=abc"], "export.opset", "'abc' is not an integer"),
    ("export", ["run=x", "export.alias=9bad"], "export.alias", "'9bad'"),
    ("pareto", ["metrics=[a]"], "metrics", "two or three metrics"),
    ("pareto", ["directions=[up,down]"], "directions", "max/min"),
    (
        "adapt",
        ["run=x", "data=synthetic", "faults.nan_at_batch=1"],
        "faults.nan_at_batch",
        "kill_at_batch",
    ),
    ("paper", [], "bundle", "expected bundle=<export folder"),
    ("paper", ["bundle=x", "feed=nosuch"], "feed", "choices: replay, tail)"),
    ("paper", ["bundle=x", "paper.latency_bars=abc"], "paper.latency_bars", "not an integer"),
]


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("error: "), line
    assert "\x1b[" not in line and "np.float" not in line and "Traceback" not in line, line
    return line.removeprefix("error: ")


def _left_behind(outputs: Path) -> list[Path]:
    return sorted(outputs.rglob("*"))


@pytest.mark.parametrize(("config", "argv", "key", "text"), COMPOSITION)
def test_bad_config_is_one_line_exit_2_before_hydra_runs(
    config: str, argv: list[str], key: str, text: str, outputs: Path, monkeypatch, capsys
) -> None:
    def hydra_main() -> None:
        raise AssertionError("the entry point's Hydra main ran despite a bad command line")

    monkeypatch.setattr(sys, "argv", ["prog", f"paths.outputs_dir={outputs}", *argv])
    with pytest.raises(SystemExit) as stopped:
        cli.run(hydra_main, config, f"grandmodel.{config}")
    assert stopped.value.code == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith(f"{key}: "), line
    assert text in line, line
    assert "_schema," not in line and "_schema)" not in line and "To append" not in line, line
    assert not _left_behind(outputs)


def test_corpus_has_at_least_forty_cases() -> None:
    assert len(COMPOSITION) + len(SUBPROCESS) + len(DATA) >= 40


class _Evil:
    def __reduce__(self):  # what a tampered checkpoint would run when unpickled
        return (os.system, ("echo tampered",))


def _run(module: str, outputs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", module, f"paths.outputs_dir={outputs}", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


# (module, command line with {tmp} for the test's own files, what the error names, text it holds)
SUBPROCESS = [
    ("grandmodel.train", ["agent=nosuch"], "agent", "choices: dqn, marl, ppo, sac)"),
    ("grandmodel.train", ["--multirun", "seed=0,abc"], "seed", "'abc' is not an integer"),
    ("grandmodel.backtest", ["run={tmp}/empty_run", "start=notadate"], "start", "not a date"),
    (
        "grandmodel.train",
        ["experiment=smoke", "+curriculum=level2"],
        "curriculum.levels.2.episode_length",
        "is longer than the train split",
    ),
    ("grandmodel.evaluate", ["run={tmp}/empty_run"], "run={tmp}/empty_run", "no checkpoint"),
    ("grandmodel.adapt", ["resume={tmp}/empty_run"], "resume={tmp}/empty_run", "does not exist"),
    (
        "grandmodel.train",
        ["experiment=smoke", "ckpt_path={tmp}/tampered.ckpt"],
        "{tmp}/tampered.ckpt",
        "never unpickled",
    ),
]


def test_requests_that_fail_after_start_keep_the_contract(tmp_path: Path) -> None:
    """Hydra's own start, the data, a checkpoint or a run folder: still one line, exit 2, nothing
    left; the data-dependent curriculum check fails before any training (seconds, not a minute)."""
    (tmp_path / "empty_run").mkdir()
    (tmp_path / "tampered.ckpt").write_bytes(pickle.dumps({"state_dict": _Evil()}, protocol=2))
    cases = [
        (module, [a.format(tmp=tmp_path) for a in args], key.format(tmp=tmp_path), text, i)
        for i, (module, args, key, text) in enumerate(SUBPROCESS)
    ]
    for i in range(len(cases)):
        (tmp_path / f"outputs{i}").mkdir()

    def one(
        case: tuple[str, list[str], str, str, int],
    ) -> tuple[subprocess.CompletedProcess[str], int]:
        module, args, _, _, i = case
        return _run(module, tmp_path / f"outputs{i}", *args), i

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict((i, r) for r, i in pool.map(one, cases))
    for module, args, key, text, i in cases:
        result = results[i]
        assert result.returncode == 2, (module, args, result.stderr[-2000:])
        line = _one_error_line(result.stderr)
        assert line.startswith(f"{key}") and text in line, (module, args, line)
        assert "weights_only" not in line and "two options" not in line, line
        assert "tampered" not in result.stdout  # the checkpoint's payload never ran
        assert not _left_behind(tmp_path / f"outputs{i}"), (module, args)


DATA = [
    (
        ["data=csv", "data.path={tmp}/nan.csv", "data.episode_length=64"],
        "{tmp}/nan.csv: line 12, column 'high'",
        ": nan is missing, NaN or infinite",
    ),
    (
        ["data=csv", "data.path={tmp}/missing.csv", "data.timeframes.base=1h",
         "data.timeframes.tactical=1h", "data.timeframes.strategic=4h"],
        "{tmp}/missing.csv",
        "put the 1h OHLCV bars there",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "key", "text"), DATA)
def test_bad_data_is_named_in_plain_words_before_anything_is_written(
    overrides: list[str], key: str, text: str, tmp_path: Path, outputs: Path, capsys
) -> None:
    from grandmodel.data.prepare import run as prepare

    frame = es_bars().reset_index()
    frame.loc[10, "high"] = float("nan")
    frame.to_csv(tmp_path / "nan.csv", index=False)
    overrides = [o.format(tmp=tmp_path) for o in overrides]
    cfg = grandmodel.load_config([*overrides, f"paths.outputs_dir={outputs}"], "prepare")
    with pytest.raises(SystemExit) as stopped, reported():
        prepare(cfg)
    assert stopped.value.code == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith(key.format(tmp=tmp_path)) and text in line, line
    assert not _left_behind(outputs)


def test_help_lists_real_choices_and_imports_nothing_heavy() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "grandmodel.train", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "agent: dqn, marl, ppo, sac\n" in result.stdout
    assert "curriculum: auto, level0, level1, level2, level3\n" in result.stdout
    assert "_schema" not in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    heavy = {"torch", "torchrl", "pytorch_lightning", "lightning", "mlflow", "scipy", "pandas"}
    assert not heavy & imported, sorted(heavy & imported)

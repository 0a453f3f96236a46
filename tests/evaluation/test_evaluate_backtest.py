"""``python -m grandmodel.evaluate`` and ``python -m grandmodel.backtest`` as a user runs them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

import grandmodel
from grandmodel.evaluation.commands import run_backtest, run_evaluation
from grandmodel.evaluation.comparison import (
    baseline,
    compare,
    market,
    model_config,
    trained_policy,
)
from grandmodel.evaluation.evaluator import TRAINING_KEYS, MarketEvaluator
from grandmodel.evaluation.runs import resolve_run
from grandmodel.evaluation.walk import RANGE, Walk, with_range
from grandmodel.train import train

MULTIPLIER = 50.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, str]:
    """A smoke training run: (its folder, the outputs folder holding mlflow.db, its MLflow run id)."""
    outputs = tmp_path_factory.mktemp("outputs")
    folder = outputs / "runs" / "smoke"
    cfg = grandmodel.load_config(
        ["experiment=smoke", f"paths.outputs_dir={outputs}", f"paths.output_dir={folder}"]
    )
    result = train(cfg)
    return folder, outputs, result["run_id"]


def _client(outputs: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{outputs}/mlflow.db")


def test_evaluate_writes_the_report_and_a_nested_mlflow_run(cli, trained) -> None:
    folder, outputs, run_id = trained
    result = cli(
        "grandmodel.evaluate", f"run={folder}", "split=test", extra=[f"paths.outputs_dir={outputs}"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for policy in ("trained", "buy_and_hold", "flat", "random", "ma_crossover", "oracle"):
        assert policy in result.stdout
    evaluation = next(p for p in (outputs / "runs").iterdir() if p.name.endswith("_evaluate"))
    for name in (
        "report.md",
        "report.html",
        "equity_drawdown.png",
        "positions.png",
        "actions.png",
        "rewards.png",
        "learning_curves.png",
        "trades.parquet",
        "decisions.csv",
    ):
        assert (evaluation / name).is_file() and (evaluation / name).stat().st_size > 0, name
    log = (evaluation / "evaluate.log").read_text()  # the progress, pass by pass, is in the log
    assert "preparing data=" in log and "walking the test split 1/" in log
    assert "without the risk agent" in log, "the counterfactual passes are counted too"
    report = (evaluation / "report.md").read_text()
    for section in (
        "Performance summary",
        "Risk analysis",
        "Trading performance",
        "Agent contributions",
        "Against baselines",
        "Honest statistics",
    ):
        assert section in report
    client = _client(outputs)
    children = client.search_runs(
        [client.get_run(run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
    )
    assert len(children) == 1 and children[0].data.tags["kind"] == "evaluation"
    artifacts = {a.path for a in client.list_artifacts(children[0].info.run_id)}
    assert {"report.md", "report.html", "equity_drawdown.png"} <= artifacts
    assert (
        "test/trained/sharpe" in children[0].data.metrics
        or "test/trained/total_return" in children[0].data.metrics
    )


def test_evaluate_finds_a_run_by_its_mlflow_id(cli, trained) -> None:
    _, outputs, run_id = trained
    result = cli(
        "grandmodel.evaluate",
        f"run={run_id}",
        "split=val",
        "counterfactual=false",
        extra=[f"paths.outputs_dir={outputs}"],
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("grandmodel.evaluate", ["run=0123456789abcdef0123456789abcdef"], "no such MLflow run"),
        (
            "grandmodel.evaluate",
            ["run=/nonexistent/best.ckpt"],
            "not a run folder, a checkpoint file or an MLflow run id",
        ),
        (
            "grandmodel.backtest",
            ["start=2031-01-01", "end=2031-02-01"],
            "the range holds no tradable bars; the data covers",
        ),
        (
            "grandmodel.evaluate",
            ["data=synthetic", "data.window.tactical=30"],
            "does not match the model's",
        ),
    ],
)
def test_bad_requests_fail_with_one_line_and_write_nothing(
    cli, trained, tmp_path: Path, module: str, args: list[str], message: str
) -> None:
    folder, outputs, _ = trained
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    run = [] if any(a.startswith("run=") for a in args) else [f"run={folder}"]
    result = cli(
        module,
        *run,
        *args,
        extra=[f"paths.outputs_dir={fresh}", f"logger.tracking_uri=sqlite:///{outputs}/mlflow.db"],
    )
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and message in lines[-1], lines[-1]
    assert "Traceback" not in result.stderr
    assert not any(p for p in fresh.rglob("*") if p.is_file() and p.suffix != ".db"), list(
        fresh.rglob("*")
    )


def test_backtest_uses_the_env_accounting_and_baselines_share_the_range(
    trained, tmp_path: Path
) -> None:
    folder, outputs, _ = trained
    run = resolve_run(str(folder))
    paths = grandmodel.load_config([f"paths.outputs_dir={outputs}"]).paths
    cfg = model_config(run, None, paths, capital=750_000.0)
    data = with_range(market(run, cfg), "2023-01-05", "2023-01-12")
    walk = Walk(cfg, data, RANGE, whole=True)
    _, policy = trained_policy(walk, run)
    outcomes = compare(walk, run, policy)
    times = outcomes["trained"].ledger.decisions["time"]
    assert times.iloc[0] >= pd.Timestamp("2023-01-05", tz="America/Chicago")
    assert times.iloc[-1] <= pd.Timestamp("2023-01-12", tz="America/Chicago")
    for outcome in outcomes.values():
        pd.testing.assert_series_equal(outcome.ledger.decisions["time"], times)
    # the backtest's equity is the env's own accounting: step a fresh env with the same policy
    env = grandmodel.build_env(
        walk.cfg, data, n_envs=1, split=RANGE, mode="eval"
    )  # one window: the range
    with torch.no_grad():
        rollout = env.rollout(
            len(times), policy, break_when_any_done=False, auto_reset=False, tensordict=env.reset()
        )
    final = float(rollout.get(("next", "info", "equity"))[0, -1, 0])
    assert final == outcomes["trained"].ledger.decisions["equity"].iloc[-1]
    # every closed trade of a full-entry baseline is one entry and one exit: PnL = price move - costs
    trades = outcomes["random"].ledger.trades
    assert len(trades) > 3
    side = np.where(trades["side"] == "long", 1.0, -1.0)
    gross = (trades["exit_price"] - trades["entry_price"]) * trades["contracts"] * MULTIPLIER * side
    np.testing.assert_allclose(trades["pnl"], gross - trades["costs"], atol=1e-6)


def test_backtest_cli_writes_tables_and_compares_baselines(cli, trained) -> None:
    folder, outputs, _ = trained
    result = cli(
        "grandmodel.backtest",
        f"run={folder}",
        "start=2023-01-04",
        "end=2023-01-13",
        "initial_capital=750000",
        extra=[f"paths.outputs_dir={outputs}"],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = next(p for p in (outputs / "runs").iterdir() if p.name.endswith("_backtest"))
    for name in ("trades", "equity", "decisions"):
        assert (run_dir / f"{name}.parquet").is_file() and (run_dir / f"{name}.csv").is_file()
    equity = pd.read_parquet(run_dir / "equity.parquet")
    assert abs(equity["equity"].iloc[0] - 750_000) < 50_000 and "position" in equity
    for policy in ("trained", "buy_and_hold", "flat", "random", "ma_crossover"):
        assert policy in result.stdout


def test_the_seed_fixes_the_random_baseline(trained, tmp_path: Path) -> None:
    folder = trained[0]

    def random_pnl(seed: int, name: str) -> float:
        cfg = grandmodel.load_config(
            [
                f"run={folder}",
                "start=2023-01-04",
                "end=2023-01-13",
                f"seed={seed}",
                "logger=csv",
                f"paths.outputs_dir={tmp_path}",
                f"paths.output_dir={tmp_path / name}",
            ],
            config_name="backtest",
        )
        torch.manual_seed(1234 + len(name))  # whatever the caller's RNG state
        return run_backtest(cfg)["metrics"]["random"]["net_pnl"]

    first = random_pnl(0, "a")
    assert random_pnl(0, "bb") == first
    assert random_pnl(1, "c") != first


def test_the_evaluation_pass_reports_what_training_would_pick(trained, tmp_path: Path) -> None:
    """The training evaluator (which picks checkpoints) and ``evaluate`` give the same numbers."""
    folder = trained[0]
    cfg = grandmodel.load_config(
        [
            f"run={folder}", "split=val", "counterfactual=false", "logger=csv",
            f"paths.outputs_dir={tmp_path}", f"paths.output_dir={tmp_path / 'evaluation'}",
        ],
        config_name="evaluate",
    )  # fmt: skip
    reported = run_evaluation(cfg)["metrics"]
    run = resolve_run(str(folder))
    model_cfg = model_config(run, None, cfg.paths)
    data = market(run, model_cfg)
    evaluator = MarketEvaluator(model_cfg, data, "val")
    policies = {
        "trained": trained_policy(evaluator.walk, run)[1],
        "flat": baseline(evaluator.walk, "flat", run),
    }
    for name, policy in policies.items():
        picked = evaluator(policy)
        np.testing.assert_equal(picked, {k: reported[name][k] for k in TRAINING_KEYS})
    assert reported["flat"]["sharpe"] == 0.0
    md = (tmp_path / "evaluation" / "report.md").read_text(encoding="utf-8")
    assert md.count(f"- **Sharpe ratio (annualised)**: {reported['trained']['sharpe']:,.2f}") == 2


def test_walk_forward_trains_each_fold_and_pools_out_of_sample(cli, trained) -> None:
    folder, outputs, _ = trained
    result = cli(
        "grandmodel.backtest", f"run={folder}", "walk_forward.folds=2", "walk_forward.total_frames=256",
        "data=synthetic", "data.synthetic.days=30", "data.cache=false", extra=[f"paths.outputs_dir={outputs}"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = next(
        p
        for p in (outputs / "runs").iterdir()
        if p.name.endswith("_backtest") and (p / "walk_forward.csv").exists()
    )
    folds = pd.read_csv(run_dir / "walk_forward.csv")
    assert list(folds["fold"]) == [0, 1]
    assert (pd.to_datetime(folds["trained_until"]) < pd.to_datetime(folds["test_from"])).all()
    assert (run_dir / "fold0" / "checkpoints").is_dir() and (
        run_dir / "fold1" / "checkpoints"
    ).is_dir()
    assert "out-of-sample windows pooled" in result.stdout


def test_a_run_saved_before_a_key_was_retired_still_evaluates(trained, tmp_path: Path) -> None:
    """Checkpoints written before ``agent.risk.epsilon_decay`` became ``exploration_fraction``
    store the old key; loading drops it, so the same policy walks to the same numbers."""
    folder, outputs, _ = trained
    best = next((folder / "checkpoints").glob("best-*.ckpt"))
    checkpoint = torch.load(best, map_location="cpu", weights_only=True)
    old = tmp_path / "old" / "checkpoints" / best.name
    old.parent.mkdir(parents=True)
    checkpoint["grandmodel"]["config"]["agent"]["risk"]["epsilon_decay"] = 0.995
    torch.save(checkpoint, old)
    scores = []
    for path in (best, old):
        cfg = grandmodel.load_config(
            [f"run={path}", "split=test", "counterfactual=false", "logger=csv",
             f"paths.outputs_dir={outputs}", f"paths.output_dir={tmp_path / path.parent.parent.name}"],
            config_name="evaluate",
        )  # fmt: skip
        scores.append(run_evaluation(cfg)["metrics"]["trained"]["sharpe"])
    assert scores[0] == scores[1]


def test_a_model_with_its_own_features_evaluates_on_a_new_market(tmp_path: Path) -> None:
    """``data=<another source>`` replaces where the bars come from, not what the model observes:
    the run's feature lists travel with it (here the opt-in momentum features)."""
    features = "data.features.strategic=[log_return,trend_regime,momentum_4,momentum_48]"
    folder = tmp_path / "runs" / "momentum"
    cfg = grandmodel.load_config(
        ["experiment=smoke", features, "agent=ppo", "logger=csv",
         f"paths.outputs_dir={tmp_path}", f"paths.output_dir={folder}"]
    )  # fmt: skip
    train(cfg)
    cfg = grandmodel.load_config(
        [f"run={folder}", "data=synthetic", "data.synthetic.days=12", "data.synthetic.seed=1001",
         "data.cache=false", "split=test", "counterfactual=false", "logger=csv",
         f"paths.outputs_dir={tmp_path}", f"paths.output_dir={tmp_path / 'fresh'}"],
        config_name="evaluate",
    )  # fmt: skip
    metrics = run_evaluation(cfg)["metrics"]
    assert np.isfinite(metrics["trained"]["sharpe"]) and "ma_crossover" in metrics
    report = (tmp_path / "fresh" / "report.md").read_text(encoding="utf-8")
    assert "synthetic" in report

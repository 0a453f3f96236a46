"""The MLflow UI as a person opens it: ``make mlflow-ui`` over a store with a training run and a
3-trial sweep, read in headless Chromium (README.md, "Comparing runs in the MLflow UI")."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT
from tests.ui.browser import Browser, find_chromium

SERVER_START_S = 240  # an MLflow server on a loaded machine takes seconds to tens of seconds
RENDER_S = 120
NO_CHROMIUM = "no Chromium on PATH (.ci/run installs Debian's chromium package)"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Outputs holding one smoke training run and a 3-trial Optuna sweep (parent and children)."""
    if find_chromium() is None:  # before the store's minute of training, not after it
        pytest.skip(NO_CHROMIUM)
    outputs = tmp_path_factory.mktemp("ui_store")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for extra in (
        [],
        ["--multirun", "hparams_search=strategic_optuna", "hydra.sweeper.n_trials=3"],
    ):
        args = [sys.executable, "-m", "grandmodel.train", "experiment=smoke", *extra]
        proc = subprocess.run(
            [*args, f"paths.outputs_dir={outputs}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
    return outputs


@pytest.fixture(scope="module")
def ui(store: Path) -> Iterator[str]:
    """``make mlflow-ui`` on a free port over the store; its base URL once it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # -o: serve with the environment as it is (never reinstall it from inside a test)
    command = [
        "make", "--no-print-directory", "-o", ".venv/.installed", "mlflow-ui",
        f"BIN={Path(sys.executable).parent}", f"STORE=sqlite:///{store}/mlflow.db",
    ]  # fmt: skip
    log = (store / "mlflow-ui.log").open("w")
    server = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, "PORT": str(port)},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            assert server.poll() is None, (store / "mlflow-ui.log").read_text()[-3000:]
            try:
                if requests.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, (
                f"make mlflow-ui did not answer in {SERVER_START_S} s"
            )
            time.sleep(0.5)
        yield base
    finally:
        _stop_group(server)
        log.close()


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to make and everything it started (uvicorn, MLflow's job consumers), then SIGKILL
    to whatever of the group is still there after a generous grace period."""
    os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    binary = find_chromium()
    if binary is None:
        pytest.skip(NO_CHROMIUM)
    page = Browser(binary, tmp_path / "profile")
    try:
        yield page
    finally:
        page.close()


def _rows(page: Browser) -> list[dict[str, str]]:
    """The runs table's rows top to bottom: run name and each cell's text by column id (AG Grid
    draws a row in several containers, so cells are gathered by row index)."""
    script = """(() => {
      const rows = {};
      for (const cell of document.querySelectorAll('[role=row][row-index] [role=gridcell][col-id]')) {
        const index = Number(cell.closest('[role=row]').getAttribute('row-index'));
        (rows[index] = rows[index] || {})[cell.getAttribute('col-id')] = cell.innerText.trim();
      }
      return Object.keys(rows).map(Number).sort((a, b) => a - b).map(i => rows[i]);
    })()"""
    return [
        {"name": row.get("attributes.`Run Name`", "").split("\n")[-1], **row}
        for row in page.evaluate(script)
    ]


def test_the_experiment_opens_on_training_runs_sweeps_and_the_compare_view(
    store: Path, ui: str, browser: Browser, tmp_path: Path
) -> None:
    client = MlflowClient(f"sqlite:///{store}/mlflow.db")
    experiment = client.get_experiment_by_name("grandmodel").experiment_id
    (run_folder,) = (store / "runs").iterdir()
    (sweep_folder,) = (store / "multiruns").iterdir()
    training = run_folder.name
    assert training.startswith("smoke-marl-synthetic-s0-"), "a run is named by what it trained"
    (run,) = client.search_runs([experiment], f"attributes.run_name = '{training}'")
    sweep, trials = f"sweep-{sweep_folder.name}", ["trial-0", "trial-1", "trial-2"]

    # the experiment's runs table in the model-training view: both top-level runs, the sweep's
    # trials folded under their parent until it is expanded, then right below it
    browser.goto(f"{ui}/#/experiments/{experiment}/runs?workflowType=machine_learning")
    names = "[...document.querySelectorAll('[role=row] a')].map(a => a.innerText)"
    browser.wait_for(
        f"{names}.includes({json.dumps(training)}) && {names}.includes({json.dumps(sweep)})",
        RENDER_S, "the training run and the sweep in the runs table",
    )  # fmt: skip
    assert "Model training" in browser.evaluate("document.body.innerText")
    assert not set(trials) & {row["name"] for row in _rows(browser)}
    browser.evaluate(
        f"[...document.querySelectorAll('[role=row]')].find(r => [...r.querySelectorAll('a')]"
        f".some(a => a.innerText === {json.dumps(sweep)})).querySelector('button').click()"
    )
    browser.wait_for(
        f"{json.dumps(trials)}.every(t => {names}.includes(t))", RENDER_S, "the sweep's trials"
    )
    order = [row["name"] for row in _rows(browser)]
    parent = order.index(sweep)
    assert sorted(order[parent + 1 : parent + 4]) == trials, order
    assert training in order

    # the compare view every experiment carries: headline columns, best final val Sharpe first
    browser.goto(
        f"{ui}/#/experiments/{experiment}/runs?viewStateShareKey=compare&workflowType=machine_learning"
    )
    column = "metrics.`final/val/sharpe`"
    browser.wait_for(
        f"document.querySelector('[role=gridcell][col-id=\"{column}\"]') && "
        f"{names}.includes({json.dumps(training)})",
        RENDER_S, "the final/val/sharpe column",
    )  # fmt: skip
    rows = {row["name"]: row for row in _rows(browser)}
    value = run.data.metrics["final/val/sharpe"]
    assert rows[training][column] == browser.evaluate(f"String({value!r})")
    assert set(trials) <= set(rows) and rows[sweep][column] == "-"
    shown = [float(row[column]) for row in _rows(browser) if row[column] != "-"]
    assert len(shown) == 4 and shown == sorted(shown, reverse=True), shown
    assert "final/val/sharpe" in browser.evaluate("document.body.innerText")
    shot = browser.screenshot(tmp_path / "mlflow_ui_compare.png")
    assert shot.stat().st_size > 10_000

    # the run's page: its description holds the headline numbers
    browser.goto(f"{ui}/#/experiments/{experiment}/runs/{run.info.run_id}")
    browser.wait_for(
        "document.body.innerText.includes('max drawdown')", RENDER_S, "the run's description"
    )
    assert "agent marl" in browser.evaluate("document.body.innerText").replace("`", "")

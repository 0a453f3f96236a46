# GrandModel: `make train` runs the main job, `make test` the test suite. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install train train-staged test lint mlflow-ui clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-installs only when pyproject.toml or constraints.txt changed (quick no-op otherwise).
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt "torch==2.13.*"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,bench]"
	touch $(STAMP)

install: $(STAMP)

# The settings measured best in experiments/learning_quality (README, "last" and "fitted regime"):
# realized volatility and the fitted HMM filter's regime_edge and regime_vol in the strategic
# observation, its last bar only, gamma 0.9, lambda 0, PPO minibatches of 256, costs in the
# reward and no drawdown term.
DEFAULT_STRATEGIC = log_return,range_pct,body_pct,rsi_14,macd_pct,macd_signal_pct,atr_pct,bb_position,bb_width
DEFAULT_STRATEGIC := $(DEFAULT_STRATEGIC),volume_ratio,trend_regime,vol_regime,market_session
TUNED_FEATURES = $(DEFAULT_STRATEGIC),realized_vol_1,realized_vol_4,realized_vol_12,realized_vol_24
TUNED_FEATURES := $(TUNED_FEATURES),regime_edge,regime_vol
TUNED_SETTINGS = agent.strategic.encoder=last agent.strategic.gae_lambda=0 agent.strategic.gamma=0.9 \
	agent.strategic.batch_size=256 reward.transaction_cost=0.0002 reward.max_drawdown_penalty=0 \
	data.features.strategic=[$(TUNED_FEATURES)]

# The main job (README.md): one agent=marl run whose three roles learn in turn (agent.phases): the
# strategic PPO over the first half, then the tactical SAC, then the risk DQN, each acting greedily once its
# phase ends; the kept checkpoint is the best on validation over all phases (experiments/learning_quality,
# "learning phases"). ARGS go last, so they win (e.g. ARGS="seed=1").
TRAIN_SETTINGS = $(TUNED_SETTINGS) agent.phases.strategic=[0,0.5] agent.phases.tactical=[0.5,0.75] \
	agent.phases.risk=[0.75,1] trainer.total_frames=786432
train: install
	$(BIN)/python -m grandmodel.train $(TRAIN_SETTINGS) $(ARGS)

# Staged training (README.md, "Everyday commands"): the same as make train in two runs, the strategic PPO,
# then the tactical SAC with it frozen at its best checkpoint.
STAGED := outputs/staged/$(shell date +%Y-%m-%d_%H-%M-%S)
STAGED_SETTINGS = $(TUNED_SETTINGS) trainer.total_frames=393216
train-staged: install
	$(BIN)/python -m grandmodel.train agent=ppo $(STAGED_SETTINGS) hydra.run.dir=$(STAGED)/strategic $(ARGS)
	$(BIN)/python -m grandmodel.train agent=sac $(STAGED_SETTINGS) hydra.run.dir=$(STAGED)/tactical \
		agent.frozen.strategic=$(STAGED)/strategic $(ARGS)

# Tests run in PYTEST_WORKERS processes side by side (pytest-xdist; a file's tests, or a folder's that
# share a fixture, stay in one process: tests/conftest.py); PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: install
	$(BIN)/pre-commit run --all-files

# The MLflow UI over STORE (default: the store training writes) on PORT (default 5000). MLflow 3.17
# opens experiments in its GenAI view unless the URL (or the sidebar switch) asks for machine learning;
# every experiment carries the `compare` runs-table view (README.md, "Comparing runs in the MLflow UI").
STORE ?= sqlite:///outputs/mlflow.db
mlflow-ui: install
	@echo "Compare runs: http://127.0.0.1:$${PORT:-5000}/#/experiments/<id>/runs?viewStateShareKey=compare&workflowType=machine_learning"
	@echo "(<id>: 1 for grandmodel in a fresh store; all experiments: http://127.0.0.1:$${PORT:-5000}/#/experiments?workflowType=machine_learning)"
	$(BIN)/mlflow ui --backend-store-uri $(STORE) --host 127.0.0.1 --port $${PORT:-5000} --workers 1

clean:
	rm -rf outputs/runs outputs/multiruns outputs/cache .pytest_cache .ruff_cache

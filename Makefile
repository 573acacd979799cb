# Everything installs itself into .venv/ (Python) and .tools/ (binaries); nothing is needed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt test-requirements.txt | sha256sum | cut -c1-12)
export PYTHONPATH := $(CURDIR)

.PHONY: setup test lint sanity unit integration demo sandbox-up sandbox-down sandbox-status sandbox-reset clean

setup: $(STAMP)

$(STAMP): requirements.txt test-requirements.txt
	@echo "==> setting up $(VENV) (log: $(VENV)/install.log)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --upgrade pip >$(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	@$(BIN)/pip install -r requirements.txt -r test-requirements.txt >>$(VENV)/install.log 2>&1 \
		|| (tail -50 $(VENV)/install.log; exit 1)
	@rm -f $(VENV)/.installed-* && touch $@

## test: everything CI runs: lint, sanity, unit and integration tests
test: lint sanity unit integration

lint: setup
	@echo "==> ruff"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@echo "==> mypy"
	@$(BIN)/mypy tests/sandbox $$(find plugins/module_utils -name '*.py' 2>/dev/null)
	@echo "==> yamllint"
	@$(BIN)/yamllint -s .
	@echo "==> ansible-lint (production profile)"
	@$(BIN)/ansible-lint
	@echo "==> changelog fragments"
	@$(BIN)/antsibull-changelog lint

sanity: setup
	@echo "==> ansible-test sanity"
	@scripts/sanity.sh

unit: setup
	@echo "==> unit tests"
	@$(BIN)/pytest -q tests/unit

integration: setup
	@echo "==> integration tests (against the sandbox)"
	@$(BIN)/pytest -q tests/integration

## demo: the main job: start the sandbox with two AKS clusters and walk a workload through the token chain
demo: setup
	@$(BIN)/python -m tests.sandbox up --settings '{"throttling": true}'
	@$(BIN)/python -m tests.sandbox.demo

sandbox-up: setup
	@$(BIN)/python -m tests.sandbox up

sandbox-down: setup
	@$(BIN)/python -m tests.sandbox down

sandbox-status: setup
	@$(BIN)/python -m tests.sandbox status

sandbox-reset: setup
	@$(BIN)/python -m tests.sandbox reset

clean: sandbox-down
	rm -rf .build .sandbox .pytest_cache .mypy_cache .ruff_cache

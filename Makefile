# Every set-up step lives here: a fresh machine needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DB ?= demo.db

EXT := vscode-extension
EXT_STAMP := $(EXT)/node_modules/.installed
DAP_E2E := tests/e2e/dap
DAP_STAMP := $(DAP_E2E)/node_modules/.installed

.PHONY: demo test lint typecheck layers pytest dap-e2e extension e2e bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	$(BIN)/opreplay demo -d $(DEMO_DB)
	$(BIN)/opreplay sessions -d $(DEMO_DB)
	$(BIN)/opreplay info latest -d $(DEMO_DB)
	$(BIN)/opreplay analyze latest -d $(DEMO_DB)

lint: $(STAMP)
	$(BIN)/ruff check core adapter examples tests benchmarks
	$(BIN)/ruff format --check core adapter examples tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	bash scripts/postgres-setup.sh
	$(BIN)/python -m pytest -q

$(DAP_STAMP): $(DAP_E2E)/package.json $(DAP_E2E)/package-lock.json
	cd $(DAP_E2E) && npm ci --no-audit --no-fund
	touch $@

# Microsoft's DebugClient drives opreplay-dap over stdio against the demo recording.
dap-e2e: $(STAMP) $(DAP_STAMP)
	cd $(DAP_E2E) && OPREPLAY_PYTHON=$(CURDIR)/$(BIN)/python npx mocha

$(EXT_STAMP): $(EXT)/package.json $(EXT)/package-lock.json
	cd $(EXT) && npm ci --no-audit --no-fund
	touch $@

# The extension's unit tests, then the installable .vsix.
extension: $(EXT_STAMP)
	cd $(EXT) && npm test && npm run package

# A real VS Code (code-server in headless Chromium); heavy installs are cached in ~/.cache/opreplay-e2e.
e2e: extension $(STAMP)
	cd $(EXT) && OPREPLAY_E2E_PYTHON=$(CURDIR)/$(BIN)/python node test/e2e/run.js

test: lint typecheck layers pytest dap-e2e extension e2e

bench: $(STAMP)
	$(BIN)/python benchmarks/record_bench.py
	$(BIN)/python benchmarks/replay_bench.py
	$(BIN)/python benchmarks/dap_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
	rm -rf $(EXT)/node_modules $(EXT)/dist $(EXT)/out $(EXT)/*.vsix $(EXT)/test-artifacts $(DAP_E2E)/node_modules

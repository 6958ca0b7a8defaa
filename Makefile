# fjmcp: `make run` starts the demo broker, `make test` runs the whole suite.
# Both create .venv and install pinned versions (constraints.txt) on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint unit stress conformance bench clean e2e-deps chromium

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "fjmcp needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]' --config-settings editable_mode=compat
	# twistd finds plugins by scanning sys.path; regenerate the dropin cache now.
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; import twisted.plugins; list(getPlugins(IPlugin, twisted.plugins))"
	touch $@

install: $(STAMP)

# The demo: the broker on http://127.0.0.1:8080 with a stand-in Forgejo and
# the demo child; state lives under ./var/.
run: $(STAMP)
	exec $(BIN)/fjmcp demo

lint: $(STAMP)
	$(BIN)/ruff check fjmcp twisted tests
	$(BIN)/ruff format --check fjmcp twisted tests
	$(BIN)/mypy

# End-to-end clients (tests/e2e): the official MCP Python SDK in its own venv
# (its dependency tree stays out of .venv), the TypeScript SDK and playwright-core
# from the committed package-lock.json, and Debian's chromium (apt, as root only;
# never a browser download; the browser tests skip saying why where it is missing).
SDK_VENV  := .venv-sdk
SDK_STAMP := $(SDK_VENV)/.installed
NPM_STAMP := tests/e2e/node_modules/.installed

$(SDK_STAMP): tests/e2e/requirements-sdk.lock.txt
	test -x $(SDK_VENV)/bin/python || $(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install -q --disable-pip-version-check -r tests/e2e/requirements-sdk.lock.txt
	touch $@

$(NPM_STAMP): tests/e2e/package.json tests/e2e/package-lock.json
	cd tests/e2e && npm ci --no-audit --no-fund
	touch $@

chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } || \
		echo "chromium could not be installed: the browser tests will skip"; \
	else echo "chromium is missing and this is not root: the browser tests will skip"; fi

e2e-deps: $(SDK_STAMP) $(NPM_STAMP) chromium

# pytest exits 5 when it collected nothing; that is not a failure of the suite.
test: $(STAMP) lint e2e-deps
	@status=0; FJMCP_E2E_REQUIRED=1 $(BIN)/pytest -q -m "not stress" || status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests"; status=0; fi; \
	exit $$status

stress: $(STAMP)
	@status=0; $(BIN)/pytest -q -m stress || status=$$?; \
	if [ $$status -eq 5 ]; then echo "no stress tests"; status=0; fi; \
	exit $$status

clean:
	rm -rf $(VENV) $(SDK_VENV) tests/e2e/node_modules var .pytest_cache .mypy_cache .hypothesis

# Benchmark and conformance harness (../shared/bench, read-only): it installs
# into .bench-home (once; again when its pinned manifests change) and writes
# raw results to .bench-out. bench/prepare.sh makes the state the benchmark's
# brokers share (.bench-state). See docs/benchmarks.md.
BENCH_DIR  ?= ../shared/bench
BENCH_ENV  := BENCH_HOME=$(CURDIR)/.bench-home BENCH_OUT=$(CURDIR)/.bench-out
BENCH_STAMP := .bench-home/.installed
BENCH_ARGS ?= --targets fjmcp,supergateway,mcp-proxy-py --children echo --scenarios a,b,c,d --reps 1

$(BENCH_STAMP): $(BENCH_DIR)/requirements.txt $(BENCH_DIR)/package-lock.json
	$(BENCH_ENV) $(BENCH_DIR)/setup.sh
	touch $@

conformance: $(STAMP) $(BENCH_STAMP)
	bench/prepare.sh
	$(BENCH_ENV) $(BENCH_DIR)/run conformance_run.py --extra-config bench/fjmcp.toml \
		--target fjmcp --enable --child conformance --suite all

bench: $(STAMP) $(BENCH_STAMP)
	bench/prepare.sh
	$(BENCH_ENV) $(BENCH_DIR)/run bench.py --extra-config bench/fjmcp.toml --enable fjmcp $(BENCH_ARGS)

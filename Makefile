# fjmcp: `make run` starts the demo broker, `make test` runs the whole suite.
# Both create .venv and install pinned versions (constraints.txt) on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint unit stress conformance bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]' --config-settings editable_mode=compat
	# twistd finds plugins by scanning sys.path; regenerate the dropin cache now.
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; import twisted.plugins; list(getPlugins(IPlugin, twisted.plugins))"
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/fjmcp demo

lint: $(STAMP)
	$(BIN)/ruff check fjmcp twisted tests
	$(BIN)/ruff format --check fjmcp twisted tests
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/pytest -q -m "not stress"

stress: $(STAMP)
	$(BIN)/pytest -q -m stress

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .hypothesis

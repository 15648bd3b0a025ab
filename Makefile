# sqlsluice: two commands.  `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
SLUICE := $(VENV)/bin/sluice
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test install lint typecheck pytest system-deps clean bench-proxy bench-verify bench-tpcds

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# PostgreSQL server binaries (tests start throwaway clusters) and Chromium (the HTML
# report test renders the page headless).  Installed only when missing.
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && ! command -v postgres >/dev/null 2>&1; then \
		echo "installing PostgreSQL server binaries"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql postgresql-contrib; \
	fi
	@if ! command -v chromium >/dev/null 2>&1; then \
		echo "installing chromium for the report rendering test"; \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) || echo "chromium not installed"; \
	fi

demo: $(STAMP)
	$(SLUICE) demo

lint: $(STAMP)
	$(VENV)/bin/ruff check sqlsluice tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy sqlsluice

pytest: $(STAMP) system-deps
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

test: lint typecheck pytest

bench-proxy: $(STAMP)
	$(SLUICE) bench proxy

bench-verify: $(STAMP)
	$(SLUICE) bench verify

clean:
	rm -rf $(VENV) .sluice .pytest_cache .mypy_cache .ruff_cache *.egg-info

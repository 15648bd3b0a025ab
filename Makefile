# sqlsluice: two commands.  `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
SLUICE := $(VENV)/bin/sluice
STAMP  := $(VENV)/.installed
# two workers (pytest-xdist), each module on one worker (its module fixtures started once):
# the suite is mostly one core of Python, and CI has two
PYTEST_ARGS ?= -n 2 --dist loadscope

.PHONY: demo test install lint typecheck pytest system-deps system-deps-postgres system-deps-chromium system-deps-tmux system-deps-pgjdbc system-deps-pgbouncer clean bench-proxy bench-pool bench-verify bench-tpcds

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# System packages, each installed only when missing and without recommended packages:
# the PostgreSQL server binaries (tests start throwaway clusters) and Chromium (only
# tests/bench/test_report.py needs it: it renders the HTML report headless).
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
system-deps: system-deps-postgres system-deps-chromium system-deps-tmux system-deps-pgjdbc system-deps-pgbouncer

system-deps-postgres:
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && ! command -v postgres >/dev/null 2>&1; then \
		echo "installing PostgreSQL server binaries (--no-install-recommends)"; \
		apt-get update -q && $(APT_INSTALL) postgresql postgresql-contrib; \
	fi

system-deps-chromium:
	@if ! command -v chromium >/dev/null 2>&1 && ! [ -x /usr/bin/chromium ]; then \
		echo "installing chromium for tests/bench/test_report.py (--no-install-recommends)"; \
		(apt-get update -q && $(APT_INSTALL) chromium) || echo "chromium not installed"; \
	fi

system-deps-tmux:
	@if ! command -v tmux >/dev/null 2>&1; then \
		echo "installing tmux for tests/middleware/test_psql_terminal.py (--no-install-recommends)"; \
		apt-get update -q && $(APT_INSTALL) tmux; \
	fi

# pgjdbc (Debian's libpostgresql-jdbc-java) for the JDBC session tests, where Java is installed
system-deps-pgjdbc:
	@if command -v java >/dev/null 2>&1 && ! ls /usr/share/java/postgresql*.jar >/dev/null 2>&1; then \
		echo "installing pgjdbc for tests/middleware/test_pg_sessions.py (--no-install-recommends)"; \
		(apt-get update -q && $(APT_INSTALL) libpostgresql-jdbc-java) || echo "pgjdbc not installed"; \
	fi

# PgBouncer (Debian's pgbouncer) for `sluice bench pool`, the transaction-pooling comparison
system-deps-pgbouncer:
	@if ! command -v pgbouncer >/dev/null 2>&1 && ! [ -x /usr/sbin/pgbouncer ]; then \
		echo "installing pgbouncer for sluice bench pool (--no-install-recommends)"; \
		(apt-get update -q && $(APT_INSTALL) pgbouncer) || echo "pgbouncer not installed"; \
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

bench-pool: $(STAMP) system-deps-pgbouncer
	$(SLUICE) bench pool

bench-verify: $(STAMP)
	$(SLUICE) bench verify

clean:
	rm -rf $(VENV) .sluice .pytest_cache .mypy_cache .ruff_cache *.egg-info

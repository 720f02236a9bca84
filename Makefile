# Two commands set up everything on a fresh machine with Python 3.11:
#   make run   install, migrate the embedded SQLite database, seed demo data, serve on
#              HOST:PORT (127.0.0.1:5000)
#   make test  install, run the whole suite (add TEST_DATABASE_URL for the PostgreSQL runs)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
export FLASK_APP := app

.PHONY: install run test lint migrate seed clean bench-audit bench-listings bench-credit \
	bench-matching bench-orders bench-settlement bench-read bench-statements bench soak fuzz \
	bench-tools bench-upload bench-introspection bench-spread bench-merge bench-proofs

$(BIN)/python:
	@echo "Creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml requirements.lock
	@echo "Installing the dependencies into $(VENV) (about a minute)"
	@$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

migrate: install
	@$(BIN)/flask db upgrade $(MIGRATE_ARGS)

seed: migrate
	@$(BIN)/flask seed-demo

# make run keeps to what a newcomer needs: the demo keys and where the API answers (no line
# per migration; the server logs one line per request).
run: MIGRATE_ARGS := -x quiet=true
run: seed
	@echo
	@echo "Serving http://$(HOST):$(PORT)/ (API explorer /docs, contract /openapi.json) until"\
		"Ctrl+C; make run HOST=... PORT=... moves it."
	@SCHEDULER_IN_WEB=true $(BIN)/flask run --host $(HOST) --port $(PORT)

# Without TEST_DATABASE_URL, the PostgreSQL runs join by themselves when a local server lets
# the postgres user in: its database dx_test is created if missing. A TEST_DATABASE_URL given
# is used as it is, and no local server is asked or touched: make expands $(shell) even in
# `make -n`, so local_postgres is only expanded when TEST_DATABASE_URL is empty.
LOCAL_TEST_DATABASE := postgresql://postgres@127.0.0.1:5432/dx_test
local_postgres = $(shell psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1 \
	&& { createdb -h 127.0.0.1 -U postgres dx_test 2>/dev/null; echo $(LOCAL_TEST_DATABASE); })
# The shell reads a given URL from the environment, so the command line shown never holds it.
test_database = $${TEST_DATABASE_URL:-$(if $(TEST_DATABASE_URL),,$(local_postgres))}

test: install
	TEST_DATABASE_URL="$(test_database)" $(BIN)/pytest

# Schema fuzzing at depth: schemathesis over every operation of /openapi.json as each role,
# FUZZ_EXAMPLES generated cases per operation plus its coverage phase (boundary values,
# missing fields, unexpected methods), on SQLite and (as `make test`) PostgreSQL. `make test`
# runs a small fixed-seed sample of the same module.
FUZZ_EXAMPLES ?= 100
fuzz: install
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_COVERAGE=1 \
		TEST_DATABASE_URL="$(test_database)" $(BIN)/pytest tests/test_fuzz.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache .mypy_cache .import_linter_cache .grimp_cache

# gunicorn's port in bench-read, bench-orders and bench: another if a server already holds it.
BENCH_PORT ?= 8642

bench-audit: install
	$(BIN)/python -m benchmarks.audit_chain

# 100,000 listings on a scratch SQLite file, or on the (scratch!) PostgreSQL database named by
# BENCH_DATABASE_URL: its schema is dropped and rebuilt.
bench-listings: install
	$(BIN)/python -m benchmarks.listings_search $${BENCH_DATABASE_URL:+--database-url "$$BENCH_DATABASE_URL"}

bench-credit: install
	$(BIN)/python -m benchmarks.credit_blacklist $${BENCH_DATABASE_URL:+--database-url "$$BENCH_DATABASE_URL"}

bench-matching: install
	$(BIN)/python -m benchmarks.matching $${BENCH_DATABASE_URL:+--database-url "$$BENCH_DATABASE_URL"}

# The load generators (BENCH_TOOLS) of the HTTP benchmarks, checked before anything is
# installed or built. Debian: apt-get install wrk; pgbench comes with PostgreSQL.
bench-tools:
	@for tool in $(BENCH_TOOLS); do command -v $$tool >/dev/null || { \
		echo "make $(MAKECMDGOALS) needs $$tool, which is not installed" \
			"(Debian: apt-get install wrk; pgbench comes with postgresql)" >&2; exit 1; }; done

# Needs PostgreSQL (BENCH_DATABASE_URL, a scratch database), wrk and pgbench.
bench-orders: BENCH_TOOLS := wrk pgbench
bench-orders: bench-tools install
	$(BIN)/python -m benchmarks.order_placement --port $(BENCH_PORT) --database-url "$${BENCH_DATABASE_URL:?set BENCH_DATABASE_URL to a scratch PostgreSQL database}"

# The recorded POST /orders replayed by pgbench over 1,000 listings ÷ pgbench -N, at 8 and 32
# clients, with statements and WAL bytes per order and the merge delay under that load.
# Needs PostgreSQL (BENCH_DATABASE_URL, a scratch database) and pgbench.
bench-spread: BENCH_TOOLS := pgbench
bench-spread: bench-tools install
	$(BIN)/python -m benchmarks.order_spread --database-url "$${BENCH_DATABASE_URL:?set BENCH_DATABASE_URL to a scratch PostgreSQL database}"

# The evidence log's merge delay (commit to integration) at a sustained 1,000 entries/s, the
# scheduler's sealer running. Needs PostgreSQL (BENCH_DATABASE_URL, scratch) and pgbench.
bench-merge: BENCH_TOOLS := pgbench
bench-merge: bench-tools install
	$(BIN)/python -m benchmarks.merge_delay --database-url "$${BENCH_DATABASE_URL:?set BENCH_DATABASE_URL to a scratch PostgreSQL database}"

# Inclusion proofs and POST /evidence/verify over HTTP on a log of LOG_LEAVES (10,000,000)
# leaves bulk-built on the scratch database BENCH_DATABASE_URL, and full verification's
# leaves per second (about 20 minutes and 5 GB at the full size).
LOG_LEAVES ?= 10000000
bench-proofs: install
	$(BIN)/python -m benchmarks.log_proofs --port $(BENCH_PORT) --leaves $(LOG_LEAVES) --database-url "$${BENCH_DATABASE_URL:?set BENCH_DATABASE_URL to a scratch PostgreSQL database}"

bench-settlement: install
	$(BIN)/python -m benchmarks.settlement $${BENCH_DATABASE_URL:+--database-url "$$BENCH_DATABASE_URL"}

# Needs PostgreSQL (BENCH_DATABASE_URL, a scratch database) and wrk.
bench-read: BENCH_TOOLS := wrk
bench-read: bench-tools install
	$(BIN)/python -m benchmarks.listing_read --port $(BENCH_PORT) --database-url "$${BENCH_DATABASE_URL:?set BENCH_DATABASE_URL to a scratch PostgreSQL database}"

bench-statements: install
	$(BIN)/python -m benchmarks.statement_counts $${BENCH_DATABASE_URL:+--database-url "$$BENCH_DATABASE_URL"}

# A file of UPLOAD_MB MiB (1024) uploaded through gunicorn as an artifact, against cp of the
# same file, and the service's peak memory; on a scratch SQLite file, or on the (scratch!)
# database BENCH_DATABASE_URL. Needs that much free disk twice over in the temporary directory.
UPLOAD_MB ?= 1024
bench-upload: install
	$(BIN)/python -m benchmarks.artifact_upload --size-mb $(UPLOAD_MB) --port $(BENCH_PORT) $${BENCH_DATABASE_URL:+--database-url "$$BENCH_DATABASE_URL"}

# POST /oauth/introspect p50/p99 in process among 100,000 tokens (target p99 ≤ 5 ms).
bench-introspection: install
	$(BIN)/python -m benchmarks.introspection $${BENCH_DATABASE_URL:+--database-url "$$BENCH_DATABASE_URL"}

# Every benchmark in one run on the scratch PostgreSQL database BENCH_DATABASE_URL (wrk, pgbench),
# printed as one table: each figure, measured beside its baseline, against its target.
# BENCH_QUICK=1 scales everything down to check the table end to end in a few minutes.
bench: BENCH_TOOLS := wrk pgbench
bench: bench-tools install
	$(BIN)/python -m benchmarks.suite --port $(BENCH_PORT) $${BENCH_QUICK:+--quick} --database-url "$${BENCH_DATABASE_URL:?set BENCH_DATABASE_URL to a scratch PostgreSQL database}"

# Many workers on one PostgreSQL: two gunicorn hosts and the scheduler under a mixed trade load
# for SOAK_SECONDS (default 120), a worker killed with SIGKILL part-way, then every invariant
# checked (exit status 1 on a violation). SOAK_DATABASE_URL (or BENCH_DATABASE_URL) names a
# scratch database: its schema is dropped and rebuilt.
soak: install
	$(BIN)/python -m benchmarks.soak --seconds $${SOAK_SECONDS:-120} --database-url "$${SOAK_DATABASE_URL:-$${BENCH_DATABASE_URL:?set SOAK_DATABASE_URL or BENCH_DATABASE_URL to a scratch PostgreSQL database}}"

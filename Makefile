# Two commands on a fresh clone: `make run` and `make test`. Both bootstrap .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUF := node_modules/.bin/buf

.PHONY: run test test-pg proto check-gen lint lint-proto breaking baseline typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(BUF): package.json
	npm install --no-audit --no-fund --silent
	touch $(BUF)

## Serve all three services on SQLite under ./var (prints addresses and a token).
run: $(STAMP)
	$(VENV)/bin/herald serve --data-dir var

## The whole suite on SQLite, after checking gen/ is current, the protos lint clean and break
## nothing that clients of the baseline rely on, and services/ type-checks.
test: $(STAMP) check-gen lint-proto breaking lint typecheck
	$(PY) -m pytest -q $(PYTEST_ARGS)

## The suite again on a throwaway PostgreSQL server on loopback.
test-pg: $(STAMP)
	HERALD_TEST_DATABASE_URL=$$(scripts/pg_test_server.sh start) $(PY) -m pytest -q $(PYTEST_ARGS)

## Regenerate gen/ from proto/.
proto: $(STAMP)
	scripts/gen_proto.sh

## Fails when the committed gen/ differs from what proto/ generates.
check-gen: $(STAMP)
	@tmp=$$(mktemp -d) && scripts/gen_proto.sh $$tmp && \
	  diff -r -q -x __pycache__ gen/herald $$tmp/herald || { echo "gen/ is out of date: run 'make proto'"; rm -rf $$tmp; exit 1; }; \
	  rm -rf $$tmp

lint: $(STAMP)
	$(VENV)/bin/ruff check services tests bench

## mypy over services/ (configured in pyproject.toml).
typecheck: $(STAMP)
	$(VENV)/bin/mypy

lint-proto: $(BUF)
	$(BUF) lint

## Fails when proto/ breaks the contract recorded in proto/baseline.binpb (additions pass).
breaking: $(BUF)
	$(BUF) breaking --against proto/baseline.binpb

## Records today's protos as the baseline; commit it on its own, deliberately.
baseline: $(BUF)
	$(BUF) build -o proto/baseline.binpb

## Every benchmark with its defaults, then delivery_bench --recipients 1000000 (bench/__main__.py
## EXTRA_RUNS); long, on SQLite; CI never runs it. One benchmark with its options:
## make bench BENCH=delivery_bench BENCH_ARGS="--recipients 10000" (python -m bench.<BENCH> <BENCH_ARGS>).
## PostgreSQL: BENCH=delivery_bench or many_campaigns_bench with BENCH_ARGS="--postgres URL"
## (scripts/pg_test_server.sh start prints one).
bench: $(STAMP)
ifdef BENCH
	$(PY) -m bench.$(BENCH) $(BENCH_ARGS)
else
	$(if $(BENCH_ARGS),$(error BENCH_ARGS needs BENCH: make bench BENCH=delivery_bench BENCH_ARGS="--recipients 10000"))
	$(PY) -m bench
endif

clean:
	rm -rf $(VENV) node_modules var .pytest_cache .mypy_cache

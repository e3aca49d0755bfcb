# Mutualis — the two commands of the quick start are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
PYTEST_WORKERS ?= 2

.PHONY: run test bench lint venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

venv: $(VENV)/.installed

## make run: the embedded default (SQLite + local storage), demo intercommunality, http://localhost:8000
run: $(VENV)/.installed
	env -u SAAS_DATABASE_URL -u SAAS_REDIS_URL -u SAAS_S3_ENDPOINT SAAS_PUBLIC_PORT=$(PORT) $(BIN)/saas init
	env -u SAAS_DATABASE_URL -u SAAS_REDIS_URL -u SAAS_S3_ENDPOINT SAAS_PUBLIC_PORT=$(PORT) $(BIN)/saas demo load tenants
	env -u SAAS_DATABASE_URL -u SAAS_REDIS_URL -u SAAS_S3_ENDPOINT SAAS_PUBLIC_PORT=$(PORT) $(BIN)/saas serve --bind 127.0.0.1:$(PORT) --workers 1

## make test: the whole suite on real PostgreSQL, Redis, an S3 endpoint, SMTP and Chromium
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -p no:cacheprovider

## make bench: benchmarks, each printing ratios against a baseline measured in the same run
bench: $(VENV)/.installed-test
	@command -v wrk >/dev/null || { echo "installing wrk"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	@for script in tests/bench/bench_*.py; do \
		echo "== $$script"; $(BIN)/python $$script || exit 1; \
	done

lint: $(VENV)/.installed-test
	$(BIN)/ruff check saas tests

clean:
	rm -rf $(VENV) instance test-artifacts

# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Development and tests run with DEBUG on unless the environment says otherwise.
DEV_ENV := DEBUG=$${DEBUG:-true}

.PHONY: run run-cluster test lint format migrate install install-dev clean seed bench bench-full

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(DEV_ENV) $(BIN)/python manage.py migrate --noinput

# The first `make run` seeds a few demo people and chats, so a newcomer lands in a living app.
var/.demo-seeded:
	$(DEV_ENV) $(BIN)/python manage.py seed_demo --users 6 --messages 80
	touch $@

run: migrate var/.demo-seeded
	$(DEV_ENV) $(BIN)/python manage.py serve --reload $(if $(PORT),--port $(PORT))

# N workers (`manage.py serve`) behind nginx on PORT, sharing the machine's Redis and the database (docs/deployment.md).
N ?= 2
run-cluster: install
	$(DEV_ENV) REDIS_HOST=$${REDIS_HOST:-127.0.0.1} \
		$(BIN)/python manage.py run_cluster --workers $(N) $(if $(PORT),--port $(PORT))

test: install-dev
	$(DEV_ENV) $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Benchmarks (bench/): the app against a raw ASGI relay, in one run. docs/benchmarks.md has the numbers.
bench: install-dev
	$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python -m bench.run

bench-full: install-dev
	$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python -m bench.run --full

seed: migrate
	$(DEV_ENV) $(BIN)/python manage.py seed_demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

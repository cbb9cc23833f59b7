# RediSolar. The two commands: `make run` (demo on http://localhost:8081) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.DEFAULT_GOAL := help
.PHONY: help env dev run demo test lint load clean bench test-api fuzz

include mk/redis.mk
include mk/web.mk
include mk/bench.mk

help:  ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## .*$$' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "\033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

env: $(STAMP)  ## Create .venv and install RediSolar with its development dependencies

run: env redis-stack  ## Start everything from nothing: embedded Redis, sample data, API on :8081
	$(BIN)/redisolar demo

demo: run  ## Same as make run

dev: env  ## Run the API against the Redis configured in REDISOLAR_REDIS_URL (default localhost:6379)
	$(BIN)/redisolar serve --port 8081

test: env redis-stack browser  ## Run the whole test suite (starts its own private Redis servers)
	$(BIN)/python -m pytest

FUZZ_EXAMPLES ?= 1000

fuzz: env redis-stack  ## Fuzz the whole API from its OpenAPI document, longer than `make test` (FUZZ_EXAMPLES per operation)
	REDISOLAR_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/test_fuzz.py

lint: env  ## ruff and mypy
	$(BIN)/ruff check redisolar tests bench
	$(BIN)/mypy

load: env  ## Load the sample data into the configured Redis (asks before replacing data)
	$(BIN)/redisolar load

bench: env redis-stack  ## DAO benchmarks; BASELINE=../shared/reference/seed-design compares with the seed
	$(BIN)/python -m bench.dao $(if $(BASELINE),--baseline $(BASELINE),)

test-api: env  ## Run the seed's client flow against a running server (make run first)
	$(BIN)/python -m bench.api_calls

clean:  ## Remove caches and the demo's data (not .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis artifacts data

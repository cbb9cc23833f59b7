# The HTTP benchmarks (bench/README.md): the production server under load, beside the seed's design.
# Included from the main Makefile (which defines `env`; `redis-stack` is in mk/redis.mk).
#   make bench-http                          # per route, batch ingest, keys and limits; then docs/benchmarks.md
#   make bench-http SMOKE=1                  # the same, 1 run of 2 s each, figures into /tmp (proves the tooling)
#   make bench-routes ROUTES_ARGS="--routes summary,health --rounds 3"
#   make bench-fleet BASELINE=../shared/reference/seed-design BENCH_ARGS="--sites 2000 --mixed-seconds 30"
#   make bench-cluster CLUSTER_ARGS="--backends redistimeseries"   # one node vs 3 masters; then docs/benchmarks.md
#   make bench-profile PROFILE_ARGS="--label after"   # in-process cost per request of the hot routes: docs/profiles/
.PHONY: bench-http bench-routes bench-batch bench-auth bench-fleet bench-report bench-capacity bench-cluster bench-profile

# The baseline of the HTTP comparisons: BASELINE if given, else the seed design beside this checkout.
SEED_DESIGN := $(wildcard ../shared/reference/seed-design)
HTTP_BASELINE = $(or $(BASELINE),$(SEED_DESIGN))
BENCH_ARGS ?=
ROUTES_ARGS ?=
AUTH_ARGS ?=
# SMOKE=1: one short run of everything, written to a temporary folder (never over artifacts/, docs/)
SMOKE_DIR := /tmp/redisolar-bench-smoke
SMOKE_ARGS = $(if $(SMOKE),--seconds 2 --rounds 1,)
SMOKE_ENV = $(if $(SMOKE),REDISOLAR_BENCH_ARTIFACTS=$(SMOKE_DIR) REDISOLAR_BENCH_QUIET_TIMEOUT=0,)
SMOKE_RETRIES = $(if $(SMOKE),--retries 0 --warmup-seconds 1,)
REPORT_ARGS = $(if $(SMOKE),--artifacts $(SMOKE_DIR) --keep-dir $(SMOKE_DIR)/kept --out $(SMOKE_DIR)/benchmarks.md,)

bench-http: bench-routes bench-batch bench-auth bench-report  ## HTTP: per route and batch ingest beside the seed's design, keys and limits; docs/benchmarks.md

bench-routes: env redis-stack  ## requests/s per route (POST one reading, latest, capacity board, summary, /health), project vs seed
	$(SMOKE_ENV) $(BIN)/python -m bench.routes $(if $(HTTP_BASELINE),--baseline $(HTTP_BASELINE),) $(SMOKE_ARGS) $(SMOKE_RETRIES) $(ROUTES_ARGS)

bench-batch: env redis-stack  ## HTTP batch ingest (1,000 readings per POST), project vs seed
	$(SMOKE_ENV) $(BIN)/python -m bench.http $(if $(HTTP_BASELINE),--baseline $(HTTP_BASELINE),) $(SMOKE_ARGS) $(SMOKE_RETRIES) $(BENCH_ARGS)

bench-auth: env redis-stack  ## what API keys and rate limits cost per request
	$(SMOKE_ENV) $(BIN)/python -m bench.http_auth $(SMOKE_ARGS) $(AUTH_ARGS)

bench-report: env  ## docs/benchmarks.md from artifacts/bench-*.json (kept in docs/benchmarks/)
	$(BIN)/python -m bench.report $(REPORT_ARGS)

bench-fleet: env redis-stack  ## 10,000-site fleet: load, memory, read latency, mixed load (BASELINE=dir too)
	$(BIN)/python -m bench.fleet $(if $(BASELINE),--baseline $(BASELINE),) $(BENCH_ARGS)

CAPACITY_ARGS ?=
bench-capacity: env redis-stack  ## the capacity plan's figures (docs/capacity.md): memory per sample, CPU per reading, per key, per dashboard poll
	$(SMOKE_ENV) $(BIN)/python -m bench.capacity $(if $(SMOKE),--rounds 1 --sites 20 --days 0.5 --posts 100 --split 60 --requests 5,) $(CAPACITY_ARGS)

CLUSTER_ARGS ?=
bench-cluster: env redis-stack  ## one Redis node vs a 3-master cluster (and with replicas + DURABILITY=replicated): req/s, per-shard ops/s, Redis CPU per reading; then docs/benchmarks.md
	$(SMOKE_ENV) $(BIN)/python -m bench.cluster $(SMOKE_ARGS) $(SMOKE_RETRIES) $(CLUSTER_ARGS)
	$(BIN)/python -m bench.report $(REPORT_ARGS)

PROFILE_ARGS ?=
bench-profile: env redis-stack  ## Python CPU, Redis round trips, commands and CPU per request of the hot routes, with cProfile's top entries (docs/profiles/<label>-*.txt)
	$(BIN)/python -m bench.profile_routes $(PROFILE_ARGS)

# The HTTP benchmarks (bench/README.md): the production server under load, optionally beside a baseline.
# Included from the main Makefile (which defines `env`; `redis-stack` is in mk/redis.mk).
#   make bench-http  BASELINE=../shared/reference/seed-design
#   make bench-fleet BASELINE=../shared/reference/seed-design BENCH_ARGS="--sites 2000 --mixed-seconds 30"
.PHONY: bench-http bench-fleet

BENCH_ARGS ?=

bench-http: env redis-stack  ## HTTP: batch ingest (BASELINE=dir: beside the seed's app), then what keys and limits cost
	$(BIN)/python -m bench.http $(if $(BASELINE),--baseline $(BASELINE),) $(BENCH_ARGS)
	$(BIN)/python -m bench.http_auth

bench-fleet: env redis-stack  ## 10,000-site fleet: load, memory, read latency, mixed load (BASELINE=dir too)
	$(BIN)/python -m bench.fleet $(if $(BASELINE),--baseline $(BASELINE),) $(BENCH_ARGS)

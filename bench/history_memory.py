"""Memory per site-year of the history rollups (redisolar.dao.history), on both backends.

    python -m bench.history_memory [--interval-minutes 5] [--days 365]

For each backend on a private server (``core`` on plain Redis, ``redistimeseries`` on Redis Stack):
one site in America/New_York (its hash carries ``tzt``, so local days are real ones) gets a year of
readings, a day per batch, through the ingest path (the series write and ``history_set.lua`` in one
round trip), raw retention 30 days; then the rollup keys' ``MEMORY USAGE`` (SAMPLES 0) is summed.
Also timed (ms per call, round trip included, 1,000 calls): ``history_set.lua`` for a one-reading
write (the per-reading ingest cost it adds: its hour and its local day recomputed) next to the series
write script of the same reading.
For comparison on Redis Stack: what RedisTimeSeries compaction series for the same hours would take
(16 series: one count and sum/min/max/first/last of each of the three metrics, 8,760 hourly samples
each, the module's default chunk size and compression; no peak time, no local days). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, datetime

import redis

from redisolar.dao.history import DAY, HOUR
from redisolar.dao.scripts import run_scripts
from redisolar.dao.timeseries_dao import TimeSeriesDao
from redisolar.embedded import RedisServer, find_plain_server, find_stack_server
from redisolar.localtime import encode_tzt

SITE = 1


def memory(client: redis.Redis, pattern: str) -> tuple[int, int]:
    """(bytes, keys) of the keys matching ``pattern`` (MEMORY USAGE ... SAMPLES 0)."""
    total = keys = 0
    for key in client.scan_iter(match=pattern, count=1000):
        total += int(client.memory_usage(key, samples=0) or 0)
        keys += 1
    return total, keys


def run(backend: str, server: RedisServer, days: int, interval_ms: int) -> dict[str, object]:
    client = redis.Redis(port=server.port, decode_responses=True)
    client.flushall()
    dao = TimeSeriesDao(client, backend=backend, retention_ms=30 * DAY, history_ms=3650 * DAY)
    client.hset(dao.keys.site_key(SITE), mapping={"capacity": 5.0, "tzt": encode_tzt("America/New_York")})
    start = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
    rng = random.Random(7)
    began = time.perf_counter()
    for day in range(days):
        base = start + day * DAY
        batch = [
            (t, rng.uniform(0, 400), rng.uniform(0, 300), rng.uniform(-10, 40))
            for t in range(base, base + DAY, interval_ms)
        ]
        dao.add_validated_records({SITE: batch})
    ingest_s = time.perf_counter() - began
    hours_bytes, hour_keys = memory(client, f"{dao.keys.key_prefix}hist:{{site:{SITE}}}:h:*")
    days_bytes, day_keys = memory(client, f"{dao.keys.key_prefix}hist:{{site:{SITE}}}:d:*")
    meta_bytes, _ = memory(client, f"{dao.keys.key_prefix}hist:{{site:{SITE}}}:meta")
    raw_bytes = sum(
        memory(client, f"{dao.keys.key_prefix}{kind}:{{site:{SITE}}}*")[0] for kind in ("ts", "core")
    )
    years = days / 365
    # the per-reading cost history_set.lua adds: one reading in the newest hour, recomputed 1,000 times
    last = start + days * DAY - interval_ms
    call = dao.history.set_call(dao.backend.name, SITE, [(last, 1.0, 1.0, 1.0)], False)
    run_scripts(client, [call])
    began = time.perf_counter()
    for _ in range(1000):
        run_scripts(client, [call])
    per_call_ms = time.perf_counter() - began
    write = dao.backend.write_call(SITE, [(last, 1.0, 1.0, 1.0)])
    began = time.perf_counter()
    for _ in range(1000):
        run_scripts(client, [write])
    write_ms = time.perf_counter() - began
    out: dict[str, object] = {
        "backend": backend,
        "readings": days * DAY // interval_ms,
        "ingest_s": round(ingest_s, 2),
        "hour_rollups_bytes_per_site_year": round(hours_bytes / years),
        "day_rollups_bytes_per_site_year": round(days_bytes / years),
        "meta_bytes": meta_bytes,
        "rollup_keys": hour_keys + day_keys + 1,
        "total_bytes_per_site_year": round((hours_bytes + days_bytes + meta_bytes) / years),
        "raw_bytes_in_window": raw_bytes,
        "history_set_one_reading_ms": round(per_call_ms, 3),
        "series_write_one_reading_ms": round(write_ms, 3),
    }
    client.close()
    return out


def compaction_alternative(server: RedisServer) -> dict[str, object]:
    """Memory of 16 RedisTimeSeries series of 8,760 hourly doubles (what compaction rules for the
    same hourly figures would hold)."""
    client = redis.Redis(port=server.port, decode_responses=True)
    client.flushall()
    rng = random.Random(7)
    start = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
    for s in range(16):
        key = f"bench:{{site:1}}:agg:{s}"
        client.execute_command("TS.CREATE", key)
        pipe = client.pipeline(transaction=False)
        for h in range(8760):
            pipe.execute_command("TS.ADD", key, start + h * HOUR, rng.uniform(0, 20_000) if s else 12)
        pipe.execute()
    total, _ = memory(client, "bench:*")
    client.close()
    return {"compaction_16_series_bytes_per_site_year": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval-minutes", type=int, default=5)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    stack, plain = find_stack_server(), find_plain_server()
    if stack is None or plain is None:
        sys.exit("needs both redis-server and Redis Stack (make redis-stack)")
    results = []
    with RedisServer(plain) as server:
        results.append(run("core", server, args.days, args.interval_minutes * 60_000))
    with RedisServer(stack) as server:
        results.append(run("redistimeseries", server, args.days, args.interval_minutes * 60_000))
        results.append(compaction_alternative(server))
    print(json.dumps(results))


if __name__ == "__main__":
    main()

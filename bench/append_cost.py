"""Redis CPU of a one-reading POST through the ingest use case as its hour fills.

    python -m bench.append_cost [--readings 20000] [--step-ms 10] [--window 1000]
        [--backends core,redistimeseries]

On a fresh private server per backend (``core`` on plain Redis, ``redistimeseries`` on Redis Stack):
one registered site (America/New_York) gets ``--readings`` single readings ``--step-ms`` apart from
the start of a UTC hour, one ingest call each (the series write, its history call, the derived
state). Prints the server's ``used_cpu`` (user + sys) per call over the first and the last
``--window`` calls (the hour nearly empty, then holding all the readings) as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys

import redis

import redisolar
from redisolar.dao.history import DAY, HOUR
from redisolar.dao.timeseries_dao import TimeSeriesDao
from redisolar.embedded import RedisServer, find_plain_server, find_stack_server
from redisolar.localtime import encode_tzt
from redisolar.services.ingest import ingest_records
from redisolar.timeutil import to_ms, utcnow

SITE = 1


def cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"] + info["used_cpu_sys"])


def run(client: redis.Redis, backend: str, readings: int, step: int, window: int) -> dict[str, float]:
    client.flushall()
    series = TimeSeriesDao(client, backend=backend, retention_ms=30 * DAY, history_ms=3650 * DAY)
    client.hset(series.keys.site_key(SITE), mapping={"capacity": 5.0, "tzt": encode_tzt("America/New_York")})
    now = to_ms(utcnow())
    start = now - now % HOUR - 2 * HOUR
    rng = random.Random(7)
    out: dict[str, float] = {}
    mark = 0.0
    for i in range(readings):
        if i in (0, readings - window):
            mark = cpu(client)
        rec = (start + i * step, rng.uniform(0, 4), rng.uniform(0, 3), rng.uniform(-10, 40))
        ingest_records(series, {SITE: [rec]})
        if i + 1 == window:
            out["first_us_per_post"] = (cpu(client) - mark) * 1e6 / window
    out["last_us_per_post"] = (cpu(client) - mark) * 1e6 / window
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readings", type=int, default=20000)
    parser.add_argument("--step-ms", type=int, default=10)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--backends", default="core,redistimeseries")
    args = parser.parse_args(argv)
    specs = {"core": find_plain_server, "redistimeseries": find_stack_server}
    results: dict[str, object] = {"redisolar": redisolar.__file__}
    for backend in args.backends.split(","):
        spec = specs[backend]()
        if spec is None:
            sys.exit(f"no Redis server for the {backend} backend (make env redis-stack)")
        with RedisServer(spec) as server:
            client = redis.Redis(port=server.port)
            results[backend] = run(client, backend, args.readings, args.step_ms, args.window)
            client.close()
    print(json.dumps(results))


if __name__ == "__main__":
    main()

"""Server cost of ``history_set.lua`` for a one-reading write, by backend, reading interval and zone.

    python -m bench.history_cost [--calls 2000] [--backends core,redistimeseries] [--rounds 3]

For each backend on a fresh private server (``core`` on plain Redis, ``redistimeseries`` on Redis
Stack), each interval (1 and 5 minutes) and each zone (UTC, America/New_York, Asia/Kolkata +5:30,
Pacific/Chatham +12:45/+13:45): one site gets two local days of readings through the ingest path,
then the history call of a one-reading write at the end of the second local day (its hour and its
full local day rolled up) is sent ``--calls`` times, 50 per round trip: ``INFO commandstats``
microseconds of ``EVALSHA`` per call (the script with its inner commands, no network I/O) and the
server's ``used_cpu`` (user + sys) per call. Median of ``--rounds`` with min–max; prints a table and
writes ``artifacts/bench-history-cost.json`` (``$REDISOLAR_BENCH_ARTIFACTS``).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    sys.exit("Run this as a module from the project root: python -m bench.history_cost")

import argparse
import random
import statistics
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis

from bench.harness import write_artifact
from redisolar.dao.history import DAY, HOUR
from redisolar.dao.scripts import run_scripts
from redisolar.dao.timeseries_dao import TimeSeriesDao
from redisolar.embedded import RedisServer, find_plain_server, find_stack_server
from redisolar.localtime import encode_tzt

ZONES = ("UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham")
INTERVALS = (1, 5)
SITE = 1
PER_ROUND_TRIP = 50


def counters(client: redis.Redis) -> tuple[float, int, int]:
    """(used_cpu seconds, EVALSHA calls, EVALSHA usec) of the server now."""
    cpu = client.info("cpu")
    stats = client.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"], int(stats["calls"]), int(stats["usec"])


def one(client: redis.Redis, backend: str, zone: str, interval_min: int, calls: int) -> dict[str, Any]:
    client.flushall()
    dao = TimeSeriesDao(client, backend=backend, retention_ms=30 * DAY, history_ms=3650 * DAY)
    client.hset(dao.keys.site_key(SITE), mapping={"capacity": 5.0, "tzt": encode_tzt(zone)})
    tz = ZoneInfo(zone)
    first = date.today() - timedelta(days=3)
    begin = int(datetime.combine(first, datetime.min.time(), tz).astimezone(UTC).timestamp() * 1000)
    end = int(datetime.combine(first + timedelta(days=2), datetime.min.time(), tz).timestamp() * 1000)
    rng = random.Random(7)
    step = interval_min * 60_000
    times = list(range(begin - begin % step, end, step))
    readings = [(t, rng.uniform(0, 400), rng.uniform(0, 300), rng.uniform(-10, 40)) for t in times]
    for i in range(0, len(readings), 2000):
        dao.add_validated_records({SITE: readings[i : i + 2000]})
    last = readings[-1]
    call = dao.history.set_call(dao.backend.name, SITE, [last], False)
    run_scripts(client, [call])
    cpu0, calls0, usec0 = counters(client)
    for _ in range(calls // PER_ROUND_TRIP):
        run_scripts(client, [call] * PER_ROUND_TRIP)
    cpu1, calls1, usec1 = counters(client)
    n = calls1 - calls0
    day_readings = sum(1 for t, *_ in readings if end - DAY - 2 * HOUR <= t)  # about a local day
    return {
        "usec_per_call": (usec1 - usec0) / n,
        "cpu_us_per_call": (cpu1 - cpu0) * 1e6 / n,
        "calls": n,
        "readings_in_day": day_readings,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="core,redistimeseries")
    args = parser.parse_args(argv)
    specs = {"core": find_plain_server, "redistimeseries": find_stack_server}
    results: dict[str, Any] = {}
    for backend in args.backends.split(","):
        rounds: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.rounds):
            spec = specs[backend]()
            if spec is None:
                sys.exit(f"no Redis server for the {backend} backend (make env redis-stack)")
            with RedisServer(spec) as server:
                client = redis.Redis(port=server.port, decode_responses=True)
                for interval in INTERVALS:
                    for zone in ZONES:
                        rounds.setdefault(f"{interval}min {zone}", []).append(
                            one(client, backend, zone, interval, args.calls)
                        )
                client.close()
        results[backend] = {
            case: {
                field: {
                    "median": statistics.median(r[field] for r in runs),
                    "min": min(r[field] for r in runs),
                    "max": max(r[field] for r in runs),
                }
                for field in ("usec_per_call", "cpu_us_per_call")
            }
            for case, runs in rounds.items()
        }
    print(f"{'backend':16} {'case':28} {'EVALSHA us/call':>24} {'used_cpu us/call':>24}")
    for backend, cases in results.items():
        for case, figures in cases.items():
            cells = [
                f"{f['median']:.1f} ({f['min']:.1f}-{f['max']:.1f})"
                for f in (figures["usec_per_call"], figures["cpu_us_per_call"])
            ]
            print(f"{backend:16} {case:28} {cells[0]:>24} {cells[1]:>24}")
    path = write_artifact("history-cost", {"settings": vars(args), "backends": results})
    print(f"\nraw figures: {path}")


if __name__ == "__main__":
    main()

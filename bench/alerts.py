"""The cost of alert evaluation per 10,000 sites per minute:
``python -m bench.alerts [--sites N] [--rounds 3]``.

Loads a synthetic fleet (clear-sky profile, 6 hours of 15-minute readings) into a private Redis,
stores the two default rules (offline, daylight) and a fleet-wide underperformance rule (every kind
but thresholds, at every site), then times evaluation passes: the first (cold: the usual intervals
and the neighbour lists are read site by site), then ``--rounds`` rounds (at least 3 for a figure
worth quoting) of two warm passes each (the evaluator's caches filled, what every minute costs), one
without and one with a fleet-wide ``temp_c`` threshold (a round trip per site), in alternating order.
Reports wall seconds and the Redis server's CPU seconds per pass, scaled to 10,000 sites, each as the
median of the rounds with min-max; the evaluator runs once a minute (``ALERT_EVALUATION_SECONDS``), so
a pass's seconds are its share of a minute. Writes ``artifacts/bench-alerts.json`` with the command,
the machine's load average at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import reproduce_command, write_artifact
from bench.procstat import cpu_of
from redisolar.alerts import service
from redisolar.alerts.rules import Rule
from redisolar.app import create_app, get_services
from redisolar.embedded import RedisServer, find_best_server
from redisolar.sample_data import load_plan, plan_sample_data

UNDER = Rule("under", "underperformance", window_minutes=60, percent=50, radius_km=50)
THRESHOLD = Rule("hot", "threshold", metric="temp_c", op=">", value=70)
VARIANTS = ("without_threshold", "with_threshold")


def one_pass(services: Any, pid: int) -> tuple[float, float, int]:
    """(wall s, Redis CPU s, opened + resolved) of one pass."""
    cpu0, started = cpu_of([pid]), time.perf_counter()
    report = service.evaluate(services)
    wall, cpu = time.perf_counter() - started, cpu_of([pid]) - cpu0
    assert report is not None
    return wall, cpu, report.opened + report.resolved


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def rounds_of(services: Any, pid: int, rounds: int) -> dict[str, list[tuple[float, float, int]]]:
    """``rounds`` rounds of a warm pass per variant, the order alternating round by round."""
    store = service.rules(services)
    found: dict[str, list[tuple[float, float, int]]] = {v: [] for v in VARIANTS}
    for n in range(rounds):
        for variant in VARIANTS if n % 2 == 0 else VARIANTS[::-1]:
            if variant == "with_threshold":
                store.put(THRESHOLD, create=True)
            found[variant].append(one_pass(services, pid))
            if variant == "with_threshold":
                store.delete(THRESHOLD.id)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    spec = find_best_server()
    load_at_start = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as data, RedisServer(spec, data_dir=Path(data)) as server:
        app = create_app("bench", {"REDIS_URL": f"{server.url}/0", "RATE_LIMIT_WRITES": "0"})
        services = get_services(app)
        plan = plan_sample_data(args.sites, 0.25, 15, profile="clear-sky", seed=1)
        loaded = load_plan(services, plan)
        store = service.rules(services)
        store.ensure_defaults()
        store.put(UNDER, create=True)
        assert server.pid is not None
        store.put(THRESHOLD, create=True)
        cold = one_pass(services, server.pid)
        store.delete(THRESHOLD.id)
        warm = rounds_of(services, server.pid, args.rounds)
        backend = services.timeseries.backend.__class__.__name__
        services.redis.close()
    scale = 10_000 / args.sites
    result: dict[str, Any] = {
        "sites": args.sites,
        "readings": loaded.readings,
        "backend": backend,
        "rules": ["offline", "daylight", "underperformance", "(threshold: with_threshold only)"],
        "rounds_run": args.rounds,
        "loadavg_at_start": load_at_start,
        "cold_wall_s_per_10k": cold[0] * scale,
        "cold_redis_cpu_s_per_10k": cold[1] * scale,
    }
    for variant, passes in warm.items():
        result[variant] = {
            "wall_s_per_10k": spread([w * scale for w, _, _ in passes]),
            "redis_cpu_s_per_10k": spread([c * scale for _, c, _ in passes]),
            "changes": [c for _, _, c in passes],
        }
    path = write_artifact("alerts", result)
    report(result, path)


def report(result: dict[str, Any], path: Path) -> None:
    print(f"{result['sites']} sites, {result['readings']} readings ({result['backend']});", end=" ")
    print(f"load {result['loadavg_at_start']}; per 10,000 sites:")
    print(f"  cold pass: {result['cold_wall_s_per_10k']:.2f} s wall,", end=" ")
    print(f"{result['cold_redis_cpu_s_per_10k']:.2f} s Redis CPU")
    for variant in VARIANTS:
        w, c = result[variant]["wall_s_per_10k"], result[variant]["redis_cpu_s_per_10k"]
        print(f"  warm pass {variant.replace('_', ' ')}: {w['median']:.2f} s wall", end=" ")
        print(f"({w['min']:.2f}-{w['max']:.2f}), {c['median']:.2f} s Redis CPU", end=" ")
        print(f"({c['min']:.2f}-{c['max']:.2f}) a minute; median of {result['rounds_run']} rounds")
    print(f"command: {reproduce_command()}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()

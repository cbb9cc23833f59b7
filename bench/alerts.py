"""The cost of alert evaluation per 10,000 sites: ``python -m bench.alerts [--sites N] [--runs 3]``.

Loads a synthetic fleet (clear-sky profile, 6 hours of 15-minute readings) into a private Redis,
stores the two default rules (offline, daylight) plus a fleet-wide underperformance rule and a
temperature threshold (every kind, every site; ``--no-threshold`` leaves it out), then times
evaluation passes: the first (cold: the usual intervals and the neighbour lists are read site by
site) and ``--runs`` warm ones (the evaluator's caches filled, what every minute costs). Reports
wall seconds and the Redis server's CPU seconds per pass, scaled to 10,000 sites, as the median of
the warm runs with min-max, and writes ``artifacts/bench-alerts[-no-threshold].json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import write_artifact
from bench.procstat import cpu_of
from redisolar.alerts import service
from redisolar.alerts.rules import Rule
from redisolar.app import create_app, get_services
from redisolar.embedded import RedisServer, find_best_server
from redisolar.sample_data import load_plan, plan_sample_data

EXTRA_RULES = (
    Rule("under", "underperformance", window_minutes=60, percent=50, radius_km=50),
    Rule("hot", "threshold", metric="temp_c", op=">", value=70),
)


def one_pass(services: Any, pid: int) -> tuple[float, float, int]:
    """(wall s, Redis CPU s, opened + resolved) of one pass."""
    cpu0, started = cpu_of([pid]), time.perf_counter()
    report = service.evaluate(services)
    wall, cpu = time.perf_counter() - started, cpu_of([pid]) - cpu0
    assert report is not None
    return wall, cpu, report.opened + report.resolved


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-threshold", action="store_true", help="Leave the threshold rule out.")
    args = parser.parse_args()
    spec = find_best_server()
    with tempfile.TemporaryDirectory() as data, RedisServer(spec, data_dir=Path(data)) as server:
        app = create_app("bench", {"REDIS_URL": f"{server.url}/0", "RATE_LIMIT_WRITES": "0"})
        services = get_services(app)
        plan = plan_sample_data(args.sites, 0.25, 15, profile="clear-sky", seed=1)
        loaded = load_plan(services, plan)
        store = service.rules(services)
        store.ensure_defaults()
        for rule in EXTRA_RULES:
            if rule.kind != "threshold" or not args.no_threshold:
                store.put(rule, create=True)
        assert server.pid is not None
        cold = one_pass(services, server.pid)
        warm = [one_pass(services, server.pid) for _ in range(args.runs)]
        scale = 10_000 / args.sites
        walls, cpus = [w * scale for w, _, _ in warm], [c * scale for _, c, _ in warm]
        result = {
            "sites": args.sites,
            "readings": loaded.readings,
            "backend": services.timeseries.backend.__class__.__name__,
            "rules": [
                "offline",
                "daylight",
                "underperformance",
                *([] if args.no_threshold else ["threshold"]),
            ],
            "cold_wall_s_per_10k": cold[0] * scale,
            "cold_redis_cpu_s_per_10k": cold[1] * scale,
            "warm_wall_s_per_10k": spread(walls),
            "warm_redis_cpu_s_per_10k": spread(cpus),
            "changes": [cold[2], *(c for _, _, c in warm)],
        }
        services.redis.close()
    path = write_artifact("alerts-no-threshold" if args.no_threshold else "alerts", result)
    print(f"{args.sites} sites, {loaded.readings} readings ({result['backend']}); per 10,000 sites:")
    print(f"  cold pass: {cold[0] * scale:.2f} s wall, {cold[1] * scale:.2f} s Redis CPU")
    w, c = result["warm_wall_s_per_10k"], result["warm_redis_cpu_s_per_10k"]
    print(f"  warm pass: {w['median']:.2f} s wall ({w['min']:.2f}-{w['max']:.2f}), ", end="")
    print(f"{c['median']:.2f} s Redis CPU ({c['min']:.2f}-{c['max']:.2f}); median of {args.runs}")
    print(f"  written to {path}")


if __name__ == "__main__":
    main()

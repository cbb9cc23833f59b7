"""``make bench``: DAO figures on private Redis servers, optionally side by side with a baseline.

    python -m bench.dao [--baseline PATH] [--sites 200] [--days 7] [--rounds 3]

Each run is ``bench/dao_work.py`` in its own process. With ``--baseline`` (a directory holding
another ``redisolar`` package, e.g. ../shared/reference/seed-design) the project and the baseline run
in alternation on the same Redis Stack server and the ratios of their medians are printed. Memory per
stored sample is measured for both backends at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from redisolar.embedded import RedisServer, ServerSpec, find_plain_server, find_stack_server

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "dao_work.py"


def run_work(server: RedisServer, package_dir: Path, sites: int, days: int) -> dict:
    env = dict(
        os.environ, PYTHONPATH=str(package_dir), SEEDREF_REDIS_PORT=str(server.port), SEEDREF_REDIS_DB="0"
    )
    out = subprocess.run(
        [sys.executable, str(WORK), str(server.port), "0", str(sites), str(days)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=str(package_dir),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def figures(run: dict) -> dict[str, float]:
    return {
        "ingest_readings_per_s": run["readings"] / (run["ingest"] + run["leaderboards_current"]),
        "top100_ms": 1000 * run["top100_x50"] / 50,
        "analytics_7d_ms": 1000 * run["analytics_x50"] / 50,
        "backlog_readings_per_s": run["backlog_readings"] / run["backlog"],
        "backlog_batch_p99_ms": 1000 * run["backlog_batch_p99"],
        "ingest_cpu_us": 1e6 * (run["ingest_cpu_client"] + run["ingest_cpu_server"]) / run["readings"],
        "ingest_server_cpu_us": 1e6 * run["ingest_cpu_server"] / run["readings"],
        "backlog_cpu_us": 1e6
        * (run["backlog_cpu_client"] + run["backlog_cpu_server"])
        / run["backlog_readings"],
        "backlog_server_cpu_us": 1e6 * run["backlog_cpu_server"] / run["backlog_readings"],
    }


def median_figures(runs: list[dict]) -> dict[str, float]:
    rows = [figures(r) for r in runs]
    return {k: statistics.median(row[k] for row in rows) for k in rows[0]}


def spread(runs: list[dict]) -> dict[str, tuple[float, float]]:
    """Each figure's min and max over the runs."""
    rows = [figures(r) for r in runs]
    return {k: (min(row[k] for row in rows), max(row[k] for row in rows)) for k in rows[0]}


def show(title: str, runs: list[dict]) -> None:
    """One line per figure: the median of ``runs`` with its min-max."""
    values, ranges = median_figures(runs), spread(runs)
    print(f"  {title} ({len(runs)} runs; median [min-max])")
    for key, label, unit, fmt in FIGURES:
        lo, hi = ranges[key]
        print(f"    {label:<44} {values[key]:{fmt}} [{lo:{fmt}}-{hi:{fmt}}] {unit}")


FIGURES = (
    ("ingest_readings_per_s", "ingest, time-ordered (until boards current)", "readings/s", ",.0f"),
    ("top100_ms", "top-100 capacity leaderboard read", "ms", ".2f"),
    ("analytics_7d_ms", "7-day site analytics", "ms", ".2f"),
    ("backlog_readings_per_s", "backlog upload (older than newest)", "readings/s", ",.0f"),
    ("backlog_batch_p99_ms", "backlog upload, p99 per batch", "ms", ".1f"),
    ("ingest_cpu_us", "ingest CPU per reading, client + server", "us", ".1f"),
    ("ingest_server_cpu_us", "ingest CPU per reading, server", "us", ".1f"),
    ("backlog_cpu_us", "backlog CPU per reading, client + server", "us", ".1f"),
    ("backlog_server_cpu_us", "backlog CPU per reading, server", "us", ".1f"),
)


def memory_per_sample(
    spec: ServerSpec, backend: str, sites: int, days: int, minutes: int
) -> dict[str, float]:
    """Load a fleet through the project's DAO and measure what the readings cost in memory."""
    import redis

    from redisolar.dao.site_dao_redis import SiteDaoRedis
    from redisolar.dao.timeseries_dao import TimeSeriesDao
    from redisolar.models.site import MeterReading, Site
    from redisolar.timeutil import utcnow

    with RedisServer(spec) as server:
        client = redis.Redis(port=server.port, decode_responses=True)
        SiteDaoRedis(client).insert_many(
            *(
                Site(
                    id=i,
                    capacity=5.0,
                    panels=12,
                    address=f"{i} Main St",
                    city="Austin",
                    state="TX",
                    postal_code="73301",
                )
                for i in range(1, sites + 1)
            )
        )
        dao = TimeSeriesDao(client, backend=backend)
        before = int(client.info("memory")["used_memory"])
        end = utcnow().replace(second=0, microsecond=0, minute=0)
        steps = days * 24 * 60 // minutes
        batch: list[MeterReading] = []
        count = 0
        for step in range(steps, 0, -1):
            at = end - timedelta(minutes=minutes * step)
            for site_id in range(1, sites + 1):
                batch.append(
                    MeterReading(
                        site_id=site_id,
                        timestamp=at,
                        wh_generated=123.4 + step % 97,
                        wh_used=56.78 + site_id % 13,
                        temp_c=21.5 + (step % 20) / 4,
                    )
                )
            if len(batch) >= 5000:
                count += dao.add_readings_batch(batch)
                batch = []
        count += dao.add_readings_batch(batch)
        used = int(client.info("memory")["used_memory"]) - before
        client.close()
    return {"readings": count, "bytes_per_reading": used / count, "bytes_per_sample": used / (count * 3)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write every run's timings here")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    args = parser.parse_args()
    stack, plain = find_stack_server(), find_plain_server()
    if stack is None or plain is None:
        sys.exit("bench needs both redis-server and Redis Stack (make redis-stack)")
    print(
        f"DAO benchmark: {args.sites} sites x {args.days} days hourly = {args.sites * args.days * 24:,} "
        f"readings, batches of 1,000; median of {args.rounds} runs"
    )
    ours: list[dict] = []
    base: list[dict] = []
    with RedisServer(stack) as server:
        for _ in range(args.rounds):
            ours.append(run_work(server, ROOT, args.sites, args.days))
            if args.baseline:
                base.append(run_work(server, args.baseline.resolve(), args.sites, args.days))
    with RedisServer(plain) as server:
        core = [run_work(server, ROOT, args.sites, args.days) for _ in range(args.rounds)]
    mine = median_figures(ours)
    show("redisolar (redistimeseries)", ours)
    show("redisolar (core)", core)
    if base:
        seed = median_figures(base)
        show(f"baseline ({args.baseline.name})", base)
        print("  ratios (project / baseline, higher is better):")
        ratios = (
            ("ingest until boards current", mine["ingest_readings_per_s"] / seed["ingest_readings_per_s"]),
            ("top-100 leaderboard read", seed["top100_ms"] / mine["top100_ms"]),
            ("7-day site analytics", seed["analytics_7d_ms"] / mine["analytics_7d_ms"]),
            ("backlog upload", mine["backlog_readings_per_s"] / seed["backlog_readings_per_s"]),
            ("ingest CPU per reading", seed["ingest_cpu_us"] / mine["ingest_cpu_us"]),
        )
        for label, ratio in ratios:
            print(f"    {label + ':':<36}{ratio:6.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"redistimeseries": ours, "core": core, "baseline": base}, indent=1))
    if args.no_memory:
        return
    print("Memory per stored sample (3 measured values per reading, the delta of used_memory):")
    for label, spec, backend in (("redistimeseries", stack, "redistimeseries"), ("core", plain, "core")):
        for days, minutes in ((args.days, 60), (1, 5)):
            m = memory_per_sample(spec, backend, args.sites, days, minutes)
            print(
                f"  {label:<16} {args.sites} sites x {days} d every {minutes:>2} min: "
                f"{m['bytes_per_sample']:6.2f} bytes/sample ({m['bytes_per_reading']:6.1f} bytes/reading)"
            )


if __name__ == "__main__":
    main()

"""``make bench-fleet``: a whole fleet: load time and memory per backend, the API's read latencies on
it, the seed design's summary on the same data, and a mixed read/write load.

    python -m bench.fleet [--sites 10000] [--days 1] [--interval 5] [--baseline PATH]
                          [--requests 300] [--mixed-seconds 60] [--workers N] [--threads T]

(a) ``redisolar load --sites N --days D --interval I --seed S --yes`` (the CLI, in a subprocess, with
    ``REDISOLAR_REDIS_URL`` at a private server) on each backend: core (plain ``redis-server``) and
    redistimeseries (Redis Stack). Load time (the CLI's wall time, and the time it reports itself),
    readings/s, and memory: the ``used_memory`` delta over the load (sites, indexes, rollups and
    leaderboards included) per stored sample (readings x 3 measured values) and per reading.
(b) ``redisolar serve`` on the Redis Stack data, once its start-up reconcile is over; one client,
    sequential, ``--requests`` requests per route: the summary, leaderboard pages, a site's position,
    a site's latest readings, a day of one metric in hourly buckets. p50 / p99 / max.
(c) with ``--baseline`` (the seed design): the same sites and readings written straight into its key
    layout (site hashes + id set + capacity board as its sites DAO and routes write them, one
    ``TS.CREATE``-d series ``ts:site:ID:METRIC`` per metric, filled with large ``TS.MADD``s; not its
    JSON copy of every reading, which its summary never reads) on a second Redis Stack server; its app
    under gunicorn with the same workers and threads, once its start-up leaderboard passes (one per
    worker) are over; its summary (and capacity page) timed the same way, ``--baseline-requests`` times.
(d) ``--mixed-seconds`` of writers (``--mixed-writers`` connections posting batches of
    ``--mixed-batch`` new readings: each site's next readings after the loaded ones, a second apart)
    while one reader per route polls the leaderboards, a site's day in hourly buckets, and the summary.
    Per route: requests, throughput, p50 / p99, errors (must be none; non-2xx counts).

Every HTTP request comes from ``bench/loadgen.py`` in its own process. Tables at the end; raw figures
in ``artifacts/bench-fleet.json``. Exit status 1 if the project answered any error.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import resource
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from bench.harness import (
    baseline_server,
    free_port,
    git_state,
    project_server,
    run_loadgen,
    shell_line,
    table,
    wait_machine_quiet,
    wait_quiet,
    warn_if_code_changed,
    write_artifact,
)
from bench.procstat import cpu_of, machine_busy
from redisolar.embedded import RedisServer, ServerSpec, find_plain_server, find_stack_server
from redisolar.sample_data import SamplePlan, plan_sample_data
from redisolar.timeutil import to_ms

LOADING = re.compile(r"^Loading (\d+) sites and ([\d,]+) readings .*?, (\S+) \.\. (\S+); seed (\d+)\)", re.M)
LOADED = re.compile(r"^Loaded (\d+) sites and ([\d,]+) readings in ([\d.]+) s \(([\d,]+) readings/s\)", re.M)
SEED_PREFIX = "ru102py-app:"  # the seed design's key prefix (its key_manager.py)
SEED_METRICS = ("wh_generated", "wh_used", "temp_c", "net_generation")
SEED_RETENTION_MS = 30 * 86_400_000
SKEW_MARGIN_MS = 240_000  # new readings at most this far past "now" (the project allows 300 s)


# -- (a) loading ---------------------------------------------------------------------------------------
def load_fleet(server: RedisServer, backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run ``redisolar load`` against ``server`` (db 0) and measure time and memory."""
    client = server.client()
    client.flushall()
    before = int(client.info("memory")["used_memory"])
    script = Path(sys.executable).with_name("redisolar")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "redisolar"]
    command = [*cli, "load", "--sites", str(args.sites), "--days", f"{args.days:g}"]
    command += ["--interval", str(args.interval), "--seed", str(args.seed), "--yes"]
    env = {**os.environ, "REDISOLAR_REDIS_URL": f"{server.url}/0", "REDISOLAR_TIMESERIES": backend}
    assert server.pid is not None
    redis0, busy0, cli0 = cpu_of([server.pid]), machine_busy(), _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    cli_cpu, redis_cpu = _children_cpu() - cli0, cpu_of([server.pid]) - redis0
    other = max(0.0, machine_busy() - busy0 - cli_cpu - redis_cpu)
    if done.returncode != 0:
        raise SystemExit(f"redisolar load failed on {backend}:\n{done.stdout}\n{done.stderr[-2000:]}")
    loading, loaded = LOADING.search(done.stdout), LOADED.search(done.stdout)
    if loading is None or loaded is None:
        raise SystemExit(f"cannot read redisolar load's output:\n{done.stdout}")
    readings = int(loaded.group(2).replace(",", ""))
    used = int(client.info("memory")["used_memory"]) - before
    keys = int(client.dbsize())
    client.close()
    return {
        "backend": backend,
        "command": f"REDISOLAR_REDIS_URL={server.url}/0 REDISOLAR_TIMESERIES={backend} {' '.join(command)}",
        "sites": int(loaded.group(1)),
        "readings": readings,
        "wall_s": wall,
        "cli_reported_s": float(loaded.group(3)),
        "readings_per_s_wall": readings / wall,
        "readings_per_s_cli": float(loaded.group(4).replace(",", "")),
        "used_memory_delta": used,
        "bytes_per_sample": used / (readings * 3),
        "bytes_per_reading": used / readings,
        "keys": keys,
        "cores": {"cli": cli_cpu / wall, "redis": redis_cpu / wall, "other": other / wall},
        "plan_end": loading.group(4),
        "plan_seed": int(loading.group(5)),
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def same_plan(args: argparse.Namespace, loaded: dict[str, Any]) -> SamplePlan:
    """The plan ``redisolar load`` loaded: same sites, days, interval, seed and end."""
    end = datetime.fromisoformat(loaded["plan_end"])
    plan = plan_sample_data(args.sites, args.days, args.interval, seed=loaded["plan_seed"], now=end)
    if plan.end != end or plan.total_readings != loaded["readings"]:
        raise SystemExit(
            f"cannot rebuild the loaded plan: end {plan.end} vs {end}, readings {plan.total_readings}"
        )
    return plan


# -- (b) sequential reads ------------------------------------------------------------------------------
def read_routes(plan: SamplePlan, sample: list[int]) -> dict[str, list[str]]:
    """The GET routes timed, with their paths (site-specific ones cycle through ``sample``)."""
    end = plan.end
    start = end - timedelta(hours=24)
    window = f"start={_iso(start)}&end={_iso(end + timedelta(minutes=1))}"
    return {
        "summary": ["/api/analytics/summary"],
        "leaderboard generation top 10": ["/api/analytics/leaderboards/generation?limit=10"],
        "leaderboard capacity top 10": ["/api/analytics/leaderboards/capacity?limit=10"],
        "capacity position (context 2)": [
            f"/api/analytics/leaderboards/capacity/site/{i}?context=2" for i in sample
        ],
        "latest readings": [f"/api/analytics/readings/{i}/latest" for i in sample],
        "24 h wh_generated, hourly avg": [
            f"/api/analytics/readings/{i}/wh_generated?{window}&aggregation=avg&bucket_size=3600000"
            for i in sample
        ],
    }


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sequential(
    base_url: str, routes: dict[str, list[str]], requests: int, watch: dict[str, list[int]]
) -> dict[str, Any]:
    spec = {
        "base_url": base_url,
        "seconds": None,
        "sequential": True,
        "warmup": 3,
        "watch": watch,
        "streams": [
            {"name": name, "method": "GET", "connections": 1, "limit": requests, "paths": paths}
            for name, paths in routes.items()
        ],
    }
    return run_loadgen(spec)


# -- (c) the seed design's layout ----------------------------------------------------------------------
def write_seed_layout(client: redis.Redis, plan: SamplePlan) -> dict[str, Any]:
    """The plan's sites and readings in the seed design's keys (see the module docstring)."""
    started = time.perf_counter()
    before = int(client.info("memory")["used_memory"])
    pipe = client.pipeline(transaction=False)
    for site in plan.sites:
        data: dict[Any, str | int | float] = {
            "id": site.id,
            "capacity": site.capacity,
            "panels": site.panels,
            "address": site.address,
            "city": site.city,
            "state": site.state,
            "postal_code": site.postal_code,
        }
        if site.coordinate is not None:
            data["lat"], data["lng"] = site.coordinate.lat, site.coordinate.lng
        pipe.hset(f"{SEED_PREFIX}site:{site.id}", mapping=data)
        pipe.sadd(f"{SEED_PREFIX}site_ids", site.id)
        pipe.zadd(f"{SEED_PREFIX}capacity_leaderboard", {f"site:{site.id}": site.capacity})
        for metric in SEED_METRICS:
            pipe.execute_command(
                "TS.CREATE", _seed_key(site.id, metric), "RETENTION", SEED_RETENTION_MS,
                "LABELS", "site_id", site.id, "metric", metric, "type", "meter_reading",
            )  # fmt: skip
        if len(pipe) >= 4000:
            pipe.execute()
    pipe.execute()
    stamps = list(plan.timestamps_ms())
    written = 0
    pending = 0
    for model in plan.models:
        keys = [_seed_key(model.site.id, m) for m in SEED_METRICS]
        args: list[Any] = []
        for ms, reading in zip(stamps, plan.site_readings(model), strict=True):
            net = reading.wh_generated - reading.wh_used
            for key, value in zip(
                keys, (reading.wh_generated, reading.wh_used, reading.temp_c, net), strict=True
            ):
                args += (key, ms, value)
        pipe.execute_command("TS.MADD", *args)
        written += len(stamps)
        pending += len(args)
        if pending >= 60_000:
            pipe.execute()
            pending = 0
    pipe.execute()
    return {
        "sites": len(plan.models),
        "readings": written,
        "seconds": time.perf_counter() - started,
        "used_memory_delta": int(client.info("memory")["used_memory"]) - before,
    }


def _seed_key(site_id: int, metric: str) -> str:
    return f"{SEED_PREFIX}ts:site:{site_id}:{metric}"


# -- (d) mixed load ------------------------------------------------------------------------------------
def mixed_spec(
    base_url: str, plan: SamplePlan, sample: list[int], args: argparse.Namespace, watch: dict[str, list[int]]
) -> dict[str, Any]:
    """Writers posting each site's next readings (after the loaded ones), readers polling."""
    room = int(time.time() * 1000) + SKEW_MARGIN_MS - (to_ms(plan.end) + 1000)
    spacing = 1000
    if room // (args.mixed_batch * spacing) < 1:
        spacing = max(10, room // args.mixed_batch)
    per_site = max(
        1, min(room // (args.mixed_batch * spacing), math.ceil(args.mixed_max_batches / args.sites))
    )
    writers = {
        "name": "POST readings batch",
        "method": "POST",
        "connections": args.mixed_writers,
        "readings": {
            "site_ids": random.Random(args.seed).sample([s.id for s in plan.sites], k=len(plan.sites)),
            "start_ms": to_ms(plan.end) + 1000,
            "interval_ms": spacing,
            "batch_size": args.mixed_batch,
            "per_site": per_site,
            "value_scale": spacing / (args.interval * 60_000),
            "seed": args.seed,
        },
    }
    routes = read_routes(plan, sample)
    readers = [
        {"name": name, "method": "GET", "connections": 1, "paths": routes[name]}
        for name in (
            "leaderboard generation top 10",
            "leaderboard capacity top 10",
            "24 h wh_generated, hourly avg",
            "summary",
        )
    ]
    return {
        "base_url": base_url,
        "seconds": args.mixed_seconds,
        "watch": watch,
        "streams": [writers, *readers],
    }


# -- output --------------------------------------------------------------------------------------------
def latency_rows(result: dict[str, Any], prefix: str = "") -> list[list[Any]]:
    rows = []
    for name, s in result["streams"].items():
        lat = s["latency_ms"]
        rows.append([prefix + name, s["requests"], lat["p50"], lat["p99"], lat["max"], s["errors"]])
    return rows


def cores(result: dict[str, Any]) -> str:
    cpu = result["cpu"]
    wall = max(cpu["run_wall_s"], 1e-9)
    parts = [f"client {cpu['run_s'] / wall:.2f}"]
    parts += [f"{name} {seconds / wall:.2f}" for name, seconds in cpu["watched"].items()]
    parts.append(f"other {cpu['other_s'] / wall:.2f}")
    return "cores used: " + ", ".join(parts)


def errors_of(result: dict[str, Any]) -> int:
    return sum(int(s["errors"]) for s in result["streams"].values())


def main() -> None:
    from redisolar.server import default_workers

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--interval", type=int, default=5, help="minutes between a site's readings")
    parser.add_argument("--seed", type=int, default=1, help="sample data seed (same data on every backend)")
    parser.add_argument("--baseline", type=Path, help="a directory holding another redisolar package")
    parser.add_argument("--workers", type=int, default=default_workers(), help="gunicorn workers (both)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (both)")
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per route")
    parser.add_argument("--baseline-requests", type=int, default=20, help="for the baseline's slow summary")
    parser.add_argument("--mixed-seconds", type=float, default=60.0)
    parser.add_argument("--mixed-writers", type=int, default=2, help="writer connections")
    parser.add_argument("--mixed-batch", type=int, default=100, help="readings per writer request")
    parser.add_argument(
        "--mixed-max-batches", type=int, default=20_000, help="writer bodies prepared, at most"
    )
    parser.add_argument("--skip-core", action="store_true", help="load only Redis Stack")
    args = parser.parse_args()
    stack_spec, plain_spec = find_stack_server(), find_plain_server()
    if stack_spec is None or (plain_spec is None and not args.skip_core):
        sys.exit("bench-fleet needs Redis Stack (make redis-stack) and a plain redis-server")
    ncores = os.cpu_count() or 1
    print(
        f"Fleet benchmark: {args.sites:,} sites x {args.days:g} days every {args.interval} min; "
        f"gunicorn {args.workers} workers x {args.threads} threads; {ncores} CPU cores",
        flush=True,
    )
    out: dict[str, Any] = {
        "git_at_start": git_state(),
        "config": {**vars(args), "baseline": str(args.baseline or ""), "cpu_cores": ncores},
    }
    failures = 0
    loads: list[dict[str, Any]] = []
    backends: list[tuple[str, ServerSpec]] = [("redistimeseries", stack_spec)]
    if not args.skip_core:
        assert plain_spec is not None
        backends.insert(0, ("core", plain_spec))
    with ExitStack() as stack:
        # (a) ------------------------------------------------------------------------------------------
        print("(a) redisolar load", flush=True)
        server: RedisServer | None = None
        for backend, spec in backends:
            server = RedisServer(spec)
            if backend == "redistimeseries":
                stack.enter_context(server)
            else:
                server.start()
            wait_machine_quiet()
            try:
                load = load_fleet(server, backend, args)
            finally:
                if backend != "redistimeseries":
                    server.stop()
            loads.append(load)
            print(
                f"  {backend:<16} {load['readings']:,} readings in {load['wall_s']:.1f} s "
                f"({load['readings_per_s_wall']:,.0f} readings/s; "
                f"the CLI says {load['cli_reported_s']:.1f} s), "
                f"{load['bytes_per_sample']:.1f} bytes/sample, {load['bytes_per_reading']:.1f} bytes/reading",
                flush=True,
            )
        out["load"] = loads
        assert server is not None
        plan = same_plan(args, loads[-1])
        ids = [s.id for s in plan.sites]
        sample = random.Random(args.seed).sample(ids, k=min(len(ids), args.requests))

        # (b) ------------------------------------------------------------------------------------------
        project = project_server(f"{server.url}/0", free_port(), args.workers, args.threads)
        stack.enter_context(project)
        assert server.pid is not None
        watch = {"server": [project.pid], "redis": [server.pid]}
        waited = wait_quiet([project.pid, server.pid])
        print(f"(b) {shell_line(project)}\n    (start-up work over after {waited:.0f} s)", flush=True)
        wait_machine_quiet()
        reads = sequential(project.base_url, read_routes(plan, sample), args.requests, watch)
        out["reads"] = {"command": shell_line(project), "startup_wait_s": waited, **reads}
        failures += errors_of(reads)
        print(f"    {cores(reads)}", flush=True)

        # (d) ------------------------------------------------------------------------------------------
        wait_quiet([project.pid, server.pid], timeout=60)
        wait_machine_quiet()
        mixed_load = mixed_spec(project.base_url, plan, sample, args, watch)
        print(f"(d) mixed load for {args.mixed_seconds:g} s", flush=True)
        mixed = run_loadgen(mixed_load)
        out["mixed"] = {"writers": mixed_load["streams"][0]["readings"] | {"site_ids": len(ids)}, **mixed}
        failures += errors_of(mixed)
        print(f"    {cores(mixed)}", flush=True)
        project.stop()

        # (c) ------------------------------------------------------------------------------------------
        baseline_reads: dict[str, Any] | None = None
        if args.baseline:
            seed_redis = stack.enter_context(RedisServer(stack_spec))
            assert seed_redis.pid is not None
            print(f"(c) baseline: writing the fleet into its layout on {seed_redis.url}", flush=True)
            written = write_seed_layout(seed_redis.client(), plan)
            print(f"    {written['readings']:,} readings in {written['seconds']:.1f} s", flush=True)
            base = baseline_server(
                args.baseline.resolve(), seed_redis.port, 0, free_port(), args.workers, args.threads
            )
            stack.enter_context(base)
            waited = wait_quiet([base.pid, seed_redis.pid])
            print(f"    {shell_line(base)}\n    (start-up work over after {waited:.0f} s)", flush=True)
            wait_machine_quiet()
            routes = {
                "summary": ["/api/analytics/summary"],
                "leaderboard capacity top 10": ["/api/analytics/leaderboards/capacity?limit=10"],
            }
            baseline_reads = sequential(
                base.base_url,
                routes,
                args.baseline_requests,
                {"server": [base.pid], "redis": [seed_redis.pid]},
            )
            out["baseline"] = {
                "command": shell_line(base),
                "layout": written,
                "startup_wait_s": waited,
                **baseline_reads,
            }
            print(f"    {cores(baseline_reads)}", flush=True)

    # -- tables ----------------------------------------------------------------------------------------
    print(f"\n(a) redisolar load: {args.sites:,} sites x {args.days:g} days every {args.interval} min")
    print(
        table(
            [
                "backend",
                "readings",
                "load s",
                "readings/s",
                "CLI's own s",
                "bytes/sample",
                "bytes/reading",
                "cores: cli",
                "redis",
                "other",
            ],
            [
                [
                    ld["backend"],
                    ld["readings"],
                    ld["wall_s"],
                    ld["readings_per_s_wall"],
                    ld["cli_reported_s"],
                    ld["bytes_per_sample"],
                    ld["bytes_per_reading"],
                    ld["cores"]["cli"],
                    ld["cores"]["redis"],
                    ld["cores"]["other"],
                ]
                for ld in loads
            ],
        )
    )
    print(f"\n(b) one client, sequential, {args.requests} requests per route (ms)")
    rows = latency_rows(reads)
    ratios: dict[str, float] = {}
    if baseline_reads is not None:
        rows += latency_rows(baseline_reads, "baseline: ")
        for name in baseline_reads["streams"]:
            mine = reads["streams"][name]["latency_ms"]["p50"]
            theirs = baseline_reads["streams"][name]["latency_ms"]["p50"]
            ratios[name] = theirs / mine
            rows.append([f"ratio baseline/project p50: {name}", "", ratios[name], "", "", ""])
    out["ratio_baseline_over_project_p50"] = ratios
    print(table(["route", "requests", "p50", "p99", "max", "errors"], rows))
    print(
        f"\n(d) mixed load, {args.mixed_seconds:g} s: "
        f"{args.mixed_writers} writer connections, one reader per route"
    )
    print(
        table(
            ["route", "requests", "req/s", "readings/s", "p50 ms", "p99 ms", "errors"],
            [
                [
                    name,
                    s["requests"],
                    s["requests_per_s"],
                    s["readings_per_s"] if s["readings"] else "",
                    s["latency_ms"]["p50"],
                    s["latency_ms"]["p99"],
                    s["errors"],
                ]
                for name, s in mixed["streams"].items()
            ],
        )
    )
    path = write_artifact("fleet", out)
    print(f"Raw figures: {path}")
    warn_if_code_changed(out["git_at_start"])
    if failures:
        for result in (reads, mixed):
            for name, s in result["streams"].items():
                for sample_error in s["error_samples"]:
                    print(f"  error in {name}: {sample_error}")
        sys.exit(f"the project answered {failures} errors")


if __name__ == "__main__":
    main()

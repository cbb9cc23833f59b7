"""``make bench-http``: HTTP batch ingest through the production server, optionally against a baseline.

    python -m bench.http [--baseline PATH] [--workers N] [--threads T] [--seconds S] [--rounds R]
                         [--connections C] [--sites N]

(Run it as a module: a script named ``http.py`` would shadow the standard library's ``http``.)

On one private Redis Stack server: the project served by ``redisolar serve``
(its own defaults, or ``--workers N --threads T``; database 0) and, with ``--baseline`` (e.g.
../shared/reference/seed-design), that directory's
``redisolar.app:create_app()`` under gunicorn with ``--baseline-workers`` × ``--baseline-threads``
(2 × cores × 4, the issue's setting; database 1). Both get
the same sites (``POST /api/sites/``) and the same load: ``POST /api/analytics/readings/<id>/batch``
with JSON arrays of 1,000 readings (``--batch-size``) of 500 sites (``--sites``), a reading every
30 s per site (``--interval-seconds``), each timestamp sent once (the seed's series refuse
duplicates), moving forward from 25 days ago (inside every retention window). The load generator is
``bench/loadgen.py`` in its own process (aiohttp, ``--connections`` concurrent connections, bodies
serialized before the clock starts); its own CPU use is reported so that it can be seen not to be
the bottleneck.

A short warm-up per server, then ``--rounds`` (5) timed runs of ``--seconds`` (15) each in alternation
(project, baseline, project, baseline, ...); the table shows medians. Raw figures:
``artifacts/bench-http.json``. Exit status 1 if the project answered any error.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    sys.exit("Run this as a module from the project root: python -m bench.http")

import argparse
import math
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import (
    Served,
    add_server_arguments,
    baseline_server,
    free_port,
    git_state,
    http_json,
    median,
    project_server,
    run_loadgen,
    shell_line,
    table,
    wait_machine_quiet,
    wait_quiet,
    warn_if_code_changed,
    write_artifact,
)
from redisolar.embedded import RedisServer, find_stack_server

MS_PER_DAY = 86_400_000
WINDOW_DAYS = 25  # readings go forward from this many days ago: inside the 30-day retention of both
SITES_PATH = "/api/sites/"
STREAM = "batch"


@dataclass
class Target:
    """One server under test and where its next readings start."""

    label: str
    served: Served
    cursor_ms: int
    end_ms: int
    rate: float = 0.0  # batches/s seen so far (sizes the next run's bodies)
    runs: list[dict[str, Any]] = field(default_factory=list)
    disturbed: list[dict[str, Any]] = field(default_factory=list)  # repeated: other processes were busy


def site_body(site_id: int) -> dict[str, Any]:
    """A site both apps accept (the seed's SiteSchema and the project's)."""
    return {
        "id": site_id,
        "capacity": round(3 + (site_id * 37 % 70) / 10, 1),
        "panels": 8 + site_id % 24,
        "address": f"{site_id} Benchmark Way",
        "city": "Oakland",
        "state": "CA",
        "postal_code": "94601",
        "coordinate": {"lat": 37.8 + (site_id % 100) / 1000, "lng": -122.27 + (site_id % 100) / 1000},
    }


def create_sites(target: Target, sites: int) -> None:
    for site_id in range(1, sites + 1):
        status, body = http_json("POST", target.served.base_url + SITES_PATH, site_body(site_id))
        if status != 201:
            raise SystemExit(f"{target.label}: POST {SITES_PATH} answered {status}: {body}")


def one_run(
    target: Target, args: argparse.Namespace, redis_pid: int, seconds: float, batches: int
) -> dict[str, Any]:
    """One timed run against ``target``: about ``batches`` bodies prepared, ``seconds`` of load."""
    step = args.interval_seconds * 1000
    room = (target.end_ms - target.cursor_ms) // (step * args.batch_size)
    per_site = max(1, min(room, math.ceil(batches / args.sites)))
    if room < 1:
        raise SystemExit(
            f"{target.label}: no fresh timestamps left in the {WINDOW_DAYS}-day window; "
            "use more --sites, fewer --rounds or --seconds, or a larger --interval-seconds"
        )
    spec = {
        "base_url": target.served.base_url,
        "seconds": seconds,
        "streams": [
            {
                "name": STREAM,
                "method": "POST",
                "connections": args.connections,
                "readings": {
                    "site_ids": list(range(1, args.sites + 1)),
                    "start_ms": target.cursor_ms,
                    "interval_ms": step,
                    "batch_size": args.batch_size,
                    "per_site": per_site,
                    "seed": len(target.runs) + 1,
                },
            }
        ],
    }
    spec["watch"] = {"server": [target.served.pid], "redis": [redis_pid]}
    target.cursor_ms += per_site * args.batch_size * step  # never re-sent, whether sent or not
    result = run_loadgen(spec)
    stream, cpu = result["streams"][STREAM], result["cpu"]
    wall = max(cpu["run_wall_s"], 1e-9)
    run = {
        "target": target.label,
        "prepared_batches": per_site * args.sites,
        "stream": stream,
        "cpu": cpu,
        "figures": {
            "readings_per_s": stream["readings_per_s"],
            "requests_per_s": stream["requests_per_s"],
            "p50_ms": stream["latency_ms"]["p50"],
            "p99_ms": stream["latency_ms"]["p99"],
            "errors": stream["errors"],
            "client_cores": cpu["run_s"] / wall,
            "server_cores": cpu["watched"]["server"] / wall,
            "redis_cores": cpu["watched"]["redis"] / wall,
            "other_cores": cpu["other_s"] / wall,
        },
    }
    target.rate = max(target.rate, stream["requests_per_s"])
    return run


def show_run(run: dict[str, Any], title: str) -> None:
    f, s = run["figures"], run["stream"]
    more = "  (bodies ran out)" if s["exhausted"] else ""
    print(
        f"  {title:<22} {f['readings_per_s']:>9,.0f} readings/s {f['requests_per_s']:7.1f} req/s  "
        f"p50 {f['p50_ms']:6.1f} ms  p99 {f['p99_ms']:6.1f} ms  errors {f['errors']}  "
        f"cores: client {f['client_cores']:.2f} server {f['server_cores']:.2f} redis {f['redis_cores']:.2f} "
        f"other {f['other_cores']:.2f}"
        f"{more}",
        flush=True,
    )
    for sample in s["error_samples"][:2]:
        print(f"      error: {sample}")


def summarize(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = runs[0]["figures"].keys()
    out = {k: median(r["figures"][k] for r in runs) for k in keys}
    out["errors"] = sum(r["figures"]["errors"] for r in runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, help="a directory holding another redisolar package")
    add_server_arguments(parser, baseline=True)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each timed run")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs per server (median)")
    parser.add_argument(
        "--connections", type=int, default=16, help="concurrent client connections (enough to keep both busy)"
    )
    parser.add_argument("--sites", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=1000, help="readings per request")
    parser.add_argument("--interval-seconds", type=int, default=30, help="between a site's readings")
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument(
        "--max-other",
        type=float,
        default=0.25,
        help="a run during which other processes used more cores than this is repeated",
    )
    parser.add_argument("--retries", type=int, default=2, help="repeats of a disturbed run, at most")
    args = parser.parse_args()
    stack = find_stack_server()
    if stack is None:
        sys.exit("bench-http needs Redis Stack (pip install -e '.[dev]'; make redis-stack)")
    cores = os.cpu_count() or 1
    print(
        f"HTTP batch ingest: {args.sites} sites, {args.batch_size:,} readings per POST, "
        f"{args.connections} connections; gunicorn {args.workers} workers x {args.threads} threads; "
        f"{args.rounds} runs of {args.seconds:g} s per server in alternation; {cores} CPU cores",
        flush=True,
    )
    git_at_start = git_state()
    now_ms = int(time.time() * 1000)
    step = args.interval_seconds * 1000
    start_ms = (now_ms - WINDOW_DAYS * MS_PER_DAY) // step * step
    end_ms = now_ms // step * step
    with ExitStack() as stack_ctx:
        redis = stack_ctx.enter_context(RedisServer(stack))
        assert redis.pid is not None
        redis_pid = redis.pid
        targets = [
            Target(
                "redisolar",
                project_server(f"{redis.url}/0", free_port(), args.workers, args.threads),
                start_ms,
                end_ms,
            )
        ]
        if args.baseline:
            base = baseline_server(
                args.baseline.resolve(),
                redis.port,
                1,
                free_port(),
                args.baseline_workers,
                args.baseline_threads,
            )
            targets.append(Target(f"baseline ({args.baseline.name})", base, start_ms, end_ms))
        for target in targets:
            stack_ctx.enter_context(target.served)
            print(f"  {target.label}: {shell_line(target.served)}", flush=True)
        wait_quiet([t.served.pid for t in targets] + [redis_pid], timeout=120)
        for target in targets:
            create_sites(target, args.sites)
        for target in targets:  # warm-up: not counted
            warm = one_run(target, args, redis_pid, args.warmup_seconds, 200)
            show_run(warm, f"{target.label} (warm-up)")
        for round_no in range(1, args.rounds + 1):
            for target in targets:
                for attempt in range(1 + args.retries):
                    wait_quiet([target.served.pid, redis_pid], timeout=60)
                    wait_machine_quiet()
                    batches = math.ceil(target.rate * args.seconds * 1.6) + 2 * args.connections
                    run = one_run(target, args, redis_pid, args.seconds, batches)
                    disturbed = run["figures"]["other_cores"] > args.max_other
                    show_run(run, f"{target.label} #{round_no}" + (" (disturbed)" if disturbed else ""))
                    if not disturbed or attempt == args.retries:
                        target.runs.append(run)
                        break
                    target.disturbed.append(run)
    results = {t.label: summarize(t.runs) for t in targets}
    rows = [
        [
            label,
            r["readings_per_s"],
            r["requests_per_s"],
            r["p50_ms"],
            r["p99_ms"],
            int(r["errors"]),
            r["client_cores"],
            r["server_cores"],
            r["redis_cores"],
            r["other_cores"],
        ]
        for label, r in results.items()
    ]
    ratio: dict[str, float] = {}
    if len(targets) == 2:
        mine, base_r = results[targets[0].label], results[targets[1].label]
        ratio = {
            "readings_per_s": mine["readings_per_s"] / base_r["readings_per_s"],
            "p50_latency": base_r["p50_ms"] / mine["p50_ms"],
            "p99_latency": base_r["p99_ms"] / mine["p99_ms"],
        }
        rows.append(
            [
                "ratio project/baseline",
                ratio["readings_per_s"],
                ratio["readings_per_s"],
                ratio["p50_latency"],
                ratio["p99_latency"],
                "",
                "",
                "",
                "",
                "",
            ]
        )
    print(
        f"\nMedians of {args.rounds} runs. Cores: CPU seconds / wall seconds (the machine has {cores}); "
        "'other': processes outside the benchmark. Latency ratios: baseline / project."
    )
    print(
        table(
            [
                "server",
                "readings/s",
                "requests/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "client cores",
                "server cores",
                "redis cores",
                "other cores",
            ],
            rows,
        )
    )
    path = write_artifact(
        "http",
        {
            "git_at_start": git_at_start,
            "config": {
                **vars(args),
                "baseline": str(args.baseline) if args.baseline else None,
                "cpu_cores": cores,
            },
            "commands": {t.label: shell_line(t.served) for t in targets},
            "medians": results,
            "ratio_project_over_baseline": ratio,
            "runs": [run for t in targets for run in t.runs],
            "disturbed_runs_repeated": [run for t in targets for run in t.disturbed],
        },
    )
    print(f"Raw figures: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    warn_if_code_changed(git_at_start)
    if results[targets[0].label]["errors"]:
        sys.exit("the project answered errors (see above)")


if __name__ == "__main__":
    main()

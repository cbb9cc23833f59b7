"""What the trust boundary costs per request: ``AUTH_MODE=off`` vs ``required`` + rate limits.

    python -m bench.http_auth [--workers N] [--threads T] [--seconds S] [--rounds R] [--connections C]

(Part of ``make bench-http``.) On one private Redis Stack server, two ``redisolar serve`` servers with
the same workers and threads and the five sample sites each: **off** (``AUTH_MODE=off``, no rate
limits; database 0) and **keys** (``AUTH_MODE=required``, budgets of 10^9 requests per second so
that every request is checked and counted but none is refused; database 1), each request of the
latter carrying a key (an admin key for the POSTs, a read key for the GETs). Two loads, each alone:
one reading per ``POST /api/analytics/readings/<id>`` (time-ordered, never repeated) and
``GET /api/analytics/readings/<id>/latest``. ``--rounds`` (3) timed runs of ``--seconds`` (10) each, in
alternation (off, keys, off, keys, ...) per load; the table shows medians with min–max, the ratio
keys/off, and the Redis commands per request (``total_commands_processed`` per request, which
counts the commands scripts run too: the keys server's extra is the check's ``EVALSHA`` and the three
commands it runs; its round trips are counted by tests/test_auth.py). Raw figures:
``artifacts/bench-http-auth.json``; ``python -m bench.report`` puts them into ``docs/benchmarks.md``.
Exit status 1 if a server answered any error.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    sys.exit("Run this as a module from the project root: python -m bench.http_auth")

import argparse
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import redis

from bench.harness import (
    Served,
    add_server_arguments,
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
    write_artifact,
)
from redisolar.config import Config
from redisolar.embedded import RedisServer, find_stack_server
from redisolar.models.schemas import SiteSchema
from redisolar.sample_data import SEED_SITES
from redisolar.services import Settings, build_services
from redisolar.timeutil import from_ms

UNLIMITED = "1000000000/second"
LOADS = ("post one reading", "get latest")
STEP_MS = 1000  # a site's readings one second apart, each sent once


@dataclass
class Target:
    label: str
    served: Served
    db: int
    headers: dict[str, dict[str, str]]
    cursor_ms: int
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {load: [] for load in LOADS})


def keys_for(redis_url: str) -> dict[str, dict[str, str]]:
    """An admin key (for the POSTs) and a read key (for the GETs), made through the service layer."""
    services = build_services(Settings(redis=Config(redis_url=redis_url)))
    admin = services.create_api_key("admin", name="bench")[1]
    read = services.create_api_key("read", name="bench")[1]
    services.redis.close()
    return {LOADS[0]: {"Authorization": f"Bearer {admin}"}, LOADS[1]: {"X-API-Key": read}}


def create_sites(target: Target) -> None:
    for site in SEED_SITES:
        body = SiteSchema().dump(site)
        status, answer = http_json(
            "POST", target.served.base_url + "/api/sites/", body, headers=target.headers[LOADS[0]]
        )
        if status != 201:
            raise SystemExit(f"{target.label}: POST /api/sites/ answered {status}: {answer}")
        status, answer = http_json(
            "POST",
            f"{target.served.base_url}/api/analytics/readings/{site.id}",
            {
                "timestamp": from_ms(target.cursor_ms).isoformat(),
                "wh_generated": 1.0,
                "wh_used": 1.0,
                "temp_c": 20.0,
            },
            headers=target.headers[LOADS[0]],
        )
        if status != 201:
            raise SystemExit(f"{target.label}: first reading answered {status}: {answer}")


def stream_spec(target: Target, load: str, args: argparse.Namespace, requests: int) -> dict[str, Any]:
    site_ids = [site.id for site in SEED_SITES]
    if load == LOADS[1]:
        paths = [f"/api/analytics/readings/{s}/latest" for s in site_ids]
        return {"name": load, "method": "GET", "connections": args.connections, "paths": paths}
    per_site = requests // len(site_ids) + 1
    readings = {
        "site_ids": site_ids,
        "start_ms": target.cursor_ms + STEP_MS,
        "interval_ms": STEP_MS,
        "batch_size": 1,
        "per_site": per_site,
        "single": True,
        "seed": len(target.runs[load]) + 1,
    }
    target.cursor_ms += (per_site + 1) * STEP_MS
    return {"name": load, "method": "POST", "connections": args.connections, "readings": readings}


def one_run(
    target: Target, load: str, args: argparse.Namespace, redis_url: str, redis_pid: int
) -> dict[str, Any]:
    expected = max(r["figures"]["requests_per_s"] for r in target.runs[load]) if target.runs[load] else 3000
    spec = stream_spec(target, load, args, int(expected * args.seconds * 1.6) + 1000)
    spec["headers"] = target.headers[load] if target.label == "keys" else {}
    probe = redis.Redis.from_url(f"{redis_url}/{target.db}")
    commands_before = int(probe.info("stats")["total_commands_processed"])
    result = run_loadgen(
        {
            "base_url": target.served.base_url,
            "seconds": args.seconds,
            "streams": [{**spec, "headers": spec["headers"]}],
            "watch": {"server": [target.served.pid], "redis": [redis_pid]},
        }
    )
    commands = int(probe.info("stats")["total_commands_processed"]) - commands_before - 2  # the INFOs
    probe.close()
    stream, cpu = result["streams"][load], result["cpu"]
    wall = max(cpu["run_wall_s"], 1e-9)
    return {
        "target": target.label,
        "load": load,
        "stream": stream,
        "cpu": cpu,
        "figures": {
            "requests_per_s": stream["requests_per_s"],
            "p50_ms": stream["latency_ms"]["p50"],
            "p99_ms": stream["latency_ms"]["p99"],
            "errors": stream["errors"],
            "redis_commands_per_request": commands / max(stream["requests"], 1),
            "other_cores": cpu["other_s"] / wall,
        },
    }


def spread(runs: list[dict[str, Any]], key: str) -> tuple[float, float, float]:
    values = [r["figures"][key] for r in runs]
    return median(values), min(values), max(values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_server_arguments(parser, baseline=False)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    stack = find_stack_server()
    if stack is None:
        sys.exit("bench-http needs Redis Stack (pip install -e '.[dev]'; make redis-stack)")
    print(
        f"The cost of keys and rate limits: {', '.join(LOADS)}; {args.connections} connections; "
        "redisolar serve "
        f"{args.workers or 'default'} workers x {args.threads or 'default'} threads; "
        f"{args.rounds} runs of {args.seconds:g} s per "
        f"server and load, in alternation; {os.cpu_count()} CPU cores",
        flush=True,
    )
    git_at_start = git_state()
    start_ms = (int(time.time()) - 6 * 86_400) * 1000
    with ExitStack() as stack_ctx:
        server = stack_ctx.enter_context(RedisServer(stack))
        assert server.pid is not None
        off_env = {"REDISOLAR_AUTH_MODE": "off"}
        keys_env = {
            "REDISOLAR_AUTH_MODE": "required",
            "REDISOLAR_RATE_LIMIT_WRITES": UNLIMITED,
            "REDISOLAR_RATE_LIMIT_READS": UNLIMITED,
        }
        no_headers: dict[str, dict[str, str]] = {load: {} for load in LOADS}
        targets = [
            Target(
                "off",
                project_server(f"{server.url}/0", free_port(), args.workers, args.threads, off_env),
                0,
                no_headers,
                start_ms,
            ),
            Target(
                "keys",
                project_server(f"{server.url}/1", free_port(), args.workers, args.threads, keys_env),
                1,
                keys_for(f"{server.url}/1"),
                start_ms,
            ),
        ]
        for target in targets:
            stack_ctx.enter_context(target.served)
            print(f"  {target.label}: {shell_line(target.served)}", flush=True)
            create_sites(target)
        wait_quiet([t.served.pid for t in targets] + [server.pid], timeout=120)
        for load in LOADS:
            for target in targets:  # warm-up, not counted
                run_loadgen_warmup(target, load, args)
            for round_no in range(1, args.rounds + 1):
                for target in targets:
                    wait_quiet([target.served.pid, server.pid], timeout=60)
                    wait_machine_quiet()
                    run = one_run(target, load, args, server.url, server.pid)
                    target.runs[load].append(run)
                    f = run["figures"]
                    print(
                        f"  {load:<17} {target.label:<5} #{round_no}: {f['requests_per_s']:8,.0f} req/s  "
                        f"p50 {f['p50_ms']:5.1f} ms  p99 {f['p99_ms']:5.1f} ms  errors {f['errors']}  "
                        f"Redis commands/request {f['redis_commands_per_request']:.2f}  "
                        f"other {f['other_cores']:.2f}",
                        flush=True,
                    )
    rows, summary = [], {}
    for load in LOADS:
        off, keys = (t.runs[load] for t in targets)
        figures = {
            label: {
                k: spread(runs, k)
                for k in ("requests_per_s", "p50_ms", "p99_ms", "redis_commands_per_request")
            }
            for label, runs in (("off", off), ("keys", keys))
        }
        ratio = figures["keys"]["requests_per_s"][0] / figures["off"]["requests_per_s"][0]
        extra = (
            figures["keys"]["redis_commands_per_request"][0] - figures["off"]["redis_commands_per_request"][0]
        )
        summary[load] = {
            "figures": figures,
            "ratio_keys_over_off": ratio,
            "extra_redis_commands_per_request": extra,
        }
        for label in ("off", "keys"):
            rps, p50, p99, cmds = (
                figures[label][k]
                for k in ("requests_per_s", "p50_ms", "p99_ms", "redis_commands_per_request")
            )
            rows.append(
                [
                    load,
                    label,
                    f"{rps[0]:,.0f} ({rps[1]:,.0f}–{rps[2]:,.0f})",
                    f"{p50[0]:.1f}",
                    f"{p99[0]:.1f}",
                    f"{cmds[0]:.2f}",
                ]
            )
        rows.append([load, "keys/off", f"{ratio:.3f}", "", "", f"+{extra:.2f}"])
    errors = sum(r["figures"]["errors"] for t in targets for runs in t.runs.values() for r in runs)
    print(f"\nMedians (min–max) of {args.rounds} runs per server and load.")
    headers = ["load", "server", "requests/s", "p50 ms", "p99 ms", "Redis cmds/req (in scripts too)"]
    print(table(headers, rows))
    path = write_artifact(
        "http-auth",
        {
            "git_at_start": git_at_start,
            "config": {**vars(args), "cpu_cores": os.cpu_count()},
            "commands": {t.label: shell_line(t.served) for t in targets},
            "summary": summary,
            "runs": [r for t in targets for runs in t.runs.values() for r in runs],
        },
    )
    print(f"raw figures: {path}")
    if errors:
        sys.exit(f"{errors} requests answered an error")


def run_loadgen_warmup(target: Target, load: str, args: argparse.Namespace) -> None:
    spec = stream_spec(target, load, args, 2000)
    spec["headers"] = target.headers[load] if target.label == "keys" else {}
    run_loadgen({"base_url": target.served.base_url, "seconds": 2.0, "streams": [spec]})


if __name__ == "__main__":
    main()

"""``make bench-routes`` (part of ``make bench-http``): requests/s per route, the project beside a baseline.

    python -m bench.routes [--baseline PATH] [--workers N] [--threads T] [--seconds S] [--rounds R]
                           [--connections C] [--routes NAME,NAME]

(Run it as a module: ``python -m bench.routes``.) On one private Redis Stack server:

- the project (database 0), loaded by its own CLI, ``redisolar load --sites 5 --days 7 --seed 1 --yes``
  (the seed's five sites, 7 days of hourly readings up to the current hour), then served by
  ``redisolar serve`` (its own defaults, or ``--workers N --threads T``; rate limits off: the load
  comes from one address);
- with ``--baseline`` (e.g. ../shared/reference/seed-design): that directory's
  ``redisolar.app:create_app()`` under gunicorn with ``--baseline-workers`` × ``--baseline-threads``
  (2 × cores × 4, the issue's setting; database 1), given
  the same five sites and the same readings through its own API (``POST /api/sites/``, one
  ``POST .../readings/<id>/batch`` per site), then its leaderboards built by its own
  ``POST /api/analytics/leaderboards/update``.

Routes, each measured alone with ``--connections`` (16) connections from ``bench/loadgen.py`` in its own
process: ``GET /health``; ``GET /api/analytics/readings/<id>/latest`` (the five sites in turn);
``GET /api/analytics/leaderboards/capacity``; ``GET /api/analytics/summary``; and last (so that the
GETs see the loaded data only, which matters to the seed's summary, which reads every reading of 24
hours) ``POST /api/analytics/readings/<id>``: one reading per request, a JSON object, every timestamp
new and after the loaded data (2 ms apart per site, each sent once: the seed's series refuse
duplicates and round timestamps down to the millisecond).

Per route: a warm-up of ``--warmup-seconds`` per server, then ``--rounds`` (5) timed runs of
``--seconds`` (10) in alternation (project, baseline, project, ...), each after the servers and the
machine are quiet; a run during which other processes used more than ``--max-other`` cores is
repeated (``--retries`` times at most). Figures: median with min–max of requests/s, p50 and p99
latency, errors, and the cores used by the client, the servers, Redis and everything else
(``bench/procstat.py``); the ratio project / baseline of the medians; the issue-11 target of each
route. Raw figures: ``artifacts/bench-routes.json``; ``python -m bench.report`` turns them into
``docs/benchmarks.md``. Exit status 1 if the project answered any error.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    sys.exit("Run this as a module from the project root: python -m bench.routes")

import argparse
import math
import os
import re
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
from redisolar.sample_data import SamplePlan, plan_sample_data

SITES, DAYS, SEED = 5, 7, 1
LOADING = re.compile(r"^Loading (\d+) sites and ([\d,]+) readings .*?, (\S+) \.\. (\S+); seed (\d+)\)", re.M)
STEP_MS = 2  # between a site's new readings: distinct even after the seed's float -> int ms rounding
SKEW_MARGIN_MS = 240_000  # new readings at most this far past "now" (the project allows 300 s)
POST = "post one reading"


@dataclass(frozen=True)
class Route:
    """A measured route: its stream's method and paths, and issue 11's target (project / seed)."""

    name: str
    method: str
    pattern: str  # the route as the API documents it
    paths: tuple[str, ...]
    target: float


LATEST = "/api/analytics/readings/{id}/latest"
ROUTES = (
    Route("health", "GET", "/health", ("/health",), 2.0),
    Route("get latest", "GET", LATEST, tuple(LATEST.format(id=i) for i in range(1, SITES + 1)), 2.5),
    Route(
        "capacity leaderboard",
        "GET",
        "/api/analytics/leaderboards/capacity",
        ("/api/analytics/leaderboards/capacity",),
        2.5,
    ),
    Route("summary", "GET", "/api/analytics/summary", ("/api/analytics/summary",), 2.5),
    Route(POST, "POST", "/api/analytics/readings/{id}", (), 3.0),
)


@dataclass
class Target:
    """A server under test, the next timestamp of its new readings and its runs per route."""

    label: str
    served: Served
    cursor_ms: int = 0
    rate: dict[str, float] = field(default_factory=dict)  # best requests/s seen per route
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    disturbed: list[dict[str, Any]] = field(default_factory=list)


# -- data ----------------------------------------------------------------------------------------------
def load_project(redis_url: str) -> tuple[SamplePlan, str]:
    """``redisolar load`` (the CLI, in a subprocess) into ``redis_url``: the plan it loaded, the command."""
    script = Path(sys.executable).with_name("redisolar")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "redisolar"]
    command = [*cli, "load", "--sites", str(SITES), "--days", str(DAYS), "--seed", str(SEED), "--yes"]
    env = {**os.environ, "REDISOLAR_REDIS_URL": redis_url}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    loading = LOADING.search(done.stdout)
    if done.returncode != 0 or loading is None:
        raise SystemExit(f"redisolar load failed:\n{done.stdout}\n{done.stderr[-2000:]}")
    end = datetime.fromisoformat(loading.group(4))
    plan = plan_sample_data(SITES, DAYS, seed=int(loading.group(5)), now=end)
    if plan.end != end or plan.total_readings != int(loading.group(2).replace(",", "")):
        raise SystemExit(f"cannot rebuild the plan redisolar load loaded (end {plan.end} vs {end})")
    return plan, f"REDISOLAR_REDIS_URL={redis_url} {' '.join(command)}"


def load_baseline(base_url: str, plan: SamplePlan) -> None:
    """The plan's sites and readings through the baseline's own API, then its leaderboards built."""
    for model in plan.models:
        site = model.site
        body = {k: getattr(site, k) for k in ("id", "capacity", "panels", "address", "city", "state")}
        body["postal_code"] = site.postal_code
        if site.coordinate is not None:
            body["coordinate"] = {"lat": site.coordinate.lat, "lng": site.coordinate.lng}
        _expect(http_json("POST", f"{base_url}/api/sites/", body), 201, "POST /api/sites/")
        readings = [
            {
                "timestamp": _iso(ms),
                "wh_generated": r.wh_generated,
                "wh_used": r.wh_used,
                "temp_c": r.temp_c,
            }
            for ms, r in zip(plan.timestamps_ms(), plan.site_readings(model), strict=True)
        ]
        path = f"/api/analytics/readings/{site.id}/batch"
        _expect(http_json("POST", base_url + path, readings), 201, f"POST {path}")
    path = "/api/analytics/leaderboards/update"
    _expect(http_json("POST", base_url + path), 200, f"POST {path}")


def _expect(answer: tuple[int, Any], status: int, what: str) -> None:
    if answer[0] != status:
        raise SystemExit(f"baseline: {what} answered {answer[0]}: {str(answer[1])[:300]}")


def _iso(ms: int) -> str:
    at = datetime.fromtimestamp(ms / 1000, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


# -- runs ----------------------------------------------------------------------------------------------
def stream_spec(target: Target, route: Route, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    """The load generator's stream for ``route``: GET paths cycled, or enough new readings to POST."""
    spec: dict[str, Any] = {"name": route.name, "method": route.method, "connections": args.connections}
    if route.method == "GET":
        return {**spec, "paths": list(route.paths)}
    expected = target.rate.get(route.name, 3000.0)
    room = (int(time.time() * 1000) + SKEW_MARGIN_MS - target.cursor_ms) // STEP_MS
    per_site = min(room, math.ceil(expected * seconds * 1.6 / SITES) + args.connections)
    if per_site < args.connections:
        raise SystemExit(f"{target.label}: no room for new timestamps before now + {SKEW_MARGIN_MS} ms")
    readings = {
        "site_ids": list(range(1, SITES + 1)),
        "start_ms": target.cursor_ms,
        "interval_ms": STEP_MS,
        "batch_size": 1,
        "per_site": per_site,
        "single": True,
        "seed": len(target.runs.get(route.name, [])) + 1,
    }
    return {**spec, "readings": readings}


def one_run(
    target: Target, route: Route, args: argparse.Namespace, redis_pid: int, seconds: float
) -> dict[str, Any]:
    """One timed run of ``route`` against ``target``, with where the CPU went."""
    result = run_loadgen(
        {
            "base_url": target.served.base_url,
            "seconds": seconds,
            "streams": [stream_spec(target, route, args, seconds)],
            "watch": {"server": [target.served.pid], "redis": [redis_pid]},
        }
    )
    stream, cpu = result["streams"][route.name], result["cpu"]
    if route.method == "POST":  # bodies go out site-interleaved: the sent ones end here, per site
        target.cursor_ms += math.ceil(stream["requests"] / SITES) * STEP_MS
    wall = max(cpu["run_wall_s"], 1e-9)
    target.rate[route.name] = max(target.rate.get(route.name, 0.0), stream["requests_per_s"])
    return {
        "target": target.label,
        "route": route.name,
        "stream": stream,
        "cpu": cpu,
        "loadavg_1m": os.getloadavg()[0],
        "figures": {
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


def show_run(run: dict[str, Any], title: str) -> None:
    f, s = run["figures"], run["stream"]
    print(
        f"  {title:<40} {f['requests_per_s']:8,.0f} req/s  p50 {f['p50_ms']:6.1f} ms  "
        f"p99 {f['p99_ms']:6.1f} ms  errors {f['errors']}  cores: client {f['client_cores']:.2f} "
        f"server {f['server_cores']:.2f} redis {f['redis_cores']:.2f} other {f['other_cores']:.2f}"
        + ("  (bodies ran out)" if s["exhausted"] else ""),
        flush=True,
    )
    for sample in s["error_samples"][:2]:
        print(f"      error: {sample}")


def measure(targets: list[Target], route: Route, args: argparse.Namespace, redis_pid: int) -> None:
    """Warm-up, then ``--rounds`` alternating timed runs of ``route``, disturbed runs repeated."""
    for target in targets:
        show_run(
            one_run(target, route, args, redis_pid, args.warmup_seconds),
            f"{target.label} {route.name} (warm-up)",
        )
        target.runs[route.name] = []
    for round_no in range(1, args.rounds + 1):
        for target in targets:
            for attempt in range(1 + args.retries):
                wait_quiet([target.served.pid, redis_pid], timeout=60)
                wait_machine_quiet()
                run = one_run(target, route, args, redis_pid, args.seconds)
                disturbed = run["figures"]["other_cores"] > args.max_other
                title = f"{target.label} {route.name} #{round_no}" + (" (disturbed)" if disturbed else "")
                show_run(run, title)
                if not disturbed or attempt == args.retries:
                    target.runs[route.name].append(run)
                    break
                target.disturbed.append(run)


# -- figures -------------------------------------------------------------------------------------------
FIGURES = ("requests_per_s", "p50_ms", "p99_ms", "client_cores", "server_cores", "redis_cores", "other_cores")


def spread(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure: median, min and max over ``runs``; errors summed."""
    out: dict[str, Any] = {}
    for key in FIGURES:
        values = [r["figures"][key] for r in runs]
        out[key] = {"median": median(values), "min": min(values), "max": max(values)}
    out["errors"] = sum(r["figures"]["errors"] for r in runs)
    out["runs"] = len(runs)
    return out


def summarize(targets: list[Target]) -> dict[str, Any]:
    """Per route: each target's spreads, the ratio project / baseline of the medians, the target."""
    out: dict[str, Any] = {}
    for route in ROUTES:
        if route.name not in targets[0].runs:
            continue
        entry: dict[str, Any] = {
            "method": route.method,
            "path": route.pattern,
            "paths": list(route.paths),
            "target_ratio": route.target,
            "servers": {t.label: spread(t.runs[route.name]) for t in targets},
        }
        if len(targets) == 2:
            mine, base = (entry["servers"][t.label]["requests_per_s"]["median"] for t in targets)
            entry["ratio_project_over_baseline"] = mine / base
            entry["target_met"] = mine / base >= route.target
        out[route.name] = entry
    return out


def print_table(summary: dict[str, Any], labels: list[str]) -> None:
    rows = []
    for name, entry in summary.items():
        for label in labels:
            s = entry["servers"][label]
            rps = s["requests_per_s"]
            rows.append(
                [
                    name,
                    label,
                    f"{rps['median']:,.0f} ({rps['min']:,.0f}–{rps['max']:,.0f})",
                    s["p50_ms"]["median"],
                    s["p99_ms"]["median"],
                    s["errors"],
                    s["other_cores"]["max"],
                ]
            )
        if "ratio_project_over_baseline" in entry:
            met = "met" if entry["target_met"] else "NOT met"
            ratio = f"{entry['ratio_project_over_baseline']:.2f}x (target {entry['target_ratio']:g}x: {met})"
            rows.append([name, "ratio project/baseline", ratio, "", "", "", ""])
    print(
        table(
            [
                "route",
                "server",
                "requests/s median (min–max)",
                "p50 ms",
                "p99 ms",
                "errors",
                "other cores max",
            ],
            rows,
        )
    )


# -- main ----------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, help="a directory holding another redisolar package")
    add_server_arguments(parser, baseline=True)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each timed run")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs per route and server (median)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent client connections")
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument(
        "--routes", help="comma-separated route names (default: all): " + ", ".join(r.name for r in ROUTES)
    )
    parser.add_argument(
        "--max-other", type=float, default=0.25, help="repeat a run in which other processes used more cores"
    )
    parser.add_argument("--retries", type=int, default=2, help="repeats of a disturbed run, at most")
    return parser.parse_args()


def chosen_routes(args: argparse.Namespace) -> list[Route]:
    if not args.routes:
        return list(ROUTES)
    names = [n.strip() for n in args.routes.split(",")]
    unknown = set(names) - {r.name for r in ROUTES}
    if unknown:
        raise SystemExit(f"unknown route(s): {', '.join(sorted(unknown))}")
    return [r for r in ROUTES if r.name in names]


def main() -> None:
    args = parse_args()
    routes = chosen_routes(args)
    stack = find_stack_server()
    if stack is None:
        sys.exit("bench-routes needs Redis Stack (pip install -e '.[dev]'; make redis-stack)")
    cores = os.cpu_count() or 1
    print(
        f"Per route: {', '.join(r.name for r in routes)}; {args.connections} connections; "
        f"{args.workers or 'default'} workers x {args.threads or 'default'} threads; "
        f"{args.rounds} runs of {args.seconds:g} s per "
        f"route and server, in alternation; {cores} CPU cores",
        flush=True,
    )
    git_at_start = git_state()
    with ExitStack() as stack_ctx:
        redis = stack_ctx.enter_context(RedisServer(stack))
        assert redis.pid is not None
        plan, load_command = load_project(f"{redis.url}/0")
        new_from = int(plan.end.timestamp() * 1000) + 1000
        targets = [
            Target("redisolar", project_server(f"{redis.url}/0", free_port(), args.workers, args.threads))
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
            targets.append(Target(f"baseline ({args.baseline.name})", base))
        for target in targets:
            target.cursor_ms = new_from
            stack_ctx.enter_context(target.served)
            print(f"  {target.label}: {shell_line(target.served)}", flush=True)
        if args.baseline:
            load_baseline(targets[1].served.base_url, plan)
        wait_quiet([t.served.pid for t in targets] + [redis.pid], timeout=120)
        for route in routes:
            measure(targets, route, args, redis.pid)
    summary = summarize(targets)
    print(f"\nMedians (min–max) of {args.rounds} runs per route and server; the machine has {cores} cores.")
    print_table(summary, [t.label for t in targets])
    path = write_artifact(
        "routes",
        {
            "git_at_start": git_at_start,
            "config": {
                **vars(args),
                "baseline": str(args.baseline) if args.baseline else None,
                "cpu_cores": cores,
            },
            "data": {
                "project": load_command,
                "baseline": "the same plan through its API" if args.baseline else None,
            },
            "servers": {t.label: shell_line(t.served) for t in targets},
            "labels": {
                "project": targets[0].label,
                "baseline": targets[1].label if len(targets) > 1 else None,
            },
            "routes": summary,
            "runs": [r for t in targets for runs in t.runs.values() for r in runs],
            "disturbed_runs_repeated": [r for t in targets for r in t.disturbed],
        },
    )
    print(f"Raw figures: {path}")
    warn_if_code_changed(git_at_start)
    errors = sum(e["servers"][targets[0].label]["errors"] for e in summary.values())
    if errors:
        sys.exit(f"the project answered {errors} errors (see above)")


if __name__ == "__main__":
    main()

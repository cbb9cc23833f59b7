"""``make bench-profile``: what one request of each hot route costs, in process, on both backends.

    python -m bench.profile_routes --label before|after [--requests N] [--routes NAME,NAME]
                                   [--backends redistimeseries,core] [--out docs/profiles]

(Run it as a module from the project root.) One private Redis Stack server (never the shared one),
database 0 served by the ``redistimeseries`` backend and database 1 by ``core``
(``REDISOLAR_TIMESERIES``), each loaded by the CLI (``redisolar load --sites 5 --days 7 --seed 1
--yes``). The app is built by ``create_app`` with the settings ``redisolar serve`` runs with in the
route benchmark (built-in defaults + env, rate limits off, ``AUTH_MODE`` default) and called as a
WSGI application in a loop (no HTTP server, no test client: a fixed environ per request), so
the figures are the app's own cost:

- **Python CPU per request** (``time.process_time``, µs) over ``--requests`` requests, unprofiled;
- **Redis round trips per request** (socket writes of the app's connections), **commands per
  request** (``INFO commandstats`` deltas; commands run inside scripts count too, so EVALSHA and
  what it calls are both listed) and **Redis CPU per request** (``INFO cpu`` user + sys deltas);
- a **cProfile** of the same number of requests: the top 25 entries by cumulative and by own time.

Routes: ``post`` (``POST /api/analytics/readings/<id>``, one reading, every timestamp new),
``latest``, ``capacity``, ``summary``, ``health``. Each route's text goes to
``<out>/<label>-<route>.txt``, the figures of all routes to ``<out>/<label>-totals.txt``.
The machine may be busy: CPU per request and commands per request are robust to that, wall time is not
reported.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    sys.exit("Run this as a module from the project root: python -m bench.profile_routes")

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from redis.connection import AbstractConnection

from bench.harness import NO_RATE_LIMITS, git_state
from redisolar.embedded import RedisServer, find_stack_server

SITES, DAYS, SEED = 5, 7, 1
ROUTES = ("post", "latest", "capacity", "summary", "health")
BACKENDS = ("redistimeseries", "core")
TOP = 25


@dataclass(frozen=True)
class Figures:
    """One route on one backend: costs per request."""

    python_us: float
    round_trips: float
    commands: float
    redis_us: float
    by_command: dict[str, float]


def main() -> None:
    args = parse_args()
    spec = find_stack_server()
    if spec is None:
        sys.exit("bench-profile needs Redis Stack (make redis-stack)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    texts: dict[str, list[str]] = {route: [] for route in args.routes}
    summary: list[str] = [_header(args)]
    with RedisServer(spec) as server:
        for db, backend in enumerate(args.backends):
            url = f"{server.url}/{db}"
            env = {"REDISOLAR_REDIS_URL": url, "REDISOLAR_TIMESERIES": backend}
            _load(env)
            with _environment(env):
                app = _app()
            stats_client = server.client()
            rows = []
            for route in args.routes:
                call = _caller(app, route)
                figures = measure(call, stats_client, args.requests)
                profile = profiled(call, args.requests)
                rows.append((route, figures))
                texts[route].append(_route_text(route, backend, figures, profile))
            summary.append(_summary_table(backend, rows))
    for route, parts in texts.items():
        (out / f"{args.label}-{route}.txt").write_text(_header(args) + "\n" + "\n".join(parts))
    (out / f"{args.label}-totals.txt").write_text("\n".join(summary))
    print("\n".join(summary))
    print(f"Profiles: {out}/{args.label}-<route>.txt")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default="after", help="file name prefix: before, after, ...")
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument("--routes", default=",".join(ROUTES), help=f"comma-separated: {', '.join(ROUTES)}")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated time-series backends")
    parser.add_argument("--out", default="docs/profiles", help="folder of the profile files")
    args = parser.parse_args()
    args.routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for route in args.routes:
        if route not in ROUTES:
            parser.error(f"unknown route {route!r}: use {', '.join(ROUTES)}")
    return args


# -- the app ----------------------------------------------------------------------------------------
def _load(env: dict[str, str]) -> None:
    script = Path(sys.executable).with_name("redisolar")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "redisolar"]
    command = [*cli, "load", "--sites", str(SITES), "--days", str(DAYS), "--seed", str(SEED), "--yes"]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"redisolar load failed:\n{done.stdout}\n{done.stderr[-2000:]}")


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    instance = tempfile.mkdtemp(prefix="redisolar-profile-instance-")
    given = {**env, **NO_RATE_LIMITS, "REDISOLAR_INSTANCE_PATH": instance}
    saved = {name: os.environ.get(name) for name in given}
    os.environ.update(given)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _app() -> Any:
    from redisolar.app import create_app

    return create_app("bench")


def _environ(method: str, path: str, body: bytes = b"") -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8081",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8081",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body:
        environ["CONTENT_TYPE"] = "application/json"
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def _caller(app: Any, route: str) -> Callable[[], None]:
    """One request of ``route`` per call (a POST carries a new timestamp each time)."""
    paths = {
        "latest": [f"/api/analytics/readings/{i}/latest" for i in range(1, SITES + 1)],
        "capacity": ["/api/analytics/leaderboards/capacity"],
        "summary": ["/api/analytics/summary"],
        "health": ["/health"],
    }
    counter = iter(range(10**9))
    start_ms = int(time.time() * 1000) + 1000
    expected = 201 if route == "post" else 200

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        if int(status[:3]) != expected:
            raise RuntimeError(f"{route}: {status}")

    def call() -> None:
        n = next(counter)
        if route == "post":
            site = n % SITES + 1
            at = datetime.fromtimestamp((start_ms + n) / 1000, UTC).isoformat()
            body = json.dumps({"timestamp": at, "wh_generated": 12.5, "wh_used": 3.0, "temp_c": 21.0})
            environ = _environ("POST", f"/api/analytics/readings/{site}", body.encode())
        else:
            options = paths[route]
            environ = _environ("GET", options[n % len(options)])
        result = app(environ, start_response)
        try:
            for _ in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    return call


# -- measuring --------------------------------------------------------------------------------------
@contextmanager
def _counting_sends() -> Iterator[list[int]]:
    """Count the app's socket writes to Redis (one per command or pipeline: its round trips)."""
    sends = [0]
    original = AbstractConnection.send_packed_command

    def send(self: Any, command: Any, check_health: bool = True) -> None:
        sends[0] += 1
        original(self, command, check_health)

    AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
    try:
        yield sends
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def _commandstats(client: redis.Redis) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})


def _redis_cpu(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def measure(call: Callable[[], None], client: redis.Redis, requests: int) -> Figures:
    for _ in range(min(200, requests)):  # warm-up: scripts loaded, caches filled
        call()
    before_cmds, before_cpu = _commandstats(client), _redis_cpu(client)
    with _counting_sends() as sends:
        started = time.process_time()
        for _ in range(requests):
            call()
        python = time.process_time() - started
    after_cpu, after_cmds = _redis_cpu(client), _commandstats(client)
    after_cmds["info"] -= 2  # this function's own INFO calls (one cpu, one commandstats) in between
    delta = {k: (after_cmds[k] - before_cmds.get(k, 0)) / requests for k in after_cmds}
    delta = {k: v for k, v in delta.items() if v > 0}
    return Figures(
        python_us=python / requests * 1e6,
        round_trips=sends[0] / requests,
        commands=sum(delta.values()),
        redis_us=(after_cpu - before_cpu) / requests * 1e6,
        by_command=dict(sorted(delta.items(), key=lambda kv: -kv[1])),
    )


def profiled(call: Callable[[], None], requests: int) -> str:
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(requests):
        call()
    profile.disable()
    parts = []
    for order in ("cumulative", "tottime"):
        stream = io.StringIO()
        stats = pstats.Stats(profile, stream=stream)
        stats.strip_dirs().sort_stats(order).print_stats(TOP)
        text = stream.getvalue().strip()
        parts.append(f"--- top {TOP} by {order} ({requests} requests) ---\n{text[text.find('ncalls') :]}")
    return "\n\n".join(parts)


# -- reports ----------------------------------------------------------------------------------------
def _header(args: argparse.Namespace) -> str:
    state = git_state()
    load = os.getloadavg()
    changed = " (+ uncommitted changes in redisolar/)" if state.get("redisolar_changed") else ""
    return (
        f"bench/profile_routes.py --label {args.label} --requests {args.requests}; "
        f"commit {state.get('commit', '?')[:12]}{changed}; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average {load[0]:.2f} on {os.cpu_count()} cores\n"
    )


def _route_text(route: str, backend: str, f: Figures, profile: str) -> str:
    commands = ", ".join(f"{name} {calls:.2f}" for name, calls in f.by_command.items())
    return (
        f"=== {route} on {backend} ===\n"
        f"Python CPU {f.python_us:.0f} us/request; Redis CPU {f.redis_us:.0f} us/request; "
        f"{f.round_trips:.2f} round trips/request; {f.commands:.2f} Redis commands/request\n"
        f"commands per request (INFO commandstats; script-internal calls included): {commands}\n\n"
        f"{profile}\n"
    )


def _summary_table(backend: str, rows: list[tuple[str, Figures]]) -> str:
    lines = [
        f"backend {backend}",
        "| route | Python CPU us/req | Redis CPU us/req | round trips/req | Redis commands/req |",
        "|---|---|---|---|---|",
    ]
    for route, f in rows:
        lines.append(
            f"| {route} | {f.python_us:.0f} | {f.redis_us:.0f} | {f.round_trips:.2f} | {f.commands:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

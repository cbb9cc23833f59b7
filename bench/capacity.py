"""``make bench-capacity``: the figures of the capacity plan (``docs/capacity.md``), measured on private
servers of both backends.

    python -m bench.capacity [--sites 200] [--days 2] [--posts 1500] [--split 600] [--requests 100]
                             [--rounds 3] [--backends core,redistimeseries]

Per backend (core on the plain ``redis-server``, redistimeseries on Redis Stack) and per round, on a
fresh private server, through the app itself (``create_app`` in this process, the Flask test client:
the same Redis commands as ``redisolar serve``, with ``AUTH_MODE=required``, an API key and rate
limits on, as production runs):

1. **memory**: ``used_memory`` before and after ``--sites`` sites (``insert_many``), then after
   ``--days`` days of readings every 5 minutes per site (the ingest use case, batches of 2,000):
   bytes per site, per reading and per sample (a reading holds 3 measured values). The Lua script
   cache is left out (``used_memory_scripts`` delta).
2. **write cost**: ``--posts`` ``POST /api/analytics/readings/<id>`` of one reading each (the sites in
   turn, every timestamp new and after the loaded data), as a fleet of 5-minute meters sends them:
   Redis commands per reading, their ``INFO commandstats`` microseconds and the server's ``used_cpu``
   (user + sys: the command work plus its network I/O) per reading.
3. **where the write cost lands**: ``--split`` more single readings written by the ingest's own two
   steps, the series write (slot ``{site:ID}``) and each derived family (script + key pattern: the day
   board ``{lb:DAY}``, the fleet hour ``{fh:HOUR}``, last-seen, ...) measured apart: ``used_cpu`` per
   call of each; these are the per-key rates the hot-key table compares.
4. **reads per dashboard view**: the requests one poll of each dashboard page makes
   (``redisolar/web/static/dashboard.js``: the fleet page's ``refresh``, the site page's ``refresh``
   with its defaults, 24 h raw), each sent ``--requests`` times: commands and ``used_cpu`` per request
   and per poll.

Median over ``--rounds`` (≥ 3 for the plan) with min–max. Raw figures in
``artifacts/bench-capacity.json`` (``$REDISOLAR_BENCH_ARTIFACTS``); ``python -m bench.capacity_plan``
turns them into the tables of ``docs/capacity.md``. One process, one Redis at a time: the figures are
server CPU per unit of work, which a busy machine distorts far less than a throughput.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    sys.exit("Run this as a module from the project root: python -m bench.capacity")

import argparse
import os
import re
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from flask import Flask
from flask.testing import FlaskClient

from bench.harness import git_state, table, warn_if_code_changed, write_artifact
from redisolar.app import ENV_INSTANCE_PATH, create_app, get_services
from redisolar.dao.scripts import ScriptCall, run_scripts
from redisolar.embedded import RedisServer, ServerSpec, find_plain_server, find_stack_server
from redisolar.sample_data import SamplePlan, batched, plan_sample_data
from redisolar.services.ingest import derived_calls, ingest_readings
from redisolar.timeutil import from_ms, to_ms, utcnow

INTERVAL_MINUTES = 5
SAMPLES_PER_READING = 3  # wh_generated, wh_used, temp_c (net generation is derived)
STEP_MS = 1_000  # the posted readings of a site, a second apart after its loaded data
DASHBOARD_REFRESH_S = 7.0  # dashboard.js REFRESH_MS default (data-refresh-ms="7000")


# -- what Redis says about itself -----------------------------------------------------------------------
@dataclass(frozen=True)
class Meter:
    """A server's counters at one moment: CPU seconds, command calls and microseconds (INFO excluded)."""

    cpu_s: float
    calls: int
    usec: int
    memory: int
    scripts_memory: int


def meter(client: redis.Redis) -> Meter:
    info = client.info("everything")
    stats = [(k, v) for k, v in info.items() if k.startswith("cmdstat_") and k != "cmdstat_info"]
    return Meter(
        cpu_s=float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
        calls=sum(int(v["calls"]) for _, v in stats),
        usec=sum(int(v["usec"]) for _, v in stats),
        memory=int(info["used_memory"]),
        scripts_memory=int(info.get("used_memory_scripts", 0)),
    )


@contextmanager
def measured(client: redis.Redis, units: int, into: dict[str, float]) -> Iterator[None]:
    """Fill ``into`` with commands, command µs and CPU µs per unit of the work done in the block."""
    before = meter(client)
    yield
    after = meter(client)
    into["commands"] = (after.calls - before.calls) / units
    into["command_us"] = (after.usec - before.usec) / units
    into["cpu_us"] = (after.cpu_s - before.cpu_s) * 1e6 / units


# -- one round on one backend ---------------------------------------------------------------------------
def round_on(spec: ServerSpec, backend: str, args: argparse.Namespace) -> dict[str, Any]:
    with RedisServer(spec) as server:
        app = create_app("capacity", app_config(server, backend))
        try:
            return measure_app(app, server.client(), args)
        finally:
            get_services(app).redis.close()


def app_config(server: RedisServer, backend: str) -> dict[str, Any]:
    """Production-like: keys required, rate limits on (high enough for one address's benchmark)."""
    generous = "100000000/minute"
    return {
        "REDIS_URL": f"{server.url}/0",
        "TIMESERIES_BACKEND": backend,
        "AUTH_MODE": "required",
        "RATE_LIMIT_WRITES": generous,
        "RATE_LIMIT_READS": generous,
    }


def measure_app(app: Flask, client: redis.Redis, args: argparse.Namespace) -> dict[str, Any]:
    services = get_services(app)
    _, secret = services.create_api_key("admin", name="capacity")
    http = app.test_client()
    http.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    plan = plan_sample_data(args.sites, args.days, INTERVAL_MINUTES, seed=1, now=_plan_end(args))
    result = {"memory": load_and_weigh(app, client, plan)}
    result["post_one_reading"] = post_readings(http, client, plan, args.posts)
    result["split"] = split_write(app, client, plan, args.split, first=args.posts // args.sites + 1)
    result["requests"] = dashboard_requests(http, client, plan, args.requests)
    return result


def _plan_end(args: argparse.Namespace) -> datetime:
    """The loaded data ends early enough that every posted reading is still in the past."""
    per_site = (args.posts + args.split) // args.sites + 2
    return utcnow() - timedelta(milliseconds=per_site * STEP_MS + 60_000)


def load_and_weigh(app: Flask, client: redis.Redis, plan: SamplePlan) -> dict[str, float]:
    services = get_services(app)
    empty = meter(client)
    services.sites.insert_many(*plan.sites)
    sites = meter(client)
    for batch in batched(plan.readings(), 2000):
        ingest_readings(services, batch)
    loaded = meter(client)
    readings = plan.total_readings
    data = (loaded.memory - loaded.scripts_memory) - (sites.memory - sites.scripts_memory)
    return {
        "sites": len(plan.models),
        "readings": readings,
        "bytes_per_site": (sites.memory - empty.memory) / len(plan.models),
        "bytes_per_reading": data / readings,
        "bytes_per_sample": data / (readings * SAMPLES_PER_READING),
        "keys": float(client.dbsize()),
    }


def new_reading(plan: SamplePlan, index: int, nth: int) -> tuple[int, dict[str, Any]]:
    """The ``nth`` new reading of the ``index``-th site: (site id, JSON body)."""
    site = plan.models[index].site
    ms = to_ms(plan.end) + nth * STEP_MS
    when = from_ms(ms).isoformat()
    body = {"timestamp": when, "wh_generated": 250.0 + nth, "wh_used": 120.0, "temp_c": 21.5}
    return site.id, body


def post_readings(http: FlaskClient, client: redis.Redis, plan: SamplePlan, posts: int) -> dict[str, float]:
    sites = len(plan.models)
    bodies = [new_reading(plan, i % sites, i // sites + 1) for i in range(posts)]
    figures: dict[str, float] = {}
    with measured(client, posts, figures):
        for site_id, body in bodies:
            response = http.post(f"/api/analytics/readings/{site_id}", json=body)
            if response.status_code != 201:
                raise SystemExit(f"POST reading answered {response.status_code}: {response.get_data()!r}")
    return figures


def family(call: ScriptCall, prefix: str) -> str:
    """A derived call's family: its script and its first key, unprefixed, with the numbers as N."""
    key = re.sub(r"\d+", "N", call.keys[0].removeprefix(prefix)) if call.keys else "-"
    return f"{call.script.name} {key}"


def split_write(app: Flask, client: redis.Redis, plan: SamplePlan, count: int, first: int) -> dict[str, Any]:
    """Single readings through the ingest's two steps, each step (and each derived family) measured
    apart: used_cpu and commands per call."""
    services = get_services(app)
    series, prefix = services.timeseries, services.settings.redis.redis_key_prefix
    sites = len(plan.models)
    records = []
    for i in range(count):
        site_id, body = new_reading(plan, i % sites, first + i // sites)
        ms = to_ms(datetime.fromisoformat(body["timestamp"]))
        records.append((site_id, [(ms, body["wh_generated"], 120.0, 21.5)]))
    outcomes = []
    figures: dict[str, Any] = {"series_write": {}}
    with measured(client, count, figures["series_write"]):
        for site_id, rows in records:
            outcomes.extend(series.write_records({site_id: rows}, require_sites=True).outcomes)
    by_family: dict[str, list[ScriptCall]] = defaultdict(list)
    for outcome in outcomes:
        for call in derived_calls(series, [outcome]):
            by_family[family(call, prefix)].append(call)
    for name, calls in sorted(by_family.items()):
        figures[name] = {"calls_per_reading": len(calls) / count}
        with measured(client, len(calls), figures[name]):
            for call in calls:
                run_scripts(client, [call])
    return figures


def dashboard_polls(plan: SamplePlan) -> dict[str, list[tuple[str, str]]]:
    """The requests of one poll of each page (dashboard.js ``fleetPage``/``sitePage`` ``refresh``)."""
    site = plan.models[0].site.id
    end = plan.end
    day = f"start={(end - timedelta(hours=24)).isoformat()}&end={end.isoformat()}&aggregation=raw"
    day = day.replace("+", "%2B")
    charts = [(f"chart {m}", f"/api/analytics/readings/{site}/{m}?{day}") for m in CHART_METRICS]
    return {
        "fleet page": [
            ("summary", "/api/analytics/summary"),
            ("sites (map)", "/api/sites"),
            ("capacity board", "/api/analytics/leaderboards/capacity"),
        ],
        "site page": [
            ("site", f"/api/sites/{site}"),
            ("latest", f"/api/analytics/readings/{site}/latest"),
            *charts,
            ("rank", f"/api/analytics/leaderboards/capacity/site/{site}?context=2"),
        ],
    }


CHART_METRICS = ("wh_generated", "wh_used", "net_generation", "temp_c")  # site.html's four charts


def dashboard_requests(
    http: FlaskClient, client: redis.Redis, plan: SamplePlan, repeat: int
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for page, requests in dashboard_polls(plan).items():
        per_request = {name: _request_cost(http, client, path, repeat) for name, path in requests}
        figures[page] = {
            "requests_per_poll": len(requests),
            "per_request": per_request,
            "per_poll": {k: sum(r[k] for r in per_request.values()) for k in ("commands", "cpu_us")},
        }
    return figures


def _request_cost(http: FlaskClient, client: redis.Redis, path: str, repeat: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    with measured(client, repeat, figures):
        for _ in range(repeat):
            response = http.get(path)
            if response.status_code != 200:
                raise SystemExit(f"GET {path} answered {response.status_code}: {response.get_data()!r}")
    return figures


# -- rounds, medians, output ----------------------------------------------------------------------------
def summarize(rounds: list[dict[str, Any]]) -> Any:
    """The same nested shape with every number as {median, min, max, runs}."""
    first = rounds[0]
    if isinstance(first, dict):
        return {k: summarize([r[k] for r in rounds]) for k in first}
    values = [float(v) for v in rounds]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def backends(names: str) -> list[tuple[str, ServerSpec]]:
    found: list[tuple[str, ServerSpec]] = []
    for name in names.split(","):
        spec = find_plain_server() if name == "core" else find_stack_server()
        if spec is None:
            raise SystemExit(
                f"no server for the {name} backend (make redis-stack; apt-get install redis-server)"
            )
        found.append((name, spec))
    return found


def print_tables(results: dict[str, Any]) -> None:
    rows = []
    for backend, r in results.items():
        m, w = r["memory"], r["post_one_reading"]
        rows.append([backend, _mmm(m["bytes_per_sample"]), _mmm(m["bytes_per_site"]), _mmm(w["cpu_us"]),
                     _mmm(w["command_us"]), w["commands"]["median"]])  # fmt: skip
    print(table(["backend", "B/sample", "B/site", "cpu us/reading", "cmd us/reading", "cmds"], rows))
    for backend, r in results.items():
        split = [[name, f.get("calls_per_reading", {"median": 1.0})["median"], _mmm(f["cpu_us"]),
                  f["commands"]["median"]] for name, f in r["split"].items()]  # fmt: skip
        print(f"\n{backend}: single-reading write, per call")
        print(table(["step", "calls/reading", "cpu us/call", "cmds/call"], split))
        for page, p in r["requests"].items():
            print(f"\n{backend}: {page}, one poll = {p['requests_per_poll']['median']:.0f} requests")
            rows = [[n, _mmm(c["cpu_us"]), c["commands"]["median"]] for n, c in p["per_request"].items()]
            print(table(["request", "cpu us", "cmds"], rows))


def _mmm(figure: dict[str, Any]) -> str:
    return f"{figure['median']:.1f} ({figure['min']:.1f}-{figure['max']:.1f})"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sites", type=int, default=200, help="sites loaded")
    parser.add_argument("--days", type=float, default=2.0, help="days of 5-minute readings per site")
    parser.add_argument("--posts", type=int, default=1500, help="single-reading POSTs timed")
    parser.add_argument("--split", type=int, default=600, help="single readings written step by step")
    parser.add_argument("--requests", type=int, default=100, help="repeats of each dashboard request")
    parser.add_argument("--rounds", type=int, default=3, help="fresh servers per backend (median)")
    parser.add_argument("--backends", default="core,redistimeseries")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, run: Callable[..., dict[str, Any]] = round_on) -> None:
    args = parse_args(argv)
    os.environ[ENV_INSTANCE_PATH] = tempfile.mkdtemp(prefix="redisolar-capacity-instance-")  # no dev.cfg
    at_start = git_state()
    results: dict[str, Any] = {}
    for backend, spec in backends(args.backends):
        rounds = []
        for n in range(args.rounds):
            print(f"{backend}: round {n + 1} of {args.rounds}", flush=True)
            rounds.append(run(spec, backend, args))
        results[backend] = summarize(rounds)
    print_tables(results)
    constants = {"interval_minutes": INTERVAL_MINUTES, "dashboard_refresh_s": DASHBOARD_REFRESH_S}
    path = write_artifact("capacity", {"settings": vars(args), **constants, "backends": results})
    print(f"\nraw figures: {path}")
    warn_if_code_changed(at_start)


if __name__ == "__main__":
    main()

"""``make bench-cluster``: the API on one Redis node beside a 3-master Redis Cluster, same load.

    python -m bench.cluster [--backends core,redistimeseries] [--sites 30] [--seconds 5] [--rounds 3]
                            [--connections 16] [--routes NAME,NAME] [--workers N] [--threads T]

(Run it as a module: ``python -m bench.cluster``.) Per backend (core on the plain ``redis-server``,
redistimeseries on Redis Stack), three stores from the same binary, each loaded by the CLI
(``redisolar load --sites 30 --days 2 --seed 1 --yes``) and served by its own ``redisolar serve``
(its default workers and threads; rate limits off):

- ``single``: one Redis node;
- ``cluster``: ``embedded.LocalCluster``, 3 masters, no replica (``REDIS_CLUSTER=true``);
- ``cluster+replicas``: 3 masters with 1 replica each and ``DURABILITY=replicated`` (each write's
  round trip ends with ``WAIT 1``).

Routes, each alone, the load generator of ``bench/routes.py`` (``bench/loadgen.py``, its own process,
``--connections`` connections): ``POST /api/analytics/readings/<id>`` (one reading per request, the
sites in turn, every timestamp new), ``GET .../readings/<id>/latest`` (the sites in turn) and
``GET /api/analytics/leaderboards/capacity``. Per route a warm-up per store, then ``--rounds`` timed
runs of ``--seconds`` in alternation (single, cluster, cluster+replicas, single, ...), each after the
servers and the machine are quiet (a run disturbed by other processes is repeated, ``--retries``).

Per run, besides requests/s and p50/p99: ``INFO`` of every node before and after (``commandstats``
calls, ``INFO`` itself excluded, and ``used_cpu_user + used_cpu_sys``), so per node its operations/s
(the per-shard rates) and its CPU per request, summed over primaries and over replicas; the API's
CPU per request (``redisolar serve``'s process tree). On 2 cores a cluster cannot show scaling (its
three masters share the cores with the API and the client), so the figures that carry over to a
host per shard are the CPU ones: from the POST runs, ``1e6 / (primary CPU µs per reading, summed
over the masters)`` is what each added shard at one core adds in readings/s when the work spreads
evenly, and ``1e6 / (the busiest master's µs per reading)`` is where this 3-master cluster stops
(the slots every reading touches, ``{lb:DAY}`` and ``{fh:HOUR}``, sit on one master each). The
``cluster+replicas`` runs against ``cluster`` give what ``DURABILITY=replicated`` costs.

Median with min–max over the rounds. Raw figures: ``artifacts/bench-cluster.json``
(``$REDISOLAR_BENCH_ARTIFACTS``); ``python -m bench.report`` adds them to ``docs/benchmarks.md``.
Exit status 1 if any store answered an error.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    sys.exit("Run this as a module from the project root: python -m bench.cluster")

import argparse
import math
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from bench.harness import (
    Served,
    add_server_arguments,
    free_port,
    git_state,
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
from bench.routes import LOADING, POST, SKEW_MARGIN_MS, STEP_MS, Route
from redisolar.embedded import RedisServer, ServerSpec, find_plain_server, find_stack_server
from redisolar.embedded.cluster import LocalCluster

DAYS, SEED = 2, 1
LATEST = "/api/analytics/readings/{id}/latest"
BOARD = "/api/analytics/leaderboards/capacity"


@dataclass(frozen=True)
class Topology:
    """A store under test: one node, or a cluster of ``masters`` with ``replicas`` each."""

    label: str
    masters: int  # 0: one plain node (no cluster)
    replicas: int
    durability: str

    def env(self) -> dict[str, str]:
        """The settings ``redisolar`` needs for it (besides ``REDISOLAR_REDIS_URL``)."""
        if not self.masters:
            return {}
        return {"REDISOLAR_REDIS_CLUSTER": "true", "REDISOLAR_DURABILITY": self.durability}


TOPOLOGIES = (
    Topology("single", 0, 0, "local"),
    Topology("cluster", 3, 0, "local"),
    Topology("cluster+replicas", 3, 1, "replicated"),
)


def routes(sites: int) -> tuple[Route, ...]:
    """The measured routes (issue 8's three loads), the GETs cycling over every site."""
    latest = tuple(LATEST.format(id=i) for i in range(1, sites + 1))
    return (
        Route(POST, "POST", "/api/analytics/readings/{id}", (), 0.0),
        Route("get latest", "GET", LATEST, latest, 0.0),
        Route("capacity leaderboard", "GET", BOARD, (BOARD,), 0.0),
    )


@dataclass
class Target:
    """A store with its nodes and its API server; the next timestamp of its new readings; its runs."""

    topology: Topology
    nodes: list[RedisServer]
    url: str
    served: Served | None = None
    load_command: str = ""
    env: dict[str, str] = field(default_factory=dict)  # REDISOLAR_* settings besides the URL
    cursor_ms: int = 0
    rate: dict[str, float] = field(default_factory=dict)  # best requests/s seen per route
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    disturbed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.topology.label

    def redis_pids(self) -> list[int]:
        return [n.pid for n in self.nodes if n.pid is not None]

    def server_line(self) -> str:
        assert self.served is not None
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        return f"{env} {shell_line(self.served)}".strip()


# -- stores --------------------------------------------------------------------------------------------
@contextmanager
def store(spec: ServerSpec, topology: Topology) -> Iterator[Target]:
    """A fresh private store of ``topology`` from ``spec``'s binary, stopped on exit."""
    if not topology.masters:
        with RedisServer(spec) as server:
            yield Target(topology, [server], f"{server.url}/0")
        return
    with LocalCluster(spec, masters=topology.masters, replicas_per_master=topology.replicas) as cluster:
        yield Target(topology, cluster.nodes, cluster.url)


def load(target: Target, sites: int, backend: str) -> None:
    """``redisolar load`` (the CLI, in a subprocess) into the target; its new readings start after.
    The target keeps the settings it was loaded with, for its ``redisolar serve``."""
    script = Path(sys.executable).with_name("redisolar")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "redisolar"]
    command = [*cli, "load", "--sites", str(sites), "--days", str(DAYS), "--seed", str(SEED), "--yes"]
    target.env = {"REDISOLAR_TIMESERIES_BACKEND": backend, **target.topology.env()}
    env = {"REDISOLAR_REDIS_URL": target.url, **target.env}
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    loading = LOADING.search(done.stdout)
    if done.returncode != 0 or loading is None:
        raise SystemExit(f"{target.label}: redisolar load failed:\n{done.stdout}\n{done.stderr[-2000:]}")
    end = datetime.fromisoformat(loading.group(4))
    target.cursor_ms = int(end.timestamp() * 1000) + 1000
    target.load_command = " ".join([*(f"{k}={v}" for k, v in env.items()), *command])


# -- what every node says about itself -----------------------------------------------------------------
@dataclass(frozen=True)
class NodeMeter:
    """A node's counters at one moment: its role, CPU seconds, command calls (INFO excluded)."""

    port: int
    role: str
    cpu_s: float
    calls: int


def meters(clients: list[redis.Redis]) -> list[NodeMeter]:
    out = []
    for client in clients:
        info = client.info("everything")
        calls = sum(
            int(v["calls"]) for k, v in info.items() if k.startswith("cmdstat_") and k != "cmdstat_info"
        )
        cpu = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        out.append(NodeMeter(int(info["tcp_port"]), str(info["role"]), cpu, calls))
    return out


def node_figures(
    before: list[NodeMeter], after: list[NodeMeter], wall: float, ok: int
) -> list[dict[str, Any]]:
    """Per node: its role, operations/s, cores and CPU µs per answered request over the run."""
    per = max(ok, 1)
    return [
        {
            "port": a.port,
            "role": a.role,
            "ops_per_s": (a.calls - b.calls) / wall,
            "commands_per_request": (a.calls - b.calls) / per,
            "cores": (a.cpu_s - b.cpu_s) / wall,
            "cpu_us_per_request": (a.cpu_s - b.cpu_s) * 1e6 / per,
        }
        for b, a in zip(before, after, strict=True)
    ]


# -- runs ----------------------------------------------------------------------------------------------
def stream_spec(
    target: Target, route: Route, args: argparse.Namespace, seconds: float, seed: int
) -> dict[str, Any]:
    """The load generator's stream for ``route``: GET paths cycled, or enough new readings to POST
    (every site in turn, ``STEP_MS`` apart per site, each timestamp sent once)."""
    spec: dict[str, Any] = {"name": route.name, "method": route.method, "connections": args.connections}
    if route.method == "GET":
        return {**spec, "paths": list(route.paths)}
    expected = target.rate.get(route.name, 3000.0)
    room = (int(time.time() * 1000) + SKEW_MARGIN_MS - target.cursor_ms) // STEP_MS
    per_site = min(room, math.ceil(expected * seconds * 1.6 / args.sites) + args.connections)
    if per_site < args.connections:
        raise SystemExit(f"{target.label}: no room for new timestamps before now + {SKEW_MARGIN_MS} ms")
    readings = {
        "site_ids": list(range(1, args.sites + 1)),
        "start_ms": target.cursor_ms,
        "interval_ms": STEP_MS,
        "batch_size": 1,
        "per_site": per_site,
        "single": True,
        "seed": seed,
    }
    return {**spec, "readings": readings}


def one_run(
    target: Target, route: Route, args: argparse.Namespace, clients: list[redis.Redis], seconds: float
) -> dict[str, Any]:
    """One timed run of ``route`` against ``target``: throughput, latency, where the CPU went, and
    every node's operations and CPU."""
    assert target.served is not None
    seed = len(target.runs.get(route.name, [])) + len(target.disturbed) + 1
    spec = stream_spec(target, route, args, seconds, seed)
    before = meters(clients)
    result = run_loadgen(
        {
            "base_url": target.served.base_url,
            "seconds": seconds,
            "streams": [spec],
            "watch": {"server": [target.served.pid], "redis": target.redis_pids()},
        }
    )
    after = meters(clients)
    stream, cpu = result["streams"][route.name], result["cpu"]
    if route.method == "POST":  # bodies go out site-interleaved: the sent ones end here, per site
        target.cursor_ms += math.ceil(stream["requests"] / args.sites) * STEP_MS
    target.rate[route.name] = max(target.rate.get(route.name, 0.0), stream["requests_per_s"])
    wall = max(cpu["run_wall_s"], 1e-9)
    nodes = node_figures(before, after, wall, stream["ok"])
    return {
        "target": target.label,
        "route": route.name,
        "stream": stream,
        "cpu": cpu,
        "nodes": nodes,
        "loadavg_1m": os.getloadavg()[0],
        "figures": run_figures(stream, cpu, nodes, wall),
    }


def run_figures(
    stream: dict[str, Any], cpu: dict[str, Any], nodes: list[dict[str, Any]], wall: float
) -> dict[str, float]:
    """A run's figures: per request, Redis CPU is summed over the primaries and over the replicas."""
    primaries = [n for n in nodes if n["role"] == "master"]
    replicas = [n for n in nodes if n["role"] != "master"]
    per = max(stream["ok"], 1)
    return {
        "requests_per_s": stream["requests_per_s"],
        "p50_ms": stream["latency_ms"]["p50"],
        "p99_ms": stream["latency_ms"]["p99"],
        "errors": stream["errors"],
        "client_cores": cpu["run_s"] / wall,
        "server_cores": cpu["watched"]["server"] / wall,
        "redis_cores": cpu["watched"]["redis"] / wall,
        "other_cores": cpu["other_s"] / wall,
        "api_cpu_us_per_request": cpu["watched"]["server"] * 1e6 / per,
        "primary_cpu_us_per_request": sum(n["cpu_us_per_request"] for n in primaries),
        "replica_cpu_us_per_request": sum(n["cpu_us_per_request"] for n in replicas),
        "busiest_primary_cpu_us_per_request": max(n["cpu_us_per_request"] for n in primaries),
        "commands_per_request": sum(n["commands_per_request"] for n in primaries),
        "primary_ops_per_s": sum(n["ops_per_s"] for n in primaries),
    }


def show_run(run: dict[str, Any], title: str) -> None:
    f = run["figures"]
    shards = " ".join(f"{n['ops_per_s']:,.0f}" for n in run["nodes"] if n["role"] == "master")
    print(
        f"  {title:<44} {f['requests_per_s']:7,.0f} req/s  p50 {f['p50_ms']:5.1f} ms"
        f"  p99 {f['p99_ms']:6.1f} ms"
        f"  redis {f['primary_cpu_us_per_request']:5.0f}+{f['replica_cpu_us_per_request']:.0f} us/req"
        f"  ops/s per primary [{shards}]  errors {f['errors']}  other {f['other_cores']:.2f}"
        + ("  (bodies ran out)" if run["stream"]["exhausted"] else ""),
        flush=True,
    )
    for sample in run["stream"]["error_samples"][:2]:
        print(f"      error: {sample}")


def measure(
    targets: list[Target], route: Route, args: argparse.Namespace, clients: dict[str, list[redis.Redis]]
) -> None:
    """A warm-up per target, then ``--rounds`` alternating timed runs, disturbed runs repeated."""
    for target in targets:
        run = one_run(target, route, args, clients[target.label], args.warmup_seconds)
        show_run(run, f"{target.label} {route.name} (warm-up)")
        target.runs[route.name] = []
    for round_no in range(1, args.rounds + 1):
        for target in targets:
            for attempt in range(1 + args.retries):
                assert target.served is not None
                wait_quiet([target.served.pid, *target.redis_pids()], window=0.5, timeout=60)
                wait_machine_quiet(window=0.5)
                run = one_run(target, route, args, clients[target.label], args.seconds)
                disturbed = run["figures"]["other_cores"] > args.max_other
                show_run(
                    run, f"{target.label} {route.name} #{round_no}" + (" (disturbed)" if disturbed else "")
                )
                if not disturbed or attempt == args.retries:
                    target.runs[route.name].append(run)
                    break
                target.disturbed.append(run)


# -- figures -------------------------------------------------------------------------------------------
def spread(values: list[float]) -> dict[str, float]:
    return {"median": median(values), "min": min(values), "max": max(values)}


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure median/min/max (errors summed); per node (in the store's order) its medians."""
    out: dict[str, Any] = {k: spread([r["figures"][k] for r in runs]) for k in runs[0]["figures"]}
    out["errors"] = sum(r["figures"]["errors"] for r in runs)
    out["runs"] = len(runs)
    out["nodes"] = [
        {
            "port": first["port"],
            "role": first["role"],
            **{
                k: median(r["nodes"][i][k] for r in runs)
                for k in ("ops_per_s", "cores", "cpu_us_per_request")
            },
        }
        for i, first in enumerate(runs[0]["nodes"])
    ]
    return out


def predict(by_topology: dict[str, Any]) -> dict[str, Any]:
    """From the POST runs (one reading per request): readings/s at one core of one node, what an
    added shard adds when the work spreads evenly, where this 3-master cluster stops (its busiest
    master at one core), the API's readings/s per core, and what ``DURABILITY=replicated`` costs
    against ``cluster``. Everything is 1e6 / CPU µs per reading (medians)."""

    def fig(label: str, key: str) -> float:
        return float(by_topology[label][key]["median"]) if label in by_topology else math.nan

    single = fig("single", "primary_cpu_us_per_request")
    shards = fig("cluster", "primary_cpu_us_per_request")
    busiest = fig("cluster", "busiest_primary_cpu_us_per_request")
    out: dict[str, Any] = {
        "single_node_readings_per_s_at_one_core": 1e6 / single,
        "cluster_cpu_over_single": shards / single,
        "readings_per_s_per_added_shard_at_one_core": 1e6 / shards,
        "busiest_primary_share": busiest / shards,
        "three_masters_readings_per_s_at_one_core_each": 1e6 / busiest,
        "api_readings_per_s_per_core": {
            label: 1e6 / fig(label, "api_cpu_us_per_request") for label in by_topology
        },
    }
    if "cluster+replicas" in by_topology:
        replicated = fig("cluster+replicas", "primary_cpu_us_per_request")
        rate = fig("cluster+replicas", "requests_per_s") / fig("cluster", "requests_per_s")
        out["replicated"] = {
            "requests_per_s_ratio": rate,
            "p50_ms_added": fig("cluster+replicas", "p50_ms") - fig("cluster", "p50_ms"),
            "primary_cpu_ratio": replicated / shards,
            "replica_cpu_us_per_reading": fig("cluster+replicas", "replica_cpu_us_per_request"),
            "readings_per_s_per_added_shard_at_one_core": 1e6 / replicated,
        }
    return out


def summarize(targets: list[Target]) -> dict[str, Any]:
    routes_out: dict[str, Any] = {}
    for name in targets[0].runs:
        routes_out[name] = {t.label: summarize_runs(t.runs[name]) for t in targets if t.runs.get(name)}
    out: dict[str, Any] = {"routes": routes_out}
    if POST in routes_out and "single" in routes_out[POST] and "cluster" in routes_out[POST]:
        out["prediction"] = predict(routes_out[POST])
    return out


def print_summary(backend: str, summary: dict[str, Any]) -> None:
    rows = []
    for name, by_topology in summary["routes"].items():
        for label, s in by_topology.items():
            r = s["requests_per_s"]
            shards = " / ".join(f"{n['ops_per_s']:,.0f}" for n in s["nodes"] if n["role"] == "master")
            rows.append([
                name, label, f"{r['median']:,.0f} ({r['min']:,.0f}–{r['max']:,.0f})",
                s["p50_ms"]["median"], s["p99_ms"]["median"], s["primary_cpu_us_per_request"]["median"],
                s["replica_cpu_us_per_request"]["median"], shards, s["api_cpu_us_per_request"]["median"],
                s["errors"],
            ])  # fmt: skip
    print(f"\n{backend}: medians (min–max)")
    headers = ["route", "store", "req/s", "p50 ms", "p99 ms", "primaries us/req", "replicas us/req"]
    print(table([*headers, "ops/s per primary", "API us/req", "errors"], rows))
    for key, value in summary.get("prediction", {}).items():
        print(f"  {key}: {value}")


# -- main ----------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="core,redistimeseries", help="core and/or redistimeseries")
    parser.add_argument("--sites", type=int, default=30, help="sites loaded per store (their keys spread)")
    add_server_arguments(parser, baseline=False)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each timed run")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per route and store (median)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent client connections")
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument("--routes", help="comma-separated route names (default: all): " + ", ".join(
        r.name for r in routes(1)))  # fmt: skip
    parser.add_argument("--topologies", help="comma-separated (default: all): " + ", ".join(
        t.label for t in TOPOLOGIES))  # fmt: skip
    parser.add_argument(
        "--max-other", type=float, default=0.25, help="repeat a run in which other processes used more cores"
    )
    parser.add_argument("--retries", type=int, default=2, help="repeats of a disturbed run, at most")
    return parser.parse_args()


def chosen(names: str | None, known: tuple[Any, ...], attr: str) -> list[Any]:
    if not names:
        return list(known)
    wanted = [n.strip() for n in names.split(",")]
    unknown = set(wanted) - {getattr(k, attr) for k in known}
    if unknown:
        raise SystemExit(f"unknown: {', '.join(sorted(unknown))}")
    return [k for k in known if getattr(k, attr) in wanted]


def binary(backend: str) -> ServerSpec:
    spec = find_plain_server() if backend == "core" else find_stack_server()
    if backend not in ("core", "redistimeseries") or spec is None:
        raise SystemExit(
            f"no server for the {backend} backend (make redis-stack; apt-get install redis-server)"
        )
    return spec


def run_backend(backend: str, args: argparse.Namespace) -> tuple[list[Target], dict[str, Any]]:
    """Every topology of ``backend`` up at once (so that runs alternate), loaded, served, measured."""
    spec = binary(backend)
    topologies = chosen(args.topologies, TOPOLOGIES, "label")
    with ExitStack() as stack:
        targets = [stack.enter_context(store(spec, t)) for t in topologies]
        clients: dict[str, list[redis.Redis]] = {}
        for target in targets:
            load(target, args.sites, backend)
            served = project_server(target.url, free_port(), args.workers, args.threads, target.env)
            target.served = stack.enter_context(served)
            clients[target.label] = [
                stack.enter_context(n.client(decode_responses=True)) for n in target.nodes
            ]
            print(f"  {backend} {target.label}: {target.server_line()}", flush=True)
        wait_quiet([pid for t in targets for pid in (served_pid(t), *t.redis_pids())], timeout=120)
        for route in chosen(args.routes, routes(args.sites), "name"):
            measure(targets, route, args, clients)
        return targets, summarize(targets)


def served_pid(target: Target) -> int:
    assert target.served is not None
    return target.served.pid


def main() -> None:
    args = parse_args()
    backends = [b.strip() for b in args.backends.split(",")]
    cores = os.cpu_count() or 1
    print(
        f"Backends {', '.join(backends)}; {args.sites} sites; {args.connections} connections; "
        f"{args.rounds} runs of {args.seconds:g} s per route and store, in alternation; {cores} CPU cores",
        flush=True,
    )
    git_at_start = git_state()
    started = time.monotonic()
    results: dict[str, Any] = {}
    all_targets: dict[str, list[Target]] = {}
    for backend in backends:
        all_targets[backend], results[backend] = run_backend(backend, args)
        print_summary(backend, results[backend])
    path = write_artifact(
        "cluster",
        {
            "git_at_start": git_at_start,
            "config": {**vars(args), "cpu_cores": cores, "wall_s": time.monotonic() - started},
            "topologies": [vars(t) for t in TOPOLOGIES],
            "data": {b: {t.label: t.load_command for t in ts} for b, ts in all_targets.items()},
            "servers": {b: {t.label: t.server_line() for t in ts} for b, ts in all_targets.items()},
            "results": results,
            "runs": {
                b: [r for t in ts for runs in t.runs.values() for r in runs] for b, ts in all_targets.items()
            },
            "disturbed_runs_repeated": {
                b: [r for t in ts for r in t.disturbed] for b, ts in all_targets.items()
            },
        },
    )
    print(f"Raw figures: {path} ({time.monotonic() - started:.0f} s)")
    warn_if_code_changed(git_at_start)
    errors = sum(s["errors"] for r in results.values() for by in r["routes"].values() for s in by.values())
    if errors:
        sys.exit(f"the API answered {errors} errors (see above)")


if __name__ == "__main__":
    main()

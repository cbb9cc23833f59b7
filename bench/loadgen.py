"""The HTTP load generator of the benchmarks: a separate process, asyncio + aiohttp.

    python -m bench.loadgen < spec.json  ->  one JSON line of results on stdout

It is run by ``bench/http.py`` and ``bench/fleet.py`` (never by hand) so that the client's work does
not share a process, or a GIL, with the servers or the orchestration. Everything a request sends is
built and serialized *before* the clock starts; the timed phase only sends, reads and records.

The spec (JSON on stdin)::

    {
      "base_url": "http://127.0.0.1:8081",
      "seconds": 10.0,             # the timed phase; null: until every stream reached its limit
      "sequential": false,         # true: the streams run one after another, each alone
      "warmup": 0,                 # untimed requests per GET stream first (e.g. to fill caches)
      "watch": {"server": [PID], "redis": [PID]},   # process trees whose CPU use to report
      "streams": [
        {"name": "summary", "method": "GET", "connections": 1, "limit": 300,
         "paths": ["/api/analytics/summary"]},            # GET paths are cycled
        {"name": "batch", "method": "POST", "connections": 8, "limit": null,
         "readings": {"site_ids": [1, 2], "start_ms": 1764000000000, "interval_ms": 60000,
                      "batch_size": 1000, "per_site": 3, "value_scale": 1.0, "seed": 1}}
      ]
    }

A stream may carry ``"headers"`` (sent with each of its requests, e.g. an API key). With
``"single": true`` (and ``batch_size`` 1) a ``readings`` stream posts one reading per request, a JSON
object, to ``/api/analytics/readings/<id>``.

A ``readings`` stream posts ``per_site`` batches per site to ``/api/analytics/readings/<id>/batch``,
each of ``batch_size`` readings ``interval_ms`` apart; site ``s``'s batch ``k`` holds the readings
``start_ms + (k * batch_size + j) * interval_ms``. Bodies go out site-interleaved (batch 0 of every
site, then batch 1, ...) and each is sent once: when they run out the stream stops early
(``exhausted``). A response counts as an error when it is not 2xx or the request failed.

Each stream's result: ``requests``, ``ok``, ``errors``, ``statuses``, ``error_samples`` (a few),
``readings`` (stored, from the responses' ``count``), ``elapsed`` (from the stream's start to its last
response), ``latency_ms`` (p50, p90, p99, max, mean, of every request) and ``exhausted``. ``cpu``: this
process's own CPU seconds (user + system, all threads) while preparing and during the timed phase,
and the latter as a percentage of one core; ``watched``: the CPU seconds of each ``watch`` group over
the timed phase; ``machine_busy_s``: of every process on the machine (so ``other_s``, what neither
this process nor the watched ones used, shows a run disturbed by something else).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bench.procstat import cpu_of, machine_busy

BATCH_PATH = "/api/analytics/readings/{site}/batch"
SINGLE_PATH = "/api/analytics/readings/{site}"
ERROR_SAMPLES = 5
VALUE_POOL = 4096


def cpu_seconds() -> float:
    """User + system CPU time of this process (every thread), in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p90, p99, max and mean of ``values`` (nearest rank), in the values' unit."""
    if not values:
        return {"p50": math.nan, "p90": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
    }


def iso_ms(ms: int) -> str:
    """ISO 8601 UTC with a ``Z``, milliseconds only when there are some."""
    at = datetime.fromtimestamp(ms / 1000, UTC)
    if ms % 1000:
        return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def reading_bodies(spec: dict[str, Any]) -> list[tuple[str, bytes, int]]:
    """(path, JSON body, readings) of every batch of a ``readings`` stream, site-interleaved.

    Every site's batch ``k`` covers the same timestamps, so their ISO strings are formatted once per
    batch; the values come from a pool of pre-formatted fragments (plausible, not physical).
    """
    rng = random.Random(spec.get("seed", 1))
    scale = float(spec.get("value_scale", 1.0))
    pool = [
        f',"wh_generated":{rng.uniform(0, 400) * scale:.2f},"wh_used":{rng.uniform(20, 150) * scale:.2f},'
        f'"temp_c":{rng.uniform(5, 38):.1f}}}'
        for _ in range(VALUE_POOL)
    ]
    site_ids: list[int] = spec["site_ids"]
    size, step, start = int(spec["batch_size"]), int(spec["interval_ms"]), int(spec["start_ms"])
    single = bool(spec.get("single"))  # one reading per POST, as a JSON object (batch_size is 1)
    out: list[tuple[str, bytes, int]] = []
    for k in range(int(spec["per_site"])):
        heads = ['{"timestamp":"' + iso_ms(start + (k * size + j) * step) + '"' for j in range(size)]
        for n, site in enumerate(site_ids):
            offset = rng.randrange(VALUE_POOL)
            items = [h + pool[(offset + j * 7 + n) % VALUE_POOL] for j, h in enumerate(heads)]
            if single:
                out.append((SINGLE_PATH.format(site=site), items[0].encode(), 1))
            else:
                out.append((BATCH_PATH.format(site=site), ("[" + ",".join(items) + "]").encode(), size))
    return out


@dataclass
class Stream:
    """One named stream of requests and what came back."""

    name: str
    method: str
    connections: int
    limit: int | None
    paths: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    bodies: list[tuple[str, bytes, int]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    readings: int = 0
    issued: int = 0
    started: float = 0.0
    last_done: float = 0.0
    exhausted: bool = False

    def next_request(self) -> tuple[str, bytes | None, int] | None:
        """The next (path, body, readings) to send, or None when the stream has nothing more."""
        if self.limit is not None and self.issued >= self.limit:
            return None
        if self.method == "POST":
            if self.issued >= len(self.bodies):
                self.exhausted = True
                return None
            request = self.bodies[self.issued]
            self.issued += 1
            return request
        path = self.paths[self.issued % len(self.paths)]
        self.issued += 1
        return path, None, 0

    def error(self, text: str) -> None:
        if len(self.error_samples) < ERROR_SAMPLES:
            self.error_samples.append(text[:300])

    def result(self) -> dict[str, Any]:
        errors = sum(n for status, n in self.statuses.items() if not status.startswith("2"))
        elapsed = max(self.last_done - self.started, 1e-9)
        ok = len(self.latencies) - errors
        return {
            "requests": len(self.latencies),
            "ok": ok,
            "errors": errors,
            "statuses": dict(self.statuses),
            "error_samples": self.error_samples,
            "readings": self.readings,
            "elapsed": elapsed,
            "requests_per_s": len(self.latencies) / elapsed,
            "readings_per_s": self.readings / elapsed,
            "latency_ms": percentiles([1000 * t for t in self.latencies]),
            "connections": self.connections,
            "exhausted": self.exhausted,
        }


def build_stream(spec: dict[str, Any]) -> Stream:
    method = spec.get("method", "GET").upper()
    stream = Stream(spec["name"], method, int(spec.get("connections", 1)), spec.get("limit"))
    stream.headers = dict(spec.get("headers") or {})
    if method == "POST":
        stream.bodies = reading_bodies(spec["readings"])
    else:
        stream.paths = list(spec["paths"])
        if not stream.paths:
            raise ValueError(f"stream {stream.name}: no paths")
    return stream


async def one_request(
    session: aiohttp.ClientSession, base: str, stream: Stream, request: tuple[str, bytes | None, int]
) -> None:
    path, body, readings = request
    headers = {**stream.headers, "Content-Type": "application/json"} if body is not None else stream.headers
    began = time.perf_counter()
    try:
        async with session.request(stream.method, base + path, data=body, headers=headers) as response:
            payload = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        done = time.perf_counter()
        stream.latencies.append(done - began)
        stream.last_done = done
        stream.statuses["exception"] += 1
        stream.error(f"{path}: {exc!r}")
        return
    done = time.perf_counter()
    stream.latencies.append(done - began)
    stream.last_done = done
    stream.statuses[str(status)] += 1
    if not 200 <= status < 300:
        stream.error(f"{path}: {status} {payload[:200].decode('utf-8', 'replace')}")
        return
    if readings:
        try:
            stream.readings += int(json.loads(payload)["count"])
        except (ValueError, KeyError, TypeError):
            stream.readings += readings


async def connection(session: aiohttp.ClientSession, base: str, stream: Stream, deadline: float) -> None:
    """One client connection's loop: the next request as soon as the previous one answered."""
    while time.perf_counter() < deadline:
        request = stream.next_request()
        if request is None:
            return
        await one_request(session, base, stream, request)


async def run_streams(streams: list[Stream], base: str, seconds: float | None) -> None:
    budget = seconds if seconds is not None else 86_400.0
    total = sum(s.connections for s in streams)
    connector = aiohttp.TCPConnector(limit=total, limit_per_host=total, force_close=False)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        for stream in streams:
            stream.started = started
            stream.last_done = started
        deadline = started + budget
        await asyncio.gather(
            *(connection(session, base, s, deadline) for s in streams for _ in range(s.connections))
        )


async def warm(streams: list[Stream], base: str, count: int) -> None:
    """Untimed GETs (``count`` per GET stream), then the streams' counters start afresh."""
    async with aiohttp.ClientSession() as session:
        for stream in streams:
            if stream.method != "GET":
                continue
            for i in range(count):
                path = base + stream.paths[i % len(stream.paths)]
                async with session.get(path, headers=stream.headers) as response:
                    await response.read()


def main() -> None:
    spec = json.load(sys.stdin)
    base = spec["base_url"].rstrip("/")
    seconds = spec.get("seconds")
    prep_cpu = cpu_seconds()
    prep_wall = time.perf_counter()
    streams = [build_stream(s) for s in spec["streams"]]
    prep = {"cpu_s": cpu_seconds() - prep_cpu, "wall_s": time.perf_counter() - prep_wall}
    if spec.get("warmup"):
        asyncio.run(warm(streams, base, int(spec["warmup"])))
    watch: dict[str, list[int]] = spec.get("watch") or {}
    watched0 = {name: cpu_of(pids) for name, pids in watch.items()}
    busy0 = machine_busy()
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    if spec.get("sequential"):
        for stream in streams:
            asyncio.run(run_streams([stream], base, seconds))
    else:
        asyncio.run(run_streams(streams, base, seconds))
    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    busy = machine_busy() - busy0
    watched = {name: cpu_of(pids) - watched0[name] for name, pids in watch.items()}
    out = {
        "streams": {s.name: s.result() for s in streams},
        "cpu": {
            "prep_s": prep["cpu_s"],
            "prep_wall_s": prep["wall_s"],
            "run_s": cpu,
            "run_wall_s": wall,
            "run_pct_of_one_core": 100 * cpu / wall if wall > 0 else 0.0,
            "watched": watched,
            "machine_busy_s": busy,
            "other_s": max(0.0, busy - cpu - sum(watched.values())),
        },
    }
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()

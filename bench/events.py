"""The event stream's cost: what a reading event adds to a single-reading POST, and what a connected
Server-Sent Events client costs (Redis commands/s and CPU, idle and with events flowing).

    python -m bench.events [--posts 2000] [--clients 20] [--seconds 10] [--rate 20]

One embedded Redis (the best server found), the app in this process (Flask test client, no HTTP server):
1. single-reading POSTs with the event (the ``events_add.lua`` call in the derived-state round trip) and
   without it (``reading_calls`` replaced by nothing): wall time per POST, and the server CPU of the
   ``XADD`` (``INFO commandstats``: a script's commands are counted too);
2. ``--clients`` streams (:func:`redisolar.events.sse.body`, as ``GET /api/events`` runs them, each in a
   thread as under Granian) for ``--seconds``, first idle, then with ``--rate`` events/s published:
   ``XREAD`` calls per second per client, Redis CPU and this process' CPU per client.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.harness import write_artifact
from bench.procstat import cpu_of
from redisolar.app import create_app, get_services
from redisolar.embedded import RedisServer, find_best_server
from redisolar.events import stream as events_stream
from redisolar.events.sse import SseLimits, body
from redisolar.services import ingest as ingest_module
from redisolar.timeutil import utcnow


def posts(http: Any, n: int, start: Any, offset: int) -> float:
    """Seconds per single-reading POST (``n`` of them, one minute apart)."""
    began = time.perf_counter()
    for k in range(n):
        reading = {
            "timestamp": (start + timedelta(minutes=offset + k)).isoformat(),
            "wh_generated": 1.0,
            "wh_used": 1.0,
            "temp_c": 20.0,
        }
        response = http.post("/api/analytics/readings/1", json=reading)
        assert response.status_code == 201, response.get_data(as_text=True)
    return (time.perf_counter() - began) / n


def xadd_usec(client: Any) -> float:
    stats = client.info("commandstats").get("cmdstat_xadd", {})
    return float(stats.get("usec_per_call", 0.0))


def post_cost(services: Any, http: Any, n: int) -> dict[str, float]:
    """Alternating POSTs with and without the event (a day's later readings cost more to roll up, so
    the two must share the drift), the median of each; then the server CPU of XADD."""
    start = utcnow().replace(second=0, microsecond=0) - timedelta(days=5)
    posts(http, 200, start, 0)  # warm: scripts loaded, the day's board made
    original = ingest_module.reading_calls
    times: dict[bool, list[float]] = {True: [], False: []}
    for k in range(n):
        with_event = k % 2 == 0
        ingest_module.reading_calls = original if with_event else (lambda *a: [])
        times[with_event].append(posts(http, 1, start, 200 + k))
    ingest_module.reading_calls = original
    services.redis.config_resetstat()
    posts(http, 500, start, 200 + n)
    with_us, without_us = statistics.median(times[True]) * 1e6, statistics.median(times[False]) * 1e6
    return {
        "post_us_with_event": with_us,
        "post_us_without_event": without_us,
        "added_us": with_us - without_us,
        "xadd_server_us": xadd_usec(services.redis),
    }


def clients_cost(services: Any, pid: int, clients: int, seconds: float, rate: float) -> dict[str, float]:
    key = events_stream.EventKeys.of(services.keys).stream
    limits = SseLimits(heartbeat=15.0, lifetime=seconds)
    block = services.settings.redis.socket_timeout / 2
    sent = [0]

    def listen() -> None:
        for _ in body(services.redis, key, None, limits, block_s=block):
            sent[0] += 1

    services.redis.config_resetstat()
    redis_cpu, own_cpu = cpu_of([pid]), time.process_time()
    threads = [threading.Thread(target=listen) for _ in range(clients)]
    for thread in threads:
        thread.start()
    published = 0
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        if rate > 0:
            events_stream.publish(services.redis, services.keys, "reading", {"site_id": 1, "n": published})
            published += 1
            time.sleep(1 / rate)
        else:
            time.sleep(0.1)
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    stats = services.redis.info("commandstats").get("cmdstat_xread", {})
    return {
        "clients": clients,
        "events_per_s": rate,
        "xread_per_s_per_client": float(stats.get("calls", 0)) / elapsed / clients,
        "redis_cpu_ms_per_s_per_client": (cpu_of([pid]) - redis_cpu) / elapsed / clients * 1000,
        "app_cpu_ms_per_s_per_client": (time.process_time() - own_cpu) / elapsed / clients * 1000,
        "frames_per_client": sent[0] / clients,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    spec = find_best_server()
    assert spec is not None, "no redis-server found"
    with tempfile.TemporaryDirectory() as data, RedisServer(spec, data_dir=Path(data)) as server:
        config = {"REDIS_URL": f"{server.url}/0", "RATE_LIMIT_WRITES": "0", "AUTH_MODE": "off"}
        app = create_app("bench", config)
        services = get_services(app)
        http = app.test_client()
        site = {"id": 1, "capacity": 4.5, "panels": 3, "address": "1 A St", "city": "Provo", "state": "UT",
                "postal_code": "84601"}  # fmt: skip
        assert http.post("/api/sites/", json=site).status_code == 201
        assert server.pid is not None
        result: dict[str, Any] = {
            "backend": services.timeseries.backend.__class__.__name__,
            "post": post_cost(services, http, args.posts),
            "idle": clients_cost(services, server.pid, args.clients, args.seconds, 0.0),
            "flowing": clients_cost(services, server.pid, args.clients, args.seconds, args.rate),
        }
        services.redis.close()
    path = write_artifact("events", result)
    post = result["post"]
    print(f"single-reading POST ({result['backend']}), median:")
    print(f"  {post['post_us_without_event']:.0f} us without the event,", end=" ")
    print(f"{post['post_us_with_event']:.0f} with it")
    print(f"  (+{post['added_us']:.0f} us); XADD {post['xadd_server_us']:.1f} us of server CPU")
    for name in ("idle", "flowing"):
        r = result[name]
        print(f"{name} ({r['events_per_s']:g} events/s, {r['clients']} clients), per client:")
        print(f"  {r['xread_per_s_per_client']:.2f} XREAD/s,", end=" ")
        print(f"Redis CPU {r['redis_cpu_ms_per_s_per_client']:.3f} ms/s")
        print(f"  app CPU {r['app_cpu_ms_per_s_per_client']:.3f} ms/s")
    print(f"written to {path}")


if __name__ == "__main__":
    main()

"""The event stream's cost: what a reading event adds to a single-reading POST, what the ingest's
rank events and alert rules add, and what a connected Server-Sent Events client costs (Redis
commands/s and CPU, idle and with events flowing).

    python -m bench.events [--rounds 3] [--posts 2000] [--clients 20] [--seconds 10] [--rate 20]
                           [--board-sites 10000]

One embedded Redis (the best server found), the app in this process (Flask test client, no HTTP
server). Each of ``--rounds`` rounds (at least 3 for a figure worth quoting) measures, in this order:
1. single-reading POSTs in alternation: without the reading event (``reading_calls`` replaced by
   nothing), with it, and with it plus two alert rules checked at ingest (the fleet-wide ``offline``
   and a ``temp_c`` threshold: :mod:`redisolar.alerts.at_ingest`); the median wall time per POST of
   each; then the server CPU of an ``XADD`` (``INFO commandstats``: a script's commands count too);
2. ``lb_set.lua`` on a day board of ``--board-sites`` sites, in alternation without the rank report,
   with what ingest runs (moves touching the top 10) and with every move: server microseconds per
   call (``cmdstat_evalsha``), and how many calls reported a move (each such ingest takes the
   follow-up round trip that appends its ``rank`` events);
3. ``--clients`` streams (:func:`redisolar.events.sse.body`, as ``GET /api/events`` runs them, each in
   a thread as under Granian) for ``--seconds``, idle, then with ``--rate`` events/s published:
   ``XREAD`` calls per second per client, Redis CPU and this process' CPU per client.
Every figure is reported as the median over the rounds with its min-max, with the command and the
machine's load average at the start and the end (``artifacts/bench-events.json``).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.harness import reproduce_command, write_artifact
from bench.procstat import cpu_of
from redisolar.alerts.rules import Rule, RuleStore
from redisolar.app import create_app, get_services
from redisolar.dao import daily_boards
from redisolar.dao.daily_boards import current_days
from redisolar.dao.scripts import run_scripts
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


ALERT_RULES = (Rule("offline", "offline"), Rule("hot", "threshold", metric="temp_c", op=">", value=70))
BLOCK = 20
"""POSTs per arm in a row (the first after a rule change re-reads the rules: the medians leave it out)."""


def post_cost(services: Any, http: Any, n: int, offset: int) -> dict[str, float]:
    """POSTs in alternating blocks without the event, with it, and with it and two alert rules at
    ingest (a day's later readings cost more to roll up, so the arms must share the drift), the median
    of each;
    then the server CPU of XADD. ``offset``: the first minute used (rounds do not overwrite)."""
    start = utcnow().replace(second=0, microsecond=0) - timedelta(days=20)
    posts(http, 200, start, offset)  # warm: scripts loaded, the day's board made
    original = ingest_module.reading_calls
    rules = RuleStore(services.redis, services.keys)
    arms = ("without_event", "with_event", "with_event_and_alert_rules")
    times: dict[str, list[float]] = {arm: [] for arm in arms}
    for k in range(n):
        arm = arms[(k // BLOCK) % 3]
        ingest_module.reading_calls = original if arm != "without_event" else (lambda *a: [])
        if k % BLOCK == 0:  # (outside the timing: the rules stored or deleted as a block starts)
            stored = {r.id for r in rules.all()}
            for rule in ALERT_RULES:
                if arm == arms[2] and rule.id not in stored:
                    rules.put(rule, create=True)
                elif arm != arms[2] and rule.id in stored:
                    rules.delete(rule.id)
        times[arm].append(posts(http, 1, start, offset + 200 + k))
    ingest_module.reading_calls = original
    for rule in rules.all():
        rules.delete(rule.id)
    services.redis.config_resetstat()
    posts(http, 500, start, offset + 200 + n)
    medians = {arm: statistics.median(times[arm]) * 1e6 for arm in arms}
    return {
        **{f"post_us_{arm}": us for arm, us in medians.items()},
        "event_added_us": medians["with_event"] - medians["without_event"],
        "alert_rules_added_us": medians["with_event_and_alert_rules"] - medians["with_event"],
        "xadd_server_us": xadd_usec(services.redis),
    }


def rank_cost(services: Any, sites: int, calls: int, seed: int) -> dict[str, float]:
    """``lb_set.lua`` on today's board of ``sites`` sites in alternating batches of 100 calls, each call
    raising one site's score as a reading does: without the rank report (top 0), with what ingest runs
    (moves touching the top :data:`RANK_EVENT_TOP`) and with every move reported. Server microseconds
    per call of each, and the share of the calls that reported a move (each such ingest takes the
    follow-up round trip with its ``rank`` events)."""
    boards, today = services.timeseries.boards, current_days()[1]
    rng = random.Random(seed)
    scores = {site: rng.uniform(0, 20_000) for site in range(1, sites + 1)}
    version = int(time.time() * 1000)
    entries = [(s, today, version, wh, 5.0) for s, wh in scores.items()]
    for i in range(0, len(entries), 500):  # as the reconciler does (a script's unpack stops near 8,000)
        boards.apply(entries[i : i + 500])
    arms = {"without_ranks": 0, "top": daily_boards.RANK_EVENT_TOP, "every_move": sites + 1}
    usec: dict[str, list[float]] = {arm: [] for arm in arms}
    moved = dict.fromkeys(arms, 0)
    for batch in range(3 * max(1, calls // 300)):
        arm = list(arms)[batch % 3]
        daily_boards.RANK_EVENT_TOP = arms[arm]
        services.redis.config_resetstat()
        for _ in range(100):
            site = rng.randint(1, sites)
            scores[site] += rng.uniform(0, 60)  # a minute's reading of a 5 kW site, at most
            version += 1
            planned = boards.calls([(site, today, version, scores[site], 5.0)], ranks=arm != "without_ranks")
            [reply] = run_scripts(services.redis, planned.calls)
            moved[arm] += int(len(reply) > 2)
        stats = services.redis.info("commandstats").get("cmdstat_evalsha", {})
        usec[arm].append(float(stats.get("usec_per_call", 0.0)))
    daily_boards.RANK_EVENT_TOP = arms["top"]
    return {
        "board_sites": sites,
        **{f"lb_set_us_{arm}": statistics.median(usec[arm]) for arm in arms},
        "calls_moving_a_rank_top": moved["top"] / (len(usec["top"]) * 100),
        "calls_moving_a_rank_anywhere": moved["every_move"] / (len(usec["every_move"]) * 100),
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


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summary(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Each figure of each part: median and min-max over the rounds."""
    return {
        part: {name: spread([r[part][name] for r in rounds]) for name in rounds[0][part]}
        for part in rounds[0]
    }


def one_round(services: Any, http: Any, pid: int, args: argparse.Namespace, n: int) -> dict[str, Any]:
    return {
        "post": post_cost(services, http, args.posts, n * (args.posts + 800)),
        "rank": rank_cost(services, args.board_sites, args.rank_calls, seed=n),
        "idle": clients_cost(services, pid, args.clients, args.seconds, 0.0),
        "flowing": clients_cost(services, pid, args.clients, args.seconds, args.rate),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--board-sites", type=int, default=10_000)
    parser.add_argument("--rank-calls", type=int, default=2000)
    args = parser.parse_args()
    spec = find_best_server()
    assert spec is not None, "no redis-server found"
    load_at_start = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as data, RedisServer(spec, data_dir=Path(data)) as server:
        config = {"REDIS_URL": f"{server.url}/0", "RATE_LIMIT_WRITES": "0", "AUTH_MODE": "off"}
        app = create_app("bench", config)
        services = get_services(app)
        http = app.test_client()
        site = {"id": 1, "capacity": 4.5, "panels": 3, "address": "1 A St", "city": "Provo", "state": "UT",
                "postal_code": "84601"}  # fmt: skip
        assert http.post("/api/sites/", json=site).status_code == 201
        assert server.pid is not None
        backend = services.timeseries.backend.__class__.__name__
        rounds = [one_round(services, http, server.pid, args, n) for n in range(args.rounds)]
        services.redis.close()
    result = {"backend": backend, "rounds_run": args.rounds, "loadavg_at_start": load_at_start}
    result |= {"median_min_max": summary(rounds), "rounds": rounds}
    path = write_artifact("events", result)
    report(result, args, path)


def report(result: dict[str, Any], args: argparse.Namespace, path: Path) -> None:
    figures = result["median_min_max"]

    def f(part: str, name: str, digits: int = 0) -> str:
        v = figures[part][name]
        return f"{v['median']:.{digits}f} ({v['min']:.{digits}f}-{v['max']:.{digits}f})"

    print(f"{result['backend']}, median (min-max) of {args.rounds} rounds; load {result['loadavg_at_start']}")
    print(f"single-reading POST: {f('post', 'post_us_without_event')} us without the event,")
    print(f"  {f('post', 'post_us_with_event')} with it, {f('post', 'post_us_with_event_and_alert_rules')}")
    print(f"  with it and 2 alert rules at ingest; XADD {f('post', 'xadd_server_us', 1)} us of server CPU")
    print(f"lb_set.lua on a {args.board_sites}-site board, us of server CPU per call:")
    print(f"  {f('rank', 'lb_set_us_without_ranks', 1)} without ranks, {f('rank', 'lb_set_us_top', 1)}")
    top = daily_boards.RANK_EVENT_TOP
    print(f"  reporting the top {top}'s moves, {f('rank', 'lb_set_us_every_move', 1)} every move")
    print(f"  calls that moved a rank: {f('rank', 'calls_moving_a_rank_top', 3)} in the top,")
    print(f"  {f('rank', 'calls_moving_a_rank_anywhere', 3)} anywhere")
    for name in ("idle", "flowing"):
        rate = figures[name]["events_per_s"]["median"]
        print(f"{name} ({rate:g} events/s, {args.clients} clients), per client:")
        print(f"  {f(name, 'xread_per_s_per_client', 2)} XREAD/s,", end=" ")
        print(f"Redis CPU {f(name, 'redis_cpu_ms_per_s_per_client', 3)} ms/s,", end=" ")
        print(f"app CPU {f(name, 'app_cpu_ms_per_s_per_client', 3)} ms/s")
    print(f"command: {reproduce_command()}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()

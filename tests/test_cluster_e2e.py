"""The seed's flow on a Redis Cluster gives the same answers as on a standalone server (issue 8).

For each backend (plain ``redis-server`` → core; Redis Stack → RedisTimeSeries) the session's
standalone server and its 3-master cluster of the same binaries (``conftest``) each get
``redisolar load --yes --seed 7`` (the cluster with ``REDISOLAR_REDIS_CLUSTER=true`` and one node's
URL) and ``redisolar serve``. Every request of the seed's Steps 11 and 12 and of the README's
transcript around them (docs/api.md: sites CRUD, listing pages and the map, search with each filter,
stats, readings one and batch, latest, ranges and aggregations, analytics, each leaderboard and a
site's rank, the reconcile route, the summary, the service routes, API keys) goes to both servers in
turn, and the two answers must be equal: status, JSON body (or page) and the ``Content-Type``,
``Link`` and ``Allow`` headers (with each server's own URL and API keys replaced by names).

Identical data: both loads are generated from the same seed up to the same hour (the load prints
its range; if an hour starts between the two loads, the first is loaded again), and every request
gives explicit timestamps derived from that hour, except the seed's own parameterless calls (kept as
the seed wrote them). What may legitimately differ is removed before comparing, each named in
:data:`VOLATILE` below with its reason; nothing else is. On Redis Stack the standalone server
searches with RediSearch and the cluster with the core structures (RediSearch indexes one shard
there), so the search answers also check that the two engines agree.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import BackendServer
from test_e2e import START_TIMEOUT, Server, answers, free_port, redisolar_command, wait_for

from redisolar import store

SEED = 7
DAY_MS = 86_400_000
SEED_DAY = {"start": "2024-01-20T00:00:00", "end": "2024-01-21T00:00:00"}
"""The day of the seed's Step 12 reading (``2024-01-20T12:00:00``)."""
SEED_GET = {"start": "2024-01-19T00:00:00", "end": "2024-01-20T00:00:00"}
"""The seed's Step 12 range query, as written."""
PREFIX = "cluster-e2e:"
LOADED = re.compile(r"\(.*?, (\S+) \.\. (\S+); seed (\d+)\)")
PAIRS = {"core": ("plain_redis", "plain_cluster"), "redistimeseries": ("stack_redis", "stack_cluster")}
"""Backend → its standalone server's and its cluster's session fixtures."""
RECONCILE_DEADLINE = 30.0
"""How long the reconcile route may answer 202 (the reconciler's first pass at start-up)."""

VOLATILE: dict[str, tuple[str, ...]] = {
    # Where Redis is, and the cluster's own report (checked in the test): different servers by design.
    "/health": ("redis.host", "redis.port", "redis.url", "cluster"),
    # Generated from the moment of the request ("now"): the two requests are milliseconds apart.
    # The summary's capacity factor divides by the period up to now (checked apart: see the test).
    "summary": ("summary.period_end", "summary.overall_efficiency_percent"),
    "analytics-now": ("period_start", "period_end"),
    "range-now": ("start_time", "end_time"),
    # A key's secret and id are random; its creation and last use are moments of requests.
    "key": ("key", "id", "created", "last_used"),
    "keys": ("keys.*.id", "keys.*.created", "keys.*.last_used"),
}
SORTED = {"keys": "keys"}
"""Lists compared as sorted by name: keys are listed oldest first by their creation second, so two
created within one second come in the order of their random ids."""


# -- the flow ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """One request of the flow and the status the standalone server must answer."""

    method: str
    path: str
    status: int
    params: dict[str, Any] | None = None
    body: Any = None
    accept: str = "application/json"
    key: str | None = None
    """The flow variable holding the API key to send (``Authorization: Bearer``)."""
    volatile: str | None = None
    """A :data:`VOLATILE` entry: the fields removed before comparing."""
    save: dict[str, str] = field(default_factory=dict)
    """Flow variable → field of the answer to remember (per server: each has its own keys)."""

    def describe(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in (self.params or {}).items())
        return f"{self.method} {self.path}{'?' + query if query else ''}"


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def site(site_id: int | None, capacity: float, city: str = "Sunnyville", **extra: Any) -> dict[str, Any]:
    body = {"capacity": capacity, "panels": 16, "address": "1 Test Road", "city": city, "state": "CA",
            "postal_code": "90210", "coordinate": {"lat": 34.05, "lng": -118.25}, **extra}  # fmt: skip
    return body if site_id is None else {"id": site_id, **body}


def reading(at: datetime | str, generated: float, used: float, temp: float) -> dict[str, Any]:
    stamp = at if isinstance(at, str) else iso(at)
    return {"timestamp": stamp, "wh_generated": generated, "wh_used": used, "temp_c": temp}


def service_calls() -> list[Call]:
    return [
        Call("GET", "/", 200),
        Call("GET", "/health", 200, volatile="/health"),
        Call("GET", "/api/openapi.json", 200),
        Call("GET", "/", 200, accept="text/html"),  # the dashboard
        Call("GET", "/api/docs", 200, accept="text/html"),
    ]


def site_calls() -> list[Call]:
    """Listing, map, CRUD, stats and search (docs/api.md "Sites"), around a site 100 created and deleted."""
    search = "/api/sites/search"
    return [
        Call("GET", "/api/sites", 200),
        Call("GET", "/api/sites", 200, {"limit": 2}),
        Call("GET", "/api/sites/", 200, {"limit": 2, "cursor": 4}),
        Call("GET", "/api/sites", 200, {"offset": 3, "limit": 1}),
        Call("GET", "/api/sites", 400, {"cursor": "abc"}),
        Call("GET", "/api/sites/map", 200, {"bbox": "-125,24,-66,50", "limit": 2}),
        Call("GET", "/api/sites/map", 200),
        Call("GET", "/api/sites/map", 400, {"bbox": "10,0,5,10"}),
        Call("GET", "/api/sites/stats", 200),
        Call("POST", "/api/sites", 201, body=site(100, 5.5)),
        Call("POST", "/api/sites", 409, body=site(100, 5.5)),
        Call("GET", "/api/sites/100", 200),
        Call("PUT", "/api/sites/100", 200, body=site(None, 6.0, city="Power City")),
        Call("PUT", "/api/sites/999", 404, body=site(None, 6.0)),
        Call("GET", "/api/sites/100", 200),
        Call("GET", "/api/sites/stats", 200),
        Call("GET", "/api/sites", 200, {"limit": 3, "offset": 3}),
        Call("GET", "/api/analytics/leaderboards/capacity", 200),
        Call("GET", "/api/analytics/leaderboards/capacity/site/100", 200, {"context": 1}),
        Call("GET", search, 200, {"q": "sol str"}),
        Call("GET", search, 200, {"q": "test"}),
        Call("GET", search, 200, {"state": "ca"}),
        Call("GET", search, 200, {"city": "power city"}),
        Call("GET", search, 200, {"postal_code": "75001"}),
        Call("GET", search, 200, {"min_capacity": 4, "max_capacity": 7}),
        Call("GET", search, 200, {"lat": 34.05, "lng": -118.24, "radius_km": 1000}),
        Call("GET", search, 200, {"lat": 34.05, "lng": -118.24, "radius_km": 5000, "limit": 3, "offset": 1}),
        Call("GET", search, 200, {"q": "solar", "state": "az"}),
        Call("GET", search, 200, {"state": "ca", "min_capacity": 5}),
        Call("GET", search, 200, {"limit": 2, "offset": 1}),
        Call("GET", search, 400, {"lat": 34.05}),
        Call("GET", search, 400, {"min_capacity": 7, "max_capacity": 4}),
        Call("DELETE", "/api/sites/100", 204),
        Call("GET", "/api/sites/100", 404),
        Call("DELETE", "/api/sites/100", 404),
        Call("GET", "/api/sites/stats", 200),
        Call("GET", search, 200, {"state": "ca"}),
        Call("GET", "/api/analytics/leaderboards/capacity", 200),
    ]


def reading_calls(end: datetime) -> list[Call]:
    """Readings one and batch, latest, ranges (docs/api.md "Readings"), and the seed's January POST."""
    path = "/api/analytics/readings"
    window = {"start": iso(end - timedelta(hours=3)), "end": iso(end + timedelta(minutes=1))}
    days = {"start": iso(end.replace(hour=0) - timedelta(days=3)), "end": iso(end + timedelta(minutes=1))}
    day_24 = {"start": iso(end - timedelta(hours=24)), "end": iso(end + timedelta(minutes=1))}
    batch = [reading(end - timedelta(minutes=150), 3100, 900, 27.0),
             reading(end - timedelta(minutes=90), 3300, 950, 27.5)]  # fmt: skip
    seed_reading = reading("2024-01-20T12:00:00", 200.0, 80.0, 28.5)
    return [
        Call("POST", f"{path}/1", 201, body=reading(end - timedelta(minutes=30), 200.0, 80.0, 28.5)),
        Call("POST", f"{path}/1/batch", 201, body=batch),
        Call("POST", f"{path}/2/batch", 400, body=[batch[0], {**batch[1], "timestamp": "yesterday"}]),
        Call("POST", f"{path}/99", 404, body=reading(end, 1.0, 1.0, 20.0)),
        Call("GET", f"{path}/1/latest", 200),
        Call("GET", f"{path}/3/latest", 200),
        Call("GET", f"{path}/1/wh_generated", 200, window),
        Call("GET", f"{path}/1/wh_generated", 200, {"aggregation": "sum", "bucket_size": DAY_MS, **days}),
        Call("GET", f"{path}/1/temp_c", 200, {"aggregation": "avg", "bucket_size": 21_600_000, **day_24}),
        Call("GET", f"{path}/1/net_generation", 200, window),
        Call("GET", f"{path}/2/wh_used", 200, {"aggregation": "max", "bucket_size": 3_600_000 * 6, **day_24}),
        Call("GET", f"{path}/4/wh_generated", 200, {"aggregation": "count", "bucket_size": DAY_MS, **days}),
        Call("GET", f"{path}/1/watts", 400),
        # The seed's Step 12 POST: older than site 1's retention window (400), then on a new site 6.
        Call("POST", f"{path}/1", 400, body=seed_reading),
        Call("POST", "/api/sites", 201, body=site(6, 5.0, address="10 Sunrise Blvd")),
        Call("POST", f"{path}/6", 201, body=seed_reading),
        Call("GET", f"{path}/6/wh_generated", 200, SEED_DAY),
        Call("GET", f"{path}/1/wh_generated", 400, SEED_GET),  # the seed's GET: before site 1's raw window
        Call("GET", f"{path}/6/wh_generated", 200, SEED_GET),
        Call("GET", f"{path}/6/latest", 200),
        # The seed's Step 11 range: the last 24 hours up to now.
        Call("GET", f"{path}/1/wh_generated", 200, {"start": iso(end - timedelta(hours=23))},
             volatile="range-now"),
    ]  # fmt: skip


def analytics_calls(end: datetime) -> list[Call]:
    """Analytics, every leaderboard and rank, the reconcile route, the summary (docs/api.md)."""
    today, yesterday = end.date().isoformat(), (end.date() - timedelta(days=1)).isoformat()
    midnight = end.replace(hour=0)
    boards = "/api/analytics/leaderboards"
    return [
        Call("GET", "/api/analytics/analytics/1", 200,
             {"start": iso(end - timedelta(hours=24)), "end": iso(end + timedelta(minutes=1))}),
        Call("GET", "/api/analytics/analytics/1", 200,
             {"start": iso(midnight - timedelta(days=3)), "end": iso(midnight - timedelta(days=2))}),
        Call("GET", "/api/analytics/analytics/5", 200,
             {"start": iso(midnight - timedelta(days=6)), "end": iso(end + timedelta(minutes=1))}),
        Call("GET", "/api/analytics/analytics/1", 404, {"start": "2025-01-01", "end": "2025-01-02"}),
        Call("GET", "/api/analytics/analytics/6", 200, SEED_DAY),
        Call("GET", "/api/analytics/analytics/1", 200, volatile="analytics-now"),  # the seed's curl
        Call("GET", f"{boards}/capacity", 200),
        Call("GET", f"{boards}/generation", 200),  # the seed's: today
        Call("GET", f"{boards}/generation", 200, {"day": today, "limit": 3}),
        Call("GET", f"{boards}/efficiency", 200, {"day": today}),
        Call("GET", f"{boards}/efficiency", 200, {"day": yesterday, "limit": 2, "offset": 1}),
        Call("GET", f"{boards}/generation", 200, {"day": "2024-01-20"}),
        Call("GET", f"{boards}/capacity/site/1", 200),
        Call("GET", f"{boards}/capacity/site/1", 200, {"context": 1}),
        Call("GET", f"{boards}/generation/site/3", 200, {"day": yesterday}),
        Call("GET", f"{boards}/efficiency/site/2", 200, {"day": today}),
        Call("GET", f"{boards}/generation/site/6", 200, {"day": "2024-01-20"}),
        Call("GET", f"{boards}/generation/site/6", 404, {"day": yesterday}),
        Call("GET", f"{boards}/capacity", 400, {"limit": 101}),
        Call("GET", f"{boards}/watts", 400),
        Call("POST", f"{boards}/update", 200, {"day": yesterday}),
        Call("POST", f"{boards}/update", 200),
        Call("GET", f"{boards}/generation", 200, {"day": yesterday}),
        Call("GET", f"{boards}/efficiency", 200, {"day": today}),
        Call("GET", "/api/analytics/summary", 200, volatile="summary"),
        Call("GET", "/api/sites/stats", 200),
    ]  # fmt: skip


def key_calls(end: datetime) -> list[Call]:
    """API keys last (the first key ends ``AUTH_MODE=auto``'s keyless writes): an admin key, a write
    key for site 1, writes with and without it, its revocation."""
    path = "/api/analytics/readings"
    late = reading(end - timedelta(minutes=10), 10.0, 5.0, 20.0)
    return [
        Call("POST", "/api/keys", 201, body={"scope": "admin", "name": "ops"}, volatile="key",
             save={"admin": "key", "admin_id": "id"}),
        Call("POST", "/api/keys", 201, body={"scope": "write", "name": "meter 1", "sites": [1]},
             key="admin", volatile="key", save={"writer": "key", "writer_id": "id"}),
        Call("GET", "/api/keys", 200, key="admin", volatile="keys"),
        Call("POST", f"{path}/1", 401, body=late),
        Call("POST", f"{path}/1", 201, body=late, key="writer"),
        Call("POST", f"{path}/2", 403, body=late, key="writer"),
        Call("GET", "/api/keys/{writer_id}", 200, key="admin", volatile="key"),
        Call("DELETE", "/api/keys/{writer_id}", 204, key="admin"),
        Call("POST", f"{path}/1", 401, body=late, key="writer"),
        Call("GET", f"{path}/1/latest", 200),
    ]  # fmt: skip


def the_flow(end: datetime) -> list[Call]:
    """Every request, in order; ``end`` is the newest loaded reading's time (an hour)."""
    return [*service_calls(), *site_calls(), *reading_calls(end), *analytics_calls(end), *key_calls(end),
            *service_calls()]  # fmt: skip


# -- running it ------------------------------------------------------------------------------------
@dataclass
class Target:
    """One served store: its base URL and the flow variables its answers gave (API keys)."""

    name: str
    base: str
    variables: dict[str, str] = field(default_factory=dict)

    def send(self, call: Call) -> requests.Response:
        headers = {"Accept": call.accept}
        if call.key:
            headers["Authorization"] = f"Bearer {self.variables[call.key]}"
        url = self.base + call.path.format(**self.variables)
        for _ in range(int(RECONCILE_DEADLINE / 0.2)):
            response = requests.request(
                call.method, url, params=call.params, json=call.body, headers=headers, timeout=15
            )
            if not (call.path.endswith("/update") and response.status_code == 202):
                return response
            time.sleep(0.2)  # the reconciler's pass in progress; the route's own answer follows
        return response

    def answer(self, call: Call, response: requests.Response) -> dict[str, Any]:
        """What is compared: the status, the JSON body (the text if none) and the headers that carry
        content, with this target's base URL and flow variables replaced by their names."""
        text = response.text.replace(self.base, "<base>")
        for name, value in self.variables.items():
            text = text.replace(value, f"<{name}>")
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = text
        if call.volatile is not None:
            for path in VOLATILE[call.volatile]:
                drop(body, path.split("."))
            if call.volatile in SORTED and isinstance(body, dict):
                body[SORTED[call.volatile]].sort(key=lambda item: item["name"])
        headers = {name: response.headers[name].replace(self.base, "<base>")
                   for name in ("Content-Type", "Link", "Allow") if name in response.headers}  # fmt: skip
        return {"status": response.status_code, "body": body, "headers": headers}

    def remember(self, call: Call, response: requests.Response) -> None:
        for name, where in call.save.items():
            self.variables[name] = response.json()[where]


def drop(value: Any, path: list[str]) -> None:
    """Remove ``path`` (dotted; ``*`` is every item of a list) from ``value`` if present."""
    head, rest = path[0], path[1:]
    if head == "*" and isinstance(value, list):
        for item in value:
            drop(item, rest)
    elif isinstance(value, dict) and head in value:
        if rest:
            drop(value[head], rest)
        else:
            del value[head]


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where ``a`` and ``b`` differ: ``path: a != b`` lines (exact equality, floats included)."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                found.append(f"{where}.{key}: {'missing' if key not in a else 'present'} on the standalone")
            else:
                found.extend(differences(a[key], b[key], f"{where}.{key}"))
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            line
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for line in differences(x, y, f"{where}[{i}]")
        ]
    return (
        []
        if a == b and type(a) is type(b)
        else [f"{where or '.'}: {json.dumps(a)[:400]} != {json.dumps(b)[:400]}"]
    )


def run_flow(flow: list[Call], standalone: Target, cluster: Target) -> tuple[list[str], list[str]]:
    """Each call on the standalone target, then on the cluster: (wrong statuses, differences)."""
    wrong, differ = [], []
    for number, call in enumerate(flow, 1):
        responses = [target.send(call) for target in (standalone, cluster)]
        for target, response in zip((standalone, cluster), responses, strict=True):
            if response.status_code == call.status:
                target.remember(call, response)
        first, second = (t.answer(call, r) for t, r in zip((standalone, cluster), responses, strict=True))
        label = f"#{number} {call.describe()}"
        if first["status"] != call.status:
            wrong.append(
                f"{label}: standalone answered {first['status']}, expected {call.status}: {first['body']}"
            )
        if diff := differences(first, second):
            differ.append(f"{label}:\n    " + "\n    ".join(diff))
    return wrong, differ


# -- the servers ---------------------------------------------------------------------------------------
def load(env: dict[str, str]) -> tuple[str, str]:
    """``redisolar load --yes --seed SEED``: the loaded range (start, end) it printed."""
    done = subprocess.run(
        [*redisolar_command(), "load", "--yes", "--seed", str(SEED)],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Loaded 5 sites and 840 readings" in done.stdout, done.stdout
    match = LOADED.search(done.stdout)
    assert match and int(match.group(3)) == SEED, done.stdout
    return match.group(1), match.group(2)


def environment(target: BackendServer, tmp_path: Path) -> dict[str, str]:
    """The two ``redisolar`` processes' settings: the same but for where Redis is (and that it is a
    cluster). Rate limits off (the flow is one client sending quickly); instance files none."""
    from test_shutdown import hermetic_env

    return hermetic_env(
        **target.env(),
        REDISOLAR_KEY_PREFIX=PREFIX,
        REDISOLAR_RATE_LIMIT_WRITES="0",
        REDISOLAR_RATE_LIMIT_READS="0",
        REDISOLAR_INSTANCE_PATH=str(tmp_path),
    )


@pytest.fixture(
    params=[
        pytest.param("core", marks=[pytest.mark.core, pytest.mark.cluster_core]),
        pytest.param(
            "redistimeseries", marks=[pytest.mark.redistimeseries, pytest.mark.cluster_redistimeseries]
        ),
    ]
)
def pair(request: pytest.FixtureRequest) -> tuple[BackendServer, BackendServer]:
    """The backend's standalone server and cluster (session-wide, every primary flushed)."""
    backend: str = request.param
    standalone_name, cluster_name = PAIRS[backend]
    targets = []
    for fixture, target in ((standalone_name, backend), (cluster_name, f"cluster_{backend}")):
        server = request.getfixturevalue(fixture)
        if not server.is_running():  # an earlier test stopped it to simulate an outage
            server.start()
        targets.append(BackendServer(backend, server, target))
        connection = targets[-1].client()
        store.flush_all(connection)
        connection.close()
    return targets[0], targets[1]


@pytest.fixture
def served(
    pair: tuple[BackendServer, BackendServer], tmp_path: Path
) -> Iterator[tuple[datetime, Target, Target]]:
    """Both loaded with the same data (same hour), both served: (newest reading's time, targets)."""
    envs = [environment(target, tmp_path / target.target) for target in pair]
    for env in envs:
        Path(env["REDISOLAR_INSTANCE_PATH"]).mkdir(parents=True)
    ranges = [load(env) for env in envs]
    if ranges[0] != ranges[1]:  # an hour began between the loads: the standalone's again, in this hour
        ranges[0] = load(envs[0])
    assert ranges[0] == ranges[1], f"the two loads cover different ranges: {ranges}"
    servers: list[Server] = []
    targets: list[Target] = []
    try:
        for backend, env in zip(pair, envs, strict=True):
            port = free_port()
            args = ["serve", "--port", str(port), "--workers", "1", "--threads", "2"]
            servers.append(Server(args, env, tmp_path / backend.target / "logs"))
            targets.append(Target(backend.target, f"http://127.0.0.1:{port}"))
        for server, target in zip(servers, targets, strict=True):
            wait_for(
                answers(f"{target.base}/health"), START_TIMEOUT, f"{target.name} /health", server.process
            )
        yield datetime.fromisoformat(ranges[0][1]).astimezone(UTC), targets[0], targets[1]
        for server in servers:
            assert "Traceback" not in server.output(), server.output()[-3000:]
    finally:
        for server in servers:
            server.close()


def test_the_seeds_flow_answers_the_same_on_a_cluster(served: tuple[datetime, Target, Target]) -> None:
    end, standalone, cluster = served
    health = requests.get(f"{cluster.base}/health", timeout=5).json()
    assert health["cluster"]["state"] == "ok" and health["cluster"]["masters"] == 3, health
    wrong, differ = run_flow(the_flow(end), standalone, cluster)
    assert not wrong, "the standalone server's answers are not the expected ones:\n" + "\n".join(wrong)
    assert not differ, "the cluster answered differently:\n" + "\n".join(differ)
    for target in (standalone, cluster):  # the summary's capacity factor, left out above
        fleet = requests.get(f"{target.base}/api/analytics/summary", timeout=5).json()["summary"]
        hours = (parse(fleet["period_end"]) - parse(fleet["period_start"])) / timedelta(hours=1)
        expected = 100 * fleet["total_generation_24h_wh"] / (fleet["total_capacity_kw"] * 1000 * hours)
        assert fleet["overall_efficiency_percent"] == pytest.approx(expected)

"""Failover under write load: ``kill -9`` of a master of a private 3-master cluster (one replica each)
while writers POST single readings to ``redisolar serve`` with ``DURABILITY=replicated``.

What must hold (issue 8): the API answers only 2xx or 503 with ``Retry-After`` meanwhile (never a 500),
it recovers by itself once the replica is promoted (the same server process, no restart: redis-py
refreshes its slot map), and no acknowledged reading is lost: every reading answered 201 is stored.

The figures (acknowledged, stored, lost, 503s and the seconds from the first to the last 503) are
printed and written to ``artifacts/failover-<backend>.json`` for the closing note. Deadlines bound the
waits; nothing asserts a duration.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from redis.crc import key_slot
from test_e2e import Server, free_port, wait_for
from test_shutdown import hermetic_env

from redisolar.embedded import LocalCluster, RedisServer, ServerSpec

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
SITES_PER_MASTER = 2
WRITERS = 3
WARM_UP_READINGS = 30
"""Readings acknowledged before the kill (the load is running)."""
RECOVERED_READINGS = 30
"""Readings of the killed master's sites acknowledged after the kill before the writers stop."""
FAILOVER_DEADLINE = 60.0
STEP = timedelta(seconds=1)
SITE = {"capacity": 4.5, "panels": 3, "address": "1 Main St", "city": "Oakland", "state": "CA",
        "postal_code": "94577", "coordinate": {"lat": 37.72, "lng": -122.2}}  # fmt: skip


@dataclass
class Load:
    """What the writers saw: acknowledged readings per site, 503s, anything else."""

    started: float = field(default_factory=time.monotonic)
    acknowledged: dict[int, list[str]] = field(default_factory=dict)
    acked_at: list[tuple[float, int]] = field(default_factory=list)
    unavailable: list[float] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def acked(self, site_id: int, timestamp: str) -> None:
        with self.lock:
            self.acknowledged.setdefault(site_id, []).append(timestamp)
            self.acked_at.append((time.monotonic(), site_id))

    def acked_since(self, moment: float, sites: set[int]) -> int:
        with self.lock:
            return sum(1 for at, site in self.acked_at if at > moment and site in sites)


def _spec(request: pytest.FixtureRequest) -> tuple[str, ServerSpec]:
    backend: str = request.param
    spec_fixture = "plain_spec" if backend == "core" else "stack_spec"
    spec: ServerSpec = request.getfixturevalue(spec_fixture)
    return backend, spec


@pytest.fixture(
    params=[
        pytest.param("core", marks=pytest.mark.core),
        pytest.param("redistimeseries", marks=pytest.mark.redistimeseries),
    ]
)
def cluster(request: pytest.FixtureRequest) -> Iterator[tuple[str, LocalCluster]]:
    """A private cluster: 3 masters, a replica each, node timeout 1 s; its backend's name."""
    backend, spec = _spec(request)
    with LocalCluster(spec, masters=3, replicas_per_master=1, node_timeout_ms=1000) as local:
        yield backend, local


@pytest.fixture
def served(cluster: tuple[str, LocalCluster], tmp_path: Path) -> Iterator[tuple[str, LocalCluster, str]]:
    """``redisolar serve`` on the cluster with DURABILITY=replicated: (backend, cluster, base URL)."""
    backend, local = cluster
    env = hermetic_env(
        REDISOLAR_REDIS_URL=local.url,
        REDISOLAR_REDIS_CLUSTER="true",
        REDISOLAR_DURABILITY="replicated",
        REDISOLAR_TIMESERIES=backend,
        REDISOLAR_RATE_LIMIT_WRITES="0",
        REDISOLAR_RATE_LIMIT_READS="0",
        REDISOLAR_RETRY_AFTER_SECONDS="1",
        REDISOLAR_REDIS_SOCKET_TIMEOUT="1",
        REDISOLAR_INSTANCE_PATH=str(tmp_path),
    )
    port = free_port()
    server = Server(
        ["serve", "--port", str(port), "--workers", "1", "--threads", "4"], env, tmp_path / "logs"
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(serving(f"{base}/api/sites/1"), 60.0, "the API", server.process)
        yield backend, local, base
    finally:
        server.close()


def serving(url: str) -> Any:
    """A probe: the API answers from Redis (a 404 for a missing site will do)."""

    def probe() -> bool:
        try:
            return requests.get(url, timeout=2).status_code in (200, 404)
        except requests.RequestException:
            return False

    return probe


def sites_on_every_master(local: LocalCluster) -> dict[int, RedisServer]:
    """Site ids, ``SITES_PER_MASTER`` per master, by the master holding their ``{site:ID}`` slot."""
    chosen: dict[int, RedisServer] = {}
    per_master: dict[int, int] = {}
    site_id = 0
    while len(chosen) < SITES_PER_MASTER * 3:
        site_id += 1
        master = local.master_for_slot(key_slot(f"{{site:{site_id}}}".encode()))
        if per_master.get(master.port, 0) < SITES_PER_MASTER:
            per_master[master.port] = per_master.get(master.port, 0) + 1
            chosen[site_id] = master
    return chosen


def create_sites(base: str, site_ids: list[int]) -> None:
    for site_id in site_ids:
        body = {**SITE, "id": site_id}
        response = requests.post(f"{base}/api/sites/", json=body, timeout=10)
        assert response.status_code == 201, response.text


def writer(base: str, site_ids: list[int], first: datetime, load: Load, offset: int) -> None:
    """POST single readings, the sites in turn, every timestamp new; record what was acknowledged."""
    session = requests.Session()
    n = offset
    while not load.stop.is_set():
        site_id = site_ids[n % len(site_ids)]
        when = (first + STEP * (n // len(site_ids))).isoformat()
        body = {"timestamp": when, "wh_generated": 100.0 + n % 7, "wh_used": 50.0, "temp_c": 20.0}
        n += WRITERS
        try:
            response = session.post(f"{base}/api/analytics/readings/{site_id}", json=body, timeout=10)
        except requests.RequestException:
            continue  # no answer: not acknowledged
        _record(load, response, site_id, when)


def _record(load: Load, response: requests.Response, site_id: int, when: str) -> None:
    if response.status_code == 201:
        load.acked(site_id, when)
    elif response.status_code == 503 and response.headers.get("Retry-After", "").isdigit():
        assert response.json()["error"]
        load.unavailable.append(time.monotonic())
    else:
        load.unexpected.append(
            f"{response.status_code} {response.headers.get('Retry-After')} {response.text}"
        )


def stored(base: str, site_id: int, first: datetime) -> set[str]:
    params = {"start": (first - STEP).isoformat(), "end": (first + timedelta(hours=2)).isoformat()}
    response = requests.get(
        f"{base}/api/analytics/readings/{site_id}/wh_generated", params=params, timeout=30
    )
    assert response.status_code == 200, response.text
    return {_normal(point["timestamp"]) for point in response.json()["data"]}


def _normal(timestamp: str) -> str:
    return datetime.fromisoformat(timestamp).astimezone(UTC).isoformat()


def wait_until(condition: Any, what: str, deadline: float = FAILOVER_DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"timed out after {deadline:g} s waiting for {what}")
        time.sleep(0.1)


def test_kill_a_master_under_write_load_loses_no_acknowledged_reading(
    served: tuple[str, LocalCluster, str],
) -> None:
    backend, local, base = served
    sites = sites_on_every_master(local)
    create_sites(base, list(sites))
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    load = Load()
    threads = [
        threading.Thread(target=writer, args=(base, list(sites), first, load, i), daemon=True)
        for i in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(load.acked_at) >= WARM_UP_READINGS, "the load to run")
        victim = sites[next(iter(sites))]
        victims = {site for site, master in sites.items() if master is victim}
        killed_at = time.monotonic()
        local.kill(victim)
        wait_until(lambda: victim not in local.primaries(), "a replica to be promoted")
        wait_until(lambda: load.acked_since(killed_at, victims) >= RECOVERED_READINGS, "the API to recover")
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=30)

    acknowledged = {site: {_normal(t) for t in times} for site, times in load.acknowledged.items()}
    lost = {site: sorted(times - stored(base, site, first)) for site, times in acknowledged.items()}
    figures = {
        "backend": backend,
        "durability": "replicated",
        "masters": 3,
        "replicas_per_master": 1,
        "cluster_node_timeout_ms": 1000,
        "writers": WRITERS,
        "acknowledged": sum(len(t) for t in acknowledged.values()),
        "stored_of_acknowledged": sum(len(t) - len(lost[s]) for s, t in acknowledged.items()),
        "lost": sum(len(t) for t in lost.values()),
        "responses_503": len(load.unavailable),
        "seconds_of_503": max(load.unavailable) - min(load.unavailable) if load.unavailable else 0.0,
        "seconds_kill_to_first_recovered_write": _recovery(load, killed_at, victims),
        "unexpected": load.unexpected[:5],
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"failover-{backend}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nfailover ({backend}): {json.dumps(figures)}")
    assert not load.unexpected, load.unexpected[:5]
    assert figures["lost"] == 0, {site: times[:5] for site, times in lost.items() if times}
    assert figures["acknowledged"] >= WARM_UP_READINGS + RECOVERED_READINGS


def _recovery(load: Load, killed_at: float, victims: set[int]) -> float:
    with load.lock:
        after = [at for at, site in load.acked_at if at > killed_at and site in victims]
    return min(after) - killed_at if after else float("nan")

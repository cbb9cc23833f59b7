"""Failover under write load: ``kill -9`` of a master of a private 3-master cluster (one replica each)
while writers POST single readings to one ``redisolar serve`` process, for ``DURABILITY=replicated``
and ``DURABILITY=local``, on both backends.

The scenario is an operator's. A master crashes (the one holding the first site and, with the
default key prefix, the API-key registry that every request's access check reads: the worst case for
the rest of the fleet); the cluster fails it (``cluster-node-timeout`` 1 s) and promotes its replica.
Nothing happens to the API process: it finds the new master by itself (redis-py's slot map).

- ``local``: that is all; the killed shard's sites are acknowledged again once the replica is
  promoted, without any other action.
- ``replicated``: a write counts once a replica has it too (``WAIT 1``). The promoted replica has no
  replica of its own, so its shard answers 503 ``NotReplicated`` (the correct answer: nobody else has
  the write); the test waits until it has seen that answer, then restarts the killed node (as a
  supervisor, systemd or Kubernetes, would): it rejoins from its ``nodes.conf`` as the new master's
  replica, syncs, and writes are acknowledged again. A second replica per master would recover
  without the restart, but then ``WAIT 1`` is only as good as the election (the replica that did not
  get the write could be promoted); with one replica the only candidate is the one that acknowledged,
  so "no acknowledged reading is lost" holds by construction, and that is what is asserted.

Afterwards the writers re-send every reading answered 503 (as a client told ``Retry-After`` does).

What must hold:

- the API answers only 201, or 503 with ``Retry-After`` (never a 500, never no answer);
- it recovers by itself: readings of the killed shard's sites sent after the kill are acknowledged
  again, by the same process;
- ``replicated``: every reading answered 201 is stored (lost == 0); every reading answered
  ``NotReplicated`` is stored too (its master had it: the reason to re-send, never to write twice);
- ``local`` (asynchronous replication may lose the last writes): every lost reading, if any, is one
  the killed master acknowledged before it died; a reading of another shard, or one acknowledged
  after the kill, is never lost. The count is reported, not bounded (the replication lag at the
  instant of the kill is a matter of speed);
- after the re-sends every reading sent is stored exactly once, but the lost ones (re-sending is
  idempotent: a reading is an upsert by timestamp).

The figures (acknowledged, stored, lost, 503s and seconds of 503, the failover's timeline) are printed
and written to ``artifacts/failover-<backend>.json`` (``replicated``) and
``artifacts/failover-<backend>-local.json`` for the closing note. Deadlines bound the waits; nothing
asserts a duration.
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

from redisolar.dao.key_manager import KeyManager
from redisolar.embedded import LocalCluster, RedisServer, ServerSpec

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
MASTERS = 3
REPLICAS_PER_MASTER = 1
NODE_TIMEOUT_MS = 1000
SITES_PER_MASTER = 2
WRITERS = 3
WARM_UP_READINGS = 30
"""Readings acknowledged before the kill (the load is running)."""
RECOVERED_READINGS = 30
"""Readings of the killed master's sites, sent after the kill, acknowledged before the writers stop."""
FAILOVER_DEADLINE = 60.0
REQUEST_TIMEOUT = 30.0
"""Generous: a request during the failover waits for redis-py's retries and ``WAIT`` (seconds)."""
RESEND_ATTEMPTS = 5
STEP = timedelta(seconds=1)
SITE: dict[str, Any] = {
    "capacity": 4.5, "panels": 3, "address": "1 Main St", "city": "Oakland", "state": "CA",
    "postal_code": "94577", "coordinate": {"lat": 37.72, "lng": -122.2},
}  # fmt: skip


@dataclass(frozen=True)
class Answer:
    """One POST: its reading, when it was sent and answered (monotonic), and how."""

    site: int
    timestamp: str
    sent: float
    answered: float
    status: int
    not_replicated: bool = False
    """A 503 saying no replica acknowledged the write (it may be stored on the master)."""


@dataclass
class Load:
    """Every answer the writers got, and anything that was not a 201 or a 503 with ``Retry-After``."""

    answers: list[Answer] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)

    def odd(self, what: str) -> None:
        with self.lock:
            self.unexpected.append(what)

    def snapshot(self) -> list[Answer]:
        with self.lock:
            return list(self.answers)

    def acknowledged(self) -> int:
        return sum(1 for answer in self.snapshot() if answer.status == 201)

    def not_replicated(self, sites: set[int]) -> bool:
        return any(answer.not_replicated and answer.site in sites for answer in self.snapshot())

    def recovered(self, since: float, sites: set[int]) -> list[Answer]:
        """The 201s of ``sites`` for requests sent after ``since``, in the order they were sent."""
        answers = self.snapshot()
        found = [a for a in answers if a.status == 201 and a.sent > since and a.site in sites]
        return sorted(found, key=lambda a: a.sent)


@dataclass(frozen=True)
class Failover:
    """The scenario's moments (monotonic; ``restarted`` None when the killed node stays down), the
    killed master and its sites."""

    victim: RedisServer
    victims: set[int]
    killed: float
    promoted: float
    restarted: float | None


def _spec(request: pytest.FixtureRequest, backend: str) -> ServerSpec:
    spec_fixture = "plain_spec" if backend == "core" else "stack_spec"
    spec: ServerSpec = request.getfixturevalue(spec_fixture)
    return spec


@pytest.fixture(
    params=[
        pytest.param(("core", "replicated"), marks=pytest.mark.core, id="core-replicated"),
        pytest.param(("core", "local"), marks=pytest.mark.core, id="core-local"),
        pytest.param(
            ("redistimeseries", "replicated"),
            marks=pytest.mark.redistimeseries,
            id="redistimeseries-replicated",
        ),
        pytest.param(
            ("redistimeseries", "local"), marks=pytest.mark.redistimeseries, id="redistimeseries-local"
        ),
    ]
)
def cluster(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, LocalCluster]]:
    """A private cluster (3 masters, a replica each, node timeout 1 s): (backend, durability, cluster)."""
    backend, durability = request.param
    spec = _spec(request, backend)
    with LocalCluster(
        spec, masters=MASTERS, replicas_per_master=REPLICAS_PER_MASTER, node_timeout_ms=NODE_TIMEOUT_MS
    ) as local:
        yield backend, durability, local


@dataclass(frozen=True)
class Served:
    backend: str
    durability: str
    local: LocalCluster
    base: str
    server: Server


@pytest.fixture
def served(cluster: tuple[str, str, LocalCluster], tmp_path: Path) -> Iterator[Served]:
    """One ``redisolar serve`` process on the cluster, seeded with one node's URL only."""
    backend, durability, local = cluster
    env = hermetic_env(
        REDISOLAR_REDIS_URL=local.url,
        REDISOLAR_REDIS_CLUSTER="true",
        REDISOLAR_DURABILITY=durability,
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
        yield Served(backend, durability, local, base, server)
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
    while len(chosen) < SITES_PER_MASTER * MASTERS:
        site_id += 1
        master = local.master_for_slot(key_slot(f"{{site:{site_id}}}".encode()))
        if per_master.get(master.port, 0) < SITES_PER_MASTER:
            per_master[master.port] = per_master.get(master.port, 0) + 1
            chosen[site_id] = master
    return chosen


def create_sites(base: str, site_ids: list[int]) -> None:
    for site_id in site_ids:
        body = {**SITE, "id": site_id}
        response = requests.post(f"{base}/api/sites/", json=body, timeout=REQUEST_TIMEOUT)
        assert response.status_code == 201, response.text


def writer(base: str, site_ids: list[int], first: datetime, load: Load, offset: int) -> None:
    """POST single readings, the sites in turn, every reading new (none is sent twice: a reading
    counts as acknowledged or not by its one answer)."""
    session = requests.Session()
    n = offset
    while not load.stop.is_set():
        site_id = site_ids[n % len(site_ids)]
        when = (first + STEP * (n // len(site_ids))).isoformat()
        body: dict[str, Any] = {
            "timestamp": when,
            "wh_generated": 100.0 + n % 7,
            "wh_used": 50.0,
            "temp_c": 20.0,
        }
        n += WRITERS
        sent = time.monotonic()
        try:
            response = session.post(
                f"{base}/api/analytics/readings/{site_id}", json=body, timeout=REQUEST_TIMEOUT
            )
        except requests.RequestException as exc:
            load.odd(f"no answer for site {site_id}: {exc}")
            continue
        _record(load, response, site_id, when, sent)


def _record(load: Load, response: requests.Response, site_id: int, when: str, sent: float) -> None:
    answered = time.monotonic()
    status = response.status_code
    if status == 201:
        load.add(Answer(site_id, _normal(when), sent, answered, status))
    elif status == 503 and response.headers.get("Retry-After", "").isdigit() and response.json()["error"]:
        details = response.json().get("details") or {}
        not_replicated = isinstance(details, dict) and "replicas_required" in details
        load.add(Answer(site_id, _normal(when), sent, answered, status, not_replicated))
    else:
        load.odd(f"{status} {response.headers.get('Retry-After')} {response.text[:300]}")


def resend_unavailable(base: str, load: Load) -> int:
    """POST again every reading answered 503 (the writers have stopped), as a client told
    ``Retry-After`` does (a few times, should one be a 503 again); the number re-sent."""
    session = requests.Session()
    unavailable = [a for a in load.snapshot() if a.status == 503]
    for answer in unavailable:
        body: dict[str, Any] = {
            "timestamp": answer.timestamp,
            "wh_generated": 1.0,
            "wh_used": 50.0,
            "temp_c": 20.0,
        }
        for _ in range(RESEND_ATTEMPTS):
            response = session.post(
                f"{base}/api/analytics/readings/{answer.site}", json=body, timeout=REQUEST_TIMEOUT
            )
            if response.status_code != 503:
                break
            time.sleep(int(response.headers["Retry-After"]))
        assert response.status_code == 201, response.text
    return len(unavailable)


def stored(base: str, site_id: int, first: datetime) -> list[str]:
    """The timestamps of ``site_id``'s stored readings, in order (through the API)."""
    params = {"start": (first - STEP).isoformat(), "end": (first + timedelta(hours=2)).isoformat()}
    response = requests.get(
        f"{base}/api/analytics/readings/{site_id}/wh_generated", params=params, timeout=REQUEST_TIMEOUT
    )
    assert response.status_code == 200, response.text
    return [_normal(point["timestamp"]) for point in response.json()["data"]]


def _normal(timestamp: str) -> str:
    return datetime.fromisoformat(timestamp).astimezone(UTC).isoformat()


def wait_until(condition: Any, what: str, served: Served, deadline: float = FAILOVER_DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            output = served.server.output()[-3000:]
            pytest.fail(f"timed out after {deadline:g} s waiting for {what}; the API's log:\n{output}")
        time.sleep(0.1)


def run_failover(served: Served, sites: dict[int, RedisServer], first: datetime, load: Load) -> Failover:
    """Writers on every site; kill the first site's master; once its replica took over (and, for
    ``replicated``, answered NotReplicated) restart it when the durability needs a replica; wait until
    the killed shard's sites are acknowledged again; stop the writers."""
    local = served.local
    threads = [
        threading.Thread(target=writer, args=(served.base, list(sites), first, load, i), daemon=True)
        for i in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    restarted: float | None = None
    try:
        wait_until(lambda: load.acknowledged() >= WARM_UP_READINGS, "the load to run", served)
        victim = sites[next(iter(sites))]
        victims = {site for site, master in sites.items() if master is victim}
        killed = time.monotonic()
        local.kill(victim)
        wait_until(lambda: victim not in local.primaries(), "a replica to be promoted", served)
        promoted = time.monotonic()
        if served.durability == "replicated":
            wait_until(
                lambda: load.not_replicated(victims), "a NotReplicated 503 from the new master", served
            )
            local.start_node(victim)  # the operator's supervisor: it rejoins as the new master's replica
            restarted = time.monotonic()
        wait_until(
            lambda: len(load.recovered(killed, victims)) >= RECOVERED_READINGS, "the API to recover", served
        )
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=REQUEST_TIMEOUT + 5)
    assert not any(thread.is_alive() for thread in threads), "a writer is stuck"
    return Failover(victim, victims, killed, promoted, restarted)


def figures(
    served: Served, failover: Failover, load: Load, acked_stored: dict[int, set[str]], resent: int
) -> dict[str, Any]:
    """What the closing note reports (seconds rounded to 10 ms). ``acked_stored``: what was stored
    before the re-sends."""
    answers = load.snapshot()
    acked = {(a.site, a.timestamp) for a in answers if a.status == 201}
    sent = {(a.site, a.timestamp) for a in answers}
    stored_readings = {(site, t) for site, times in acked_stored.items() for t in times}
    lost = acked - stored_readings
    unavailable = [a for a in answers if a.status == 503]
    on_killed = [a for a in unavailable if a.site in failover.victims]
    first_back = load.recovered(failover.killed, failover.victims)[0]
    keys = KeyManager()

    def since_kill(moment: float | None) -> float | None:
        return None if moment is None else round(moment - failover.killed, 2)

    def on_victim(key: str) -> bool:
        return served.local.master_for_key(key).port in {
            failover.victim.port,
            _promoted_port(served, failover),
        }

    return {
        "backend": served.backend,
        "durability": served.durability,
        "masters": MASTERS,
        "replicas_per_master": REPLICAS_PER_MASTER,
        "cluster_node_timeout_ms": NODE_TIMEOUT_MS,
        "writers": WRITERS,
        "sites": SITES_PER_MASTER * MASTERS,
        "sites_on_killed_master": len(failover.victims),
        "killed_master_holds_api_key_registry": on_victim(keys.api_keys_key()),
        "killed_master_holds_sites_index": on_victim(keys.site_ids_key()),
        "sent": len(answers),
        "acknowledged": len(acked),
        "stored_of_acknowledged": len(acked & stored_readings),
        "lost": len(lost),
        "stored_not_acknowledged": len((sent - acked) & stored_readings),
        "responses_503": len(unavailable),
        "responses_503_killed_shard": len(on_killed),
        "responses_503_other_shards": len(unavailable) - len(on_killed),
        "responses_503_not_replicated": sum(1 for a in unavailable if a.not_replicated),
        "resent_after_503": resent,
        "seconds_kill_to_promotion_seen": since_kill(failover.promoted),
        "seconds_kill_to_restart_of_killed_node": since_kill(failover.restarted),
        "seconds_of_503": since_kill(first_back.answered),
        "seconds_of_503_is": "kill -9 to the first 201 of a killed-shard site sent after the kill",
        "seconds_first_to_last_503": round(
            max(a.answered for a in unavailable) - min(a.answered for a in unavailable), 2
        )
        if unavailable
        else 0.0,
        "unexpected": load.unexpected[:5],
    }


def _promoted_port(served: Served, failover: Failover) -> int:
    """The port of the node serving the killed master's slots now."""
    site = next(iter(failover.victims))
    return served.local.master_for_slot(key_slot(f"{{site:{site}}}".encode())).port


def test_kill_a_master_under_write_load(served: Served) -> None:
    sites = sites_on_every_master(served.local)
    create_sites(served.base, list(sites))
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    load = Load()
    pid = served.server.process.pid

    failover = run_failover(served, sites, first, load)

    assert served.server.process.poll() is None and served.server.process.pid == pid  # never restarted
    before = {site: set(stored(served.base, site, first)) for site in sites}
    resent = resend_unavailable(served.base, load)
    after = {site: stored(served.base, site, first) for site in sites}
    result = figures(served, failover, load, before, resent)
    suffix = "" if served.durability == "replicated" else f"-{served.durability}"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"failover-{served.backend}{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nfailover ({served.backend}, DURABILITY={served.durability}): {json.dumps(result)}")

    assert not load.unexpected, load.unexpected[:5]
    answers = load.snapshot()
    lost = [a for a in answers if a.status == 201 and a.timestamp not in before[a.site]]
    if served.durability == "replicated":
        assert not lost, lost[:5]
        not_replicated = [a for a in answers if a.not_replicated]
        assert not_replicated, "the promoted master without a replica never answered NotReplicated"
        assert all(a.timestamp in before[a.site] for a in not_replicated), not_replicated[:5]
    else:
        # asynchronous replication: only what the dead master acknowledged before it died may be gone
        assert all(a.site in failover.victims and a.sent < failover.killed for a in lost), lost[:5]
    assert len([a for a in answers if a.status == 201]) >= WARM_UP_READINGS + RECOVERED_READINGS
    for site, times in after.items():
        assert len(times) == len(set(times)), f"site {site}: a reading stored twice"
        expected = {a.timestamp for a in answers if a.site == site} - {
            a.timestamp for a in lost if a.site == site
        }
        assert set(times) == expected, f"site {site}: stored {len(times)}, sent {len(expected)} (not lost)"

"""``GET /api/events``: Server-Sent Events of the event stream. In process: resume after an id without gaps
or repeats, a ``gap`` event when trimmed past it, keepalives, the 400 and 503. End to end against a real
``redisolar serve``: a client sees a posted reading's event, and after a reconnect with ``Last-Event-ID``
every reading posted while it was away, in order, and nothing it had seen."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient

from redisolar.app import get_services
from redisolar.dao.key_manager import KeyManager
from redisolar.events.sse import SseLimits, body, parse_id
from redisolar.events.stream import EventKeys, publish
from redisolar.timeutil import utcnow
from tests.test_e2e import START_TIMEOUT, Server, answers, free_port, wait_for


def ticking(step: float = 1.0) -> Callable[[], float]:
    """A clock that advances ``step`` at every read (streams end after a known number of reads)."""
    now = [0.0]

    def read() -> float:
        now[0] += step
        return now[0]

    return read


def frames(text: Iterator[str]) -> list[dict[str, str]]:
    """The SSE frames of a body: each as its fields (``id``, ``event``, ``data``, ``retry``, ``:``)."""
    found = []
    for chunk in text:
        fields: dict[str, str] = {}
        for line in chunk.strip("\n").split("\n"):
            name, _, value = line.partition(": ") if not line.startswith(":") else (":", "", line[1:])
            fields[name] = value.strip()
        found.append(fields)
    return found


def test_a_stream_resumes_after_the_last_event_id_without_gaps_or_repeats(app: Flask) -> None:
    services = get_services(app)
    stream = EventKeys.of(services.keys).stream
    ids = [publish(services.redis, services.keys, "reading", {"site_id": 1, "n": n}) for n in range(5)]
    limits = SseLimits(heartbeat=100.0, lifetime=6.0)
    seen = frames(body(services.redis, stream, ids[1], limits, block_s=0.01, clock=ticking()))
    assert seen[0] == {"retry": "3000"}
    events = [f for f in seen[1:] if "id" in f]
    assert [f["id"] for f in events] == ids[2:]
    assert [json.loads(f["data"])["n"] for f in events] == [2, 3, 4]
    assert {f["event"] for f in events} == {"reading"}


def test_a_new_client_starts_after_the_newest_event_and_one_site_can_be_kept(app: Flask) -> None:
    services = get_services(app)
    stream = EventKeys.of(services.keys).stream
    publish(services.redis, services.keys, "reading", {"site_id": 1})
    limits = SseLimits(heartbeat=100.0, lifetime=3.0)
    assert frames(body(services.redis, stream, None, limits, block_s=0.01, clock=ticking())) == [
        {"retry": "3000"}
    ]
    mark = publish(services.redis, services.keys, "reading", {"site_id": 1})
    publish(services.redis, services.keys, "reading", {"site_id": 2})
    kept = frames(body(services.redis, stream, mark, limits, block_s=0.01, site_id=2, clock=ticking()))
    assert [json.loads(f["data"])["site_id"] for f in kept if "data" in f] == [2]


def test_a_trimmed_last_event_id_is_told_with_a_gap_event(app: Flask) -> None:
    services = get_services(app)
    stream = EventKeys.of(services.keys).stream
    ids = [publish(services.redis, services.keys, "reading", {"site_id": 1, "n": n}) for n in range(4)]
    services.redis.xtrim(stream, maxlen=2, approximate=False)  # ids[0] and ids[1] are gone
    limits = SseLimits(heartbeat=100.0, lifetime=4.0)
    seen = frames(body(services.redis, stream, ids[0], limits, block_s=0.01, clock=ticking()))
    gap = seen[1]
    assert gap["event"] == "gap"
    assert json.loads(gap["data"]) == {"kind": "gap", "after": ids[0], "resumes_at": ids[2]}
    assert [f["id"] for f in seen[2:] if "id" in f] == ids[2:]
    resumed = frames(body(services.redis, stream, ids[2], limits, block_s=0.01, clock=ticking()))
    # an id older than a stream that never lost an entry: no gap
    untrimmed = EventKeys.of(KeyManager("untrimmed:")).stream
    kept = publish(services.redis, KeyManager("untrimmed:"), "reading", {"site_id": 1})
    if int(str(services.redis.info("server")["redis_version"]).split(".")[0]) >= 7:  # 6.2: no entries-added
        after = frames(body(services.redis, untrimmed, "1-0", limits, block_s=0.01, clock=ticking()))
        assert [f.get("id") for f in after[1:] if "event" in f] == [kept]
    assert [f.get("event") for f in resumed[1:] if "event" in f] == ["reading"]  # no gap after ids[2]


def test_a_quiet_stream_sends_keepalives(app: Flask) -> None:
    services = get_services(app)
    stream = EventKeys.of(services.keys).stream
    limits = SseLimits(heartbeat=2.0, lifetime=12.0)
    seen = frames(body(services.redis, stream, None, limits, block_s=0.01, clock=ticking()))
    assert len([f for f in seen if ":" in f]) >= 2 and all("id" not in f for f in seen)


def test_a_malformed_last_event_id_is_a_400(http: FlaskClient) -> None:
    for bad in ("abc", "1-2-3", "-1", "9" * 30):
        response = http.get("/api/events", headers={"Last-Event-ID": bad})
        assert response.status_code == 400, bad
        assert "Last-Event-ID" in response.get_json()["error"]
    assert parse_id("1700000000000-3") == (1700000000000, 3) and parse_id("17") == (17, 0)


def test_past_the_streams_a_worker_serves_is_a_503_with_retry_after(
    app_factory: Callable[..., Flask], backend_server: Any, client: redis.Redis
) -> None:
    full = app_factory(backend_server.server, EVENTS_MAX_STREAMS=0).test_client()
    response = full.get("/api/events")
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert "poll" in response.get_json()["error"]
    ended = app_factory(backend_server.server, EVENTS_STREAM_SECONDS=0, EVENTS_MAX_STREAMS=1).test_client()
    for _ in range(3):  # each stream gives its slot back when it closes
        with ended.get("/api/events") as streamed:
            assert streamed.status_code == 200 and streamed.mimetype == "text/event-stream"
            assert streamed.get_data(as_text=True) == "retry: 3000\n\n"


# -- end to end: a real server --------------------------------------------------------------------------
@pytest.fixture
def served(backend_server: Any, client: redis.Redis, tmp_path: Path) -> Iterator[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("REDISOLAR_")}
    env.update(
        **backend_server.env(),
        REDISOLAR_KEY_PREFIX="sse:",
        REDISOLAR_AUTH_MODE="off",
        REDISOLAR_EVENTS_HEARTBEAT_SECONDS="1",
    )
    port = free_port()
    server = Server(["serve", "--port", str(port), "--workers", "2", "--threads", "4"], env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(answers(f"{base}/health"), START_TIMEOUT, "/health", server.process)
        yield base
        server.stop(signal.SIGTERM)
    finally:
        server.close()


def next_reading(lines: Iterator[str]) -> tuple[str, dict[str, Any]]:
    """Read SSE lines up to the next ``reading`` event (others, e.g. the ``rank`` events of a site's
    first reading of the day, are skipped): (id, data)."""
    event_id, kind = "", ""
    for line in lines:
        if line.startswith("id: "):
            event_id, kind = line[4:], ""
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and event_id and kind == "reading":
            return event_id, json.loads(line[6:])
    raise AssertionError("the stream ended")


def opened(base: str, last: str | None = None) -> tuple[requests.Response, Iterator[str]]:
    headers = {"Last-Event-ID": last} if last else {}
    response = requests.get(f"{base}/api/events", headers=headers, stream=True, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    lines = (str(line) for line in response.iter_lines(decode_unicode=True))
    assert next(lines) == "retry: 3000"  # sent once the stream's start is fixed
    return response, lines


@pytest.mark.standalone_only
def test_a_client_sees_a_posted_reading_and_resumes_after_a_reconnect_without_gaps(served: str) -> None:
    site: dict[str, Any] = {
        "id": 1,
        "capacity": 4.5,
        "panels": 3,
        "address": "1 A St",
        "city": "Provo",
        "state": "UT",
        "postal_code": "84601",
    }
    assert requests.post(f"{served}/api/sites/", json=site, timeout=10).status_code == 201
    start = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=30)

    def post(minute: int) -> None:
        reading: dict[str, Any] = {
            "timestamp": (start + timedelta(minutes=minute)).isoformat(),
            "wh_generated": 10.0 + minute,
            "wh_used": 1.0,
            "temp_c": 20.0,
        }
        response = requests.post(f"{served}/api/analytics/readings/1", json=reading, timeout=10)
        assert response.status_code == 201, response.text

    response, lines = opened(served)
    post(0)
    first_id, first = next_reading(lines)
    assert first["kind"] == "reading" and first["site_id"] == 1 and first["wh_generated"] == 10.0
    response.close()
    for minute in (1, 2, 3):  # while no client listens
        post(minute)
    response, lines = opened(served, first_id)
    resumed = [next_reading(lines) for _ in range(3)]
    response.close()
    assert [data["wh_generated"] for _, data in resumed] == [11.0, 12.0, 13.0]
    order = [parse_id(i) or (0, 0) for i, _ in resumed]
    assert order == sorted(order) and order[0] > (parse_id(first_id) or (0, 0))

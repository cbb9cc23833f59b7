"""``rank`` events: a reading that moves a site on its local day's generation or efficiency board puts
one event per board moved on the event stream (and ``GET /api/events``), in the ingest's round trips;
one that moves nothing, a retry, the reconciler and a board split in parts (``FLEET_SHARDS`` > 1) put
none. On every target."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from redisolar.app import get_services
from redisolar.events.sse import SseLimits, body
from redisolar.events.stream import Event, EventKeys, read_range
from redisolar.services import Services, Settings, build_services
from redisolar.services.ingest import ingest
from redisolar.timeutil import to_ms, utcnow
from tests.conftest import ApiCalls
from tests.test_events_sse import frames, ticking


def ranks(services: Services, after: str = "-") -> list[dict[str, Any]]:
    stream = EventKeys.of(services.keys).stream
    return [e.data for e in read_range(services.redis, stream, after) if e.kind == "rank"]


def newest_id(services: Services) -> str:
    found: list[Event] = read_range(services.redis, EventKeys.of(services.keys).stream)
    return found[-1].id if found else "0-0"


def just_now(minutes: int = 0) -> datetime:
    return utcnow().replace(second=0, microsecond=0) - timedelta(minutes=1 + minutes)


def test_overtaking_a_site_is_a_rank_event_on_both_boards(
    app: Flask, http: FlaskClient, api: ApiCalls
) -> None:
    services = get_services(app)
    api.create_site(1, capacity=4.0)
    api.create_site(2, capacity=4.0)
    day = just_now().astimezone(ZoneInfo("America/Los_Angeles")).date().isoformat()  # Oakland's local day
    api.post_readings(2, [api.reading_body(just_now(), wh_generated=400.0)])
    api.post_readings(1, [api.reading_body(just_now(), wh_generated=100.0)])
    entered = ranks(services)
    assert [(r["site_id"], r["board"], r["rank_before"], r["rank"]) for r in entered] == [
        (2, "generation", None, 1), (2, "efficiency", None, 1),
        (1, "generation", None, 2), (1, "efficiency", None, 2),
    ]  # fmt: skip
    assert {r["day"] for r in entered} == {day}
    mark = newest_id(services)
    api.post_readings(1, [api.reading_body(just_now(10), wh_generated=350.0)])  # 450 Wh: ahead of site 2
    moved = ranks(services, f"({mark}")
    assert [(r["site_id"], r["board"], r["rank_before"], r["rank"]) for r in moved] == [
        (1, "generation", 2, 1), (1, "efficiency", 2, 1),
    ]  # fmt: skip
    assert moved[0]["score"] == 450.0 and moved[0]["day"] == day
    board = http.get("/api/analytics/leaderboards/generation").get_json()
    assert [entry["site"]["id"] for entry in board["entries"][:2]] == [1, 2]  # what the event said


def test_a_reading_that_moves_nothing_and_a_retry_are_no_rank_event(app: Flask, api: ApiCalls) -> None:
    services = get_services(app)
    api.create_site(1)
    api.create_site(2)
    api.post_readings(1, [api.reading_body(just_now(), wh_generated=500.0)])
    api.post_readings(2, [api.reading_body(just_now(), wh_generated=100.0)])
    mark = newest_id(services)
    api.post_readings(1, [api.reading_body(just_now(5), wh_generated=50.0)])  # first still
    api.post_readings(2, [api.reading_body(just_now(5), wh_generated=50.0)])  # second still
    api.post_readings(2, [api.reading_body(just_now(5), wh_generated=50.0)])  # a retry
    assert ranks(services, f"({mark}") == []
    kinds = [e.kind for e in read_range(services.redis, EventKeys.of(services.keys).stream, f"({mark}")]
    assert kinds == ["reading"] * 3


def test_the_event_stream_client_sees_the_rank_event(app: Flask, api: ApiCalls) -> None:
    services = get_services(app)
    api.create_site(1)
    api.create_site(2)
    api.post_readings(2, [api.reading_body(just_now(), wh_generated=200.0)])
    api.post_readings(1, [api.reading_body(just_now(), wh_generated=100.0)])
    mark = newest_id(services)
    api.post_readings(1, [api.reading_body(just_now(5), wh_generated=300.0)])
    stream = EventKeys.of(services.keys).stream
    limits = SseLimits(heartbeat=100.0, lifetime=4.0)
    seen = [
        f
        for f in frames(body(services.redis, stream, mark, limits, block_s=0.01, clock=ticking()))
        if "id" in f
    ]
    assert [f["event"] for f in seen] == ["reading", "rank", "rank"]
    data = [json.loads(f["data"]) for f in seen[1:]]
    assert [(d["board"], d["rank_before"], d["rank"], d["site_id"]) for d in data] == [
        ("generation", 2, 1, 1), ("efficiency", 2, 1, 1),
    ]  # fmt: skip
    site_two = frames(body(services.redis, stream, mark, limits, block_s=0.01, site_id=2, clock=ticking()))
    assert [f for f in site_two if "id" in f] == []  # site 2 moved down, but only site 1's score changed


def test_the_rank_is_on_the_board_of_the_sites_local_day(app: Flask, api: ApiCalls) -> None:
    """A site 14 hours ahead of UTC (Kiritimati) ranks on the board of its own date."""
    services = get_services(app)
    api.create_site(1, timezone="Pacific/Kiritimati")
    when = just_now()
    api.post_readings(1, [api.reading_body(when, wh_generated=10.0)])
    [generation, _] = ranks(services)
    assert generation["day"] == when.astimezone(ZoneInfo("Pacific/Kiritimati")).date().isoformat()


def test_the_reconciler_puts_no_rank_event(app: Flask, api: ApiCalls) -> None:
    services = get_services(app)
    api.create_site(1)
    api.create_site(2)
    api.post_readings(1, [api.reading_body(just_now(), wh_generated=100.0)])
    api.post_readings(2, [api.reading_body(just_now(), wh_generated=200.0)])
    services.redis.delete(*services.redis.keys("*lb:*"))  # (a test's shortcut: the boards are lost)
    mark = newest_id(services)
    services.updater.update_all_leaderboards()
    assert ranks(services, f"({mark}") == []


@pytest.fixture
def sharded(backend_server, client: redis.Redis) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    config = backend_server.config()
    built = build_services(Settings(redis=config, timeseries_backend=backend_server.name, fleet_shards=2))
    yield built
    built.redis.close()


def test_a_board_split_in_parts_puts_no_rank_event(sharded: Services) -> None:
    from tests.test_events_stream import site

    sharded.sites.insert(site(1))
    sharded.sites.insert(site(2))
    now = to_ms(just_now())
    ingest(sharded, {1: [(now, 100.0, 1.0, 20.0)], 2: [(now, 200.0, 1.0, 20.0)]})
    ingest(sharded, {1: [(now - 300_000, 500.0, 1.0, 20.0)]})
    assert ranks(sharded) == []
    assert [e.kind for e in read_range(sharded.redis, EventKeys.of(sharded.keys).stream)] == ["reading"] * 3


def test_only_moves_that_touch_the_top_ten_are_events(app: Flask, api: ApiCalls) -> None:
    services = get_services(app)
    for site_id in range(1, 13):
        api.create_site(site_id, capacity=4.0)
        api.post_readings(site_id, [api.reading_body(just_now(), wh_generated=1000.0 - 10 * site_id)])
    mark = newest_id(services)
    api.post_readings(12, [api.reading_body(just_now(5), wh_generated=15.0)])  # 12th -> 11th: below the top
    assert ranks(services, f"({mark}") == []
    mark = newest_id(services)
    api.post_readings(12, [api.reading_body(just_now(10), wh_generated=80.0)])  # 975 Wh: 11th -> 3rd
    moved = ranks(services, f"({mark}")
    assert [(r["site_id"], r["board"], r["rank_before"], r["rank"]) for r in moved] == [
        (12, "generation", 11, 3), (12, "efficiency", 11, 3),
    ]  # fmt: skip

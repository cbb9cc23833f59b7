"""The event stream: an ingest call appends one ``reading`` event per written site, in its derived-state
round trip, on every target; publish() of an alert also reaches the webhooks' notify stream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from redisolar.errors import SiteNotFound
from redisolar.events.stream import Event, EventKeys, publish, read_range
from redisolar.models.site import Site
from redisolar.services import Services, Settings, build_services
from redisolar.services.ingest import ingest
from redisolar.timeutil import to_ms, utcnow


def site(site_id: int) -> Site:
    return Site(
        id=site_id, capacity=5.0, panels=4, address="1 A St", city="Provo", state="UT", postal_code="84601"
    )


@pytest.fixture
def services(backend_server, client: redis.Redis) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    built = build_services(Settings(redis=backend_server.config(), timeseries_backend=backend_server.name))
    yield built
    built.redis.close()


def events(services: Services) -> list[Event]:
    stream = EventKeys.of(services.keys).stream
    return read_range(services.redis, stream)


def test_an_ingest_call_publishes_one_reading_event_per_site(services: Services) -> None:
    services.sites.insert(site(1))
    services.sites.insert(site(2))
    top = utcnow().replace(second=0, microsecond=0)
    first, last = to_ms(top) - 120_000, to_ms(top) - 60_000
    ingest(services, {1: [(first, 5.0, 1.0, 20.0), (last, 7.5, 2.0, 21.0)], 2: [(last, 3.0, 0.5, 19.0)]})
    readings = [e for e in events(services) if e.kind == "reading"]
    seen = {e.data["site_id"]: e for e in readings}
    assert len(readings) == 2
    newest = {"wh_generated": 7.5, "wh_used": 2.0, "temp_c": 21.0}
    assert seen[1].data == {"site_id": 1, "ts": last, "count": 2, **newest}
    assert seen[2].data["count"] == 1 and seen[2].data["wh_generated"] == 3.0


def test_a_refused_ingest_publishes_nothing(services: Services) -> None:
    with pytest.raises(SiteNotFound):
        ingest(services, {9: [(to_ms(utcnow()) - 60_000, 5.0, 1.0, 20.0)]})
    assert events(services) == []


def test_alert_events_also_reach_the_notify_stream_and_readings_do_not(services: Services) -> None:
    streams = EventKeys.of(services.keys)
    event_id = publish(services.redis, services.keys, "alert.opened", {"site_id": 3, "rule": "offline"})
    publish(services.redis, services.keys, "reading", {"site_id": 3})
    assert read_range(services.redis, streams.stream)[0].id == event_id
    assert [e.kind for e in read_range(services.redis, streams.notify)] == ["alert.opened"]

"""Readings and site analytics (``/api/analytics/readings/...``, ``/api/analytics/analytics/...``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from redisolar.app import get_services
from redisolar.dao.key_manager import key_manager
from redisolar.errors import SiteNotFound
from redisolar.models.site import MetricType
from redisolar.services import analytics
from redisolar.timeutil import utcnow
from tests.conftest import ApiCalls

if TYPE_CHECKING:
    from conftest import BackendServer

Snapshot = Callable[[], Any]
ZONE = "America/Los_Angeles"
"""The zone of ``api.create_site``'s default coordinates (derived: the body gives none)."""


def hour(hours_ago: int) -> datetime:
    """The start of the UTC hour ``hours_ago`` hours before the current one."""
    return utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_ago)


def series(http: FlaskClient, site_id: int, metric: str, **query: Any) -> Any:
    return http.get(f"/api/analytics/readings/{site_id}/{metric}?{urlencode(query)}")


@pytest.fixture
def site(api: ApiCalls) -> int:
    api.create_site(1, capacity=5.0)
    return 1


# -- single readings -------------------------------------------------------------------------------
def test_post_reading(api: ApiCalls, http: FlaskClient, site: int) -> None:
    when = hour(1)
    response = http.post("/api/analytics/readings/1", json=api.reading_body(when))
    assert response.status_code == 201
    assert response.get_json() == {
        "message": "Reading added for site 1",
        "reading": {"site_id": 1, "timestamp": when.isoformat(), "wh_generated": 150.5, "wh_used": 75.2,
                    "temp_c": 25.5},
    }  # fmt: skip
    latest = http.get("/api/analytics/readings/1/latest").get_json()
    assert latest == {
        "site_id": 1,
        "timezone": ZONE,
        "latest_readings": {
            "wh_generated": {"timestamp": when.isoformat(), "value": 150.5},
            "wh_used": {"timestamp": when.isoformat(), "value": 75.2},
            "temp_c": {"timestamp": when.isoformat(), "value": 25.5},
            "net_generation": {"timestamp": when.isoformat(), "value": pytest.approx(75.3)},
        },
    }


def test_post_reading_with_matching_site_id_and_offset(api: ApiCalls, http: FlaskClient, site: int) -> None:
    when = hour(2)
    local = (when + timedelta(hours=2)).replace(tzinfo=None).isoformat() + "+02:00"  # the same instant
    body = api.reading_body(local, site_id=1)
    reading = http.post("/api/analytics/readings/1", json=body).get_json()["reading"]
    assert reading["timestamp"] == when.isoformat()


def test_resent_reading_replaces_the_stored_one(api: ApiCalls, http: FlaskClient, site: int) -> None:
    when = hour(1)
    for generated in (10.0, 20.0):
        body = api.reading_body(when, wh_generated=generated)
        assert http.post("/api/analytics/readings/1", json=body).status_code == 201
    data = series(http, 1, "wh_generated").get_json()
    assert [p["value"] for p in data["data"]] == [20.0]


def test_latest_without_readings(http: FlaskClient, site: int) -> None:
    assert http.get("/api/analytics/readings/1/latest").get_json() == {
        "site_id": 1,
        "timezone": ZONE,
        "latest_readings": {},
    }


def test_reading_for_unknown_site_is_404(api: ApiCalls, http: FlaskClient, store_snapshot: Snapshot) -> None:
    before = store_snapshot()
    api.error(http.post("/api/analytics/readings/7", json=api.reading_body(hour(1))), 404, "Site 7 not found")
    api.error(http.get("/api/analytics/readings/7/latest"), 404, "Site 7 not found")
    api.error(series(http, 7, "wh_generated"), 404)
    api.error(http.get("/api/analytics/analytics/7"), 404, "Site 7 not found")
    api.error(http.post("/api/analytics/readings/0", json=api.reading_body(hour(1))), 404)
    assert store_snapshot() == before


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"wh_generated": -1}, "wh_generated"),
        ({"wh_used": "lots"}, "wh_used"),
        ({"temp_c": -300}, "temp_c"),
        ({"temp_c": None}, "temp_c"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": "0001-01-01T00:00:00+01:00"}, "timestamp"),
        ({"timestamp": "1969-12-31T23:00:00Z"}, "timestamp"),
        ({"timestamp": "2999-01-01T00:00:00Z"}, "timestamp"),  # the future
        ({"site_id": 2}, "site_id"),
        ({"site_id": "1"}, "site_id"),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_reading_is_400_and_stores_nothing(
    api: ApiCalls,
    http: FlaskClient,
    site: int,
    store_snapshot: Snapshot,
    overrides: dict[str, Any],
    field: str,
) -> None:
    before = store_snapshot()
    response = http.post("/api/analytics/readings/1", json={**api.reading_body(hour(1)), **overrides})
    assert field in api.error(response, 400, "Validation failed")["details"]
    assert store_snapshot() == before


def test_reading_body_that_is_not_a_json_object(
    api: ApiCalls, http: FlaskClient, site: int, store_snapshot: Snapshot
) -> None:
    before = store_snapshot()
    api.error(http.post("/api/analytics/readings/1", json=[api.reading_body(hour(1))]), 400)
    api.error(http.post("/api/analytics/readings/1", data="{", content_type="application/json"), 400)
    api.error(http.post("/api/analytics/readings/1"), 400)
    api.error(http.post("/api/analytics/readings/1", data="x=1"), 415)
    api.error(http.get("/api/analytics/readings/1"), 405)
    assert store_snapshot() == before


def test_readme_example_and_retention(api: ApiCalls, http: FlaskClient, site: int) -> None:
    """The README's (and seed's Step 12) example: fine against an empty site, a 400 naming the
    retention window once the site has today's readings (seed defect 13)."""
    example = {"timestamp": "2024-01-20T12:00:00", "wh_generated": 200.0, "wh_used": 80.0, "temp_c": 28.5}
    response = http.post("/api/analytics/readings/1", json=example)
    assert response.status_code == 201
    assert response.get_json()["reading"]["timestamp"] == "2024-01-20T12:00:00+00:00"
    query = {"start": "2024-01-19T00:00:00", "end": "2024-01-21T00:00:00"}
    assert series(http, 1, "wh_generated", **query).get_json()["count"] == 1

    assert http.post("/api/analytics/readings/1", json=api.reading_body(hour(0))).status_code == 201
    error = api.error(http.post("/api/analytics/readings/1", json=example), 400, "retention")
    assert error["details"]["timestamp"] == "2024-01-20T12:00:00+00:00"
    # retention dropped it: a raw range that reaches before the raw window is a 400 that says so
    error = api.error(series(http, 1, "wh_generated", **query), 400, "before the raw readings' window")
    assert "hourly or daily buckets" in error["error"] and error["details"]["raw_window_start"]


# -- batches ---------------------------------------------------------------------------------------
def test_batch(api: ApiCalls, http: FlaskClient, site: int) -> None:
    readings = [api.reading_body(hour(h), wh_generated=float(h)) for h in range(5, 0, -1)]
    readings.append(api.reading_body(hour(1), wh_generated=99.0, site_id=1))  # repeats a timestamp
    response = http.post("/api/analytics/readings/1/batch", json=readings)
    assert response.status_code == 201
    assert response.get_json() == {"message": "Added 5 readings for site 1", "count": 5}
    values = [p["value"] for p in series(http, 1, "wh_generated").get_json()["data"]]
    assert values == [5.0, 4.0, 3.0, 2.0, 99.0]  # by time; the last of equal timestamps wins


def test_bad_batch_stores_nothing(
    api: ApiCalls, http: FlaskClient, site: int, store_snapshot: Snapshot
) -> None:
    good = [api.reading_body(hour(h)) for h in range(1, 5)]
    before = store_snapshot()
    url = "/api/analytics/readings/1/batch"
    error = api.error(http.post(url, json=[*good[:2], {**good[2], "wh_used": -5}, good[3]]), 400)
    assert set(error["details"]) == {"2"} and "wh_used" in error["details"]["2"]
    error = api.error(http.post(url, json=[*good, {**good[0], "site_id": 9}]), 400)
    assert set(error["details"]) == {"4"}
    api.error(http.post(url, json=[]), 400)
    api.error(http.post(url, json=good[0]), 400)  # an object, not an array
    api.error(http.post(url, json=[1, 2]), 400)
    api.error(http.post(url, data="[", content_type="application/json"), 400)
    api.error(http.post(url, data="[]", content_type="text/csv"), 415)
    api.error(http.post("/api/analytics/readings/8/batch", json=good), 404)
    assert store_snapshot() == before


def test_batch_with_an_item_outside_retention_stores_nothing(
    api: ApiCalls, http: FlaskClient, site: int, store_snapshot: Snapshot
) -> None:
    api.post_readings(1, [api.reading_body(hour(0))])
    before = store_snapshot()
    batch = [api.reading_body(hour(1)), api.reading_body(hour(24 * 40))]
    api.error(http.post("/api/analytics/readings/1/batch", json=batch), 400, "retention")
    assert store_snapshot() == before


def test_batch_limit_is_413(
    api: ApiCalls, app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis
) -> None:
    http = app_factory(backend_server.server, MAX_BATCH_READINGS=3).test_client()
    assert http.post("/api/sites/", json=api.site_body(1)).status_code == 201
    dbsize = client.dbsize()
    readings = [api.reading_body(hour(h)) for h in range(1, 5)]
    error = api.error(http.post("/api/analytics/readings/1/batch", json=readings), 413, "at most 3")
    assert error["details"] == {"count": 4, "max_batch_readings": 3}
    assert client.dbsize() == dbsize
    assert http.post("/api/analytics/readings/1/batch", json=readings[:3]).status_code == 201


# -- series ----------------------------------------------------------------------------------------
def test_series_raw_and_aggregated(api: ApiCalls, http: FlaskClient, site: int) -> None:
    api.post_readings(1, [api.reading_body(hour(h), wh_generated=10.0 * h) for h in range(1, 7)])
    start, end = hour(6), hour(2)
    raw = series(http, 1, "wh_generated", start=start.isoformat(), end=end.isoformat()).get_json()
    assert raw == {
        "site_id": 1,
        "timezone": ZONE,
        "metric": "wh_generated",
        "start_time": start.isoformat(),
        "end_time": end.isoformat(),
        "aggregation": "raw",
        "bucket_size": None,
        "count": 4,
        "data": [{"timestamp": hour(h).isoformat(), "value": 10.0 * h} for h in (6, 5, 4, 3)],
    }  # fmt: skip  ([start, end): the reading at `end` is not in)
    query = {"start": start.isoformat(), "end": end.isoformat(), "aggregation": "sum"}
    summed = series(http, 1, "wh_generated", **query, bucket_size=7_200_000).get_json()
    assert summed["bucket_size"] == 7_200_000
    assert sum(p["value"] for p in summed["data"]) == 180.0
    assert summed["count"] == len(summed["data"]) in (2, 3)
    net = series(http, 1, "net_generation", start=start.isoformat(), aggregation="max").get_json()
    assert net["data"][0]["value"] == pytest.approx(60.0 - 75.2)


def test_series_defaults_to_the_last_24_hours(api: ApiCalls, http: FlaskClient, site: int) -> None:
    api.post_readings(1, [api.reading_body(hour(h)) for h in (30, 20, 0)])
    body = series(http, 1, "temp_c").get_json()
    start, end = datetime.fromisoformat(body["start_time"]), datetime.fromisoformat(body["end_time"])
    assert end - start == timedelta(hours=24)
    assert abs(end - utcnow()) < timedelta(minutes=1)
    assert body["count"] == 2


def test_offset_whose_plus_arrived_as_a_space(api: ApiCalls, http: FlaskClient, site: int) -> None:
    api.post_readings(1, [api.reading_body(hour(1))])
    start = (hour(3) + timedelta(hours=2)).replace(tzinfo=None).isoformat()
    response = http.get(f"/api/analytics/readings/1/wh_generated?start={start}+02:00")  # '+' unencoded
    assert response.status_code == 200
    assert response.get_json()["start_time"] == hour(3).isoformat()


@pytest.mark.parametrize(
    ("metric", "query", "contains"),
    [
        ("power", {}, "Invalid metric"),
        ("batches", {}, "Invalid metric"),  # GET .../batch is a 405: test_get_of_the_batch_route_is_405
        ("wh_generated", {"start": "yesterday"}, "Validation failed"),
        ("wh_generated", {"end": "2024-13-01T00:00:00"}, "Validation failed"),
        ("wh_generated", {"start": "1960-01-01T00:00:00"}, "Validation failed"),
        ("wh_generated", {"start": "2024-01-02T00:00:00", "end": "2024-01-01T00:00:00"}, "after its start"),
        ("wh_generated", {"start": "2024-01-01T00:00:00", "end": "2024-01-01T00:00:00"}, "after its start"),
        ("wh_generated", {"start": "2999-01-01T00:00:00"}, "after its start"),
        ("wh_generated", {"aggregation": "median"}, "Validation failed"),
        ("wh_generated", {"aggregation": "avg", "bucket_size": 0}, "Validation failed"),
        ("wh_generated", {"aggregation": "avg", "bucket_size": "1h"}, "Validation failed"),
        ("wh_generated", {"aggregation": "avg", "bucket_size": 10**30}, "Validation failed"),
        ("wh_generated", {"aggregation": "avg", "bucket_size": 1, "start": "2024-01-01T00:00:00"}, "buckets"),
    ],
)
def test_bad_series_query_is_400(
    api: ApiCalls, http: FlaskClient, site: int, metric: str, query: dict[str, Any], contains: str
) -> None:
    api.error(series(http, 1, metric, **query), 400, contains)


def test_get_of_the_batch_route_is_405(api: ApiCalls, http: FlaskClient, site: int) -> None:
    """Found by fuzzing: GET /readings/1/batch was the metric "batch" (400 "Invalid metric") and
    OPTIONS advertised GET there, which the document does not list."""
    response = http.get("/api/analytics/readings/1/batch")
    api.error(response, 405)
    assert set(response.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}
    assert "GET" not in http.options("/api/analytics/readings/1/batch").headers["Allow"]
    api.error(series(http, 1, "batches"), 400, "Invalid metric")


def test_document_lists_the_metrics(http: FlaskClient) -> None:
    """Found by fuzzing: the document gave `metric` as any string, so clients (and the fuzzer) could not
    know the four values; every other value is the 400 above."""
    spec = http.get("/api/openapi.json").get_json()
    parameters = spec["paths"]["/api/analytics/readings/{site_id}/{metric}"]["parameters"]
    metric = next(p for p in parameters if p["name"] == "metric")
    assert metric["schema"]["enum"] == ["wh_generated", "wh_used", "temp_c", "net_generation"]


# -- analytics -------------------------------------------------------------------------------------
def test_site_analytics(api: ApiCalls, http: FlaskClient, site: int) -> None:
    readings = [api.reading_body(hour(h), wh_generated=1000.0 * h, temp_c=20.0 + h) for h in (1, 2, 3)]
    api.post_readings(1, readings)
    start, end = hour(4), hour(0)
    query = urlencode({"start": start.isoformat(), "end": end.isoformat()})
    response = http.get(f"/api/analytics/analytics/1?{query}")
    assert response.status_code == 200
    assert response.get_json() == {
        "site_id": 1, "period_start": start.isoformat(), "period_end": end.isoformat(),
        "total_generated": 6000.0, "total_used": pytest.approx(3 * 75.2), "avg_generation": 2000.0,
        "max_generation": 3000.0, "min_generation": 1000.0, "avg_temperature": 22.0,
        "efficiency_percent": pytest.approx(100 * 6000.0 / (5.0 * 1000 * 4)), "reading_count": 3,
        "timezone": ZONE,
    }  # fmt: skip


def test_site_analytics_without_data_is_the_seeds_404(api: ApiCalls, http: FlaskClient, site: int) -> None:
    body = api.error(http.get("/api/analytics/analytics/1"), 404, "No data available for site 1")
    assert body["message"] == body["error"]
    api.error(http.get("/api/analytics/analytics/1?start=2030-01-01T00:00:00"), 400, "after its start")
    api.error(http.get("/api/analytics/analytics/1?end=x"), 400, "Validation failed")


# -- the site's zone, and the raw window -----------------------------------------------------------
def site_routes(site_id: int, start: datetime, end: datetime) -> list[str]:
    """Every GET answering about one site, over ``[start, end)`` where a route takes a range."""
    query = urlencode({"start": start.isoformat(), "end": end.isoformat()})
    return [
        f"/api/analytics/readings/{site_id}/latest",
        f"/api/analytics/readings/{site_id}/wh_generated?{query}",
        f"/api/analytics/readings/{site_id}/net_generation?{query}&aggregation=sum&bucket_size=3600000",
        f"/api/analytics/analytics/{site_id}?{query}",
        f"/api/analytics/leaderboards/capacity/site/{site_id}",
        f"/api/analytics/energy/{site_id}",
        f"/api/sites/{site_id}",
    ]


def test_every_response_about_a_site_names_its_timezone(
    app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis
) -> None:
    """Its own zone; DEFAULT_TIMEZONE for a site hash without one (written before zones existed)."""
    http = app_factory(
        backend_server.server, TIMESERIES_BACKEND=backend_server.name, DEFAULT_TIMEZONE="Europe/London"
    ).test_client()
    api = ApiCalls(http)
    api.create_site(1, capacity=5.0, timezone="Pacific/Honolulu")
    api.create_site(2, capacity=3.0)
    for site_id in (1, 2):
        api.post_readings(site_id, [api.reading_body(hour(h)) for h in (3, 2, 1)])
    client.hdel(key_manager.site_key(2), "timezone")  # as a site stored before zones existed
    for site_id, zone in ((1, "Pacific/Honolulu"), (2, "Europe/London")):
        for url in site_routes(site_id, hour(4), hour(0)):
            response = http.get(url)
            assert response.status_code == 200, (url, response.get_data(as_text=True))
            body = response.get_json()
            got = body["timezone"] if "timezone" in body else body["site"]["timezone"]
            assert got == (None if url.startswith("/api/sites/") and site_id == 2 else zone), url


def test_the_document_gives_the_timezone_of_site_responses(http: FlaskClient) -> None:
    spec = http.get("/api/openapi.json").get_json()
    ok = "200"
    for path in (
        "/api/analytics/readings/{site_id}/latest",
        "/api/analytics/readings/{site_id}/{metric}",
        "/api/analytics/analytics/{site_id}",
        "/api/analytics/leaderboards/{leaderboard_type}/site/{site_id}",
        "/api/analytics/energy/{site_id}",
    ):
        schema = spec["paths"][path]["get"]["responses"][ok]["content"]["application/json"]["schema"]
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        assert "timezone" in schema["properties"] and "timezone" in schema["required"], path


def test_the_raw_window_bounds_raw_ranges_and_finer_buckets(
    app_factory: Callable[..., Flask],
    backend_server: BackendServer,
    client: redis.Redis,
    store_snapshot: Snapshot,
) -> None:
    """Before the raw window (RETENTION_DAYS back from the site's newest reading) only rollups are
    kept: a raw range or a bucket finer than an hour reaching there is a 400 naming the window's
    start, changing nothing; hourly buckets are answered; a range inside the window is unchanged."""
    http = app_factory(
        backend_server.server, TIMESERIES_BACKEND=backend_server.name, RETENTION_DAYS=2
    ).test_client()
    api = ApiCalls(http)
    api.create_site(1, capacity=5.0)
    old = hour(24 * 10)
    api.post_readings(
        1, [api.reading_body(old + timedelta(minutes=10 * i), wh_generated=float(i)) for i in range(12)]
    )
    newest = hour(24 * 10 - 24 * 3)  # three days later: the old readings leave the raw window
    api.post_readings(1, [api.reading_body(newest - timedelta(minutes=10 * i)) for i in range(6)])
    window = newest - timedelta(days=2)
    before = store_snapshot()
    old_range = {"start": old.isoformat(), "end": (old + timedelta(hours=2)).isoformat()}
    raw = api.error(series(http, 1, "wh_generated", **old_range), 400, "before the raw readings' window")
    assert raw["details"]["raw_window_start"] == window.isoformat()
    assert window.isoformat() in raw["error"] and "hourly or daily buckets" in raw["error"]
    spanning = {"start": old.isoformat(), "end": (newest + timedelta(hours=1)).isoformat()}
    api.error(series(http, 1, "temp_c", **spanning), 400, window.isoformat())
    fine = series(http, 1, "wh_generated", **old_range, aggregation="sum", bucket_size=600_000)
    body = api.error(fine, 400, "whole number of hours")
    assert body["details"]["raw_window_start"] == window.isoformat() and "hourly or daily" in body["error"]
    assert store_snapshot() == before
    hourly = series(http, 1, "wh_generated", **old_range, aggregation="sum", bucket_size=3_600_000)
    assert [p["value"] for p in hourly.get_json()["data"]] == [15.0, 51.0]
    inside = {
        "start": (newest - timedelta(hours=2)).isoformat(),
        "end": (newest + timedelta(hours=1)).isoformat(),
    }
    assert series(http, 1, "wh_generated", **inside).get_json()["count"] == 6
    at_edge = {"start": window.isoformat(), "end": (newest + timedelta(hours=1)).isoformat()}
    assert series(http, 1, "wh_generated", **at_edge).get_json()["count"] == 6
    fine_inside = series(http, 1, "wh_generated", **inside, aggregation="count", bucket_size=600_000)
    assert sum(p["value"] for p in fine_inside.get_json()["data"]) == 6.0


def sent_while(monkeypatch: pytest.MonkeyPatch, action: Callable[[], Any]) -> tuple[int, Any]:
    """How many times the Redis connections sent something while ``action`` ran (a pipeline or a
    single command is one round trip), and what it returned (or the exception it raised)."""
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        original(self, command, check_health)

    with monkeypatch.context() as patch:
        patch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
        try:
            result = action()
        except SiteNotFound as exc:
            result = exc
    return len(sent), result


@pytest.mark.standalone_only  # counts one connection's round trips; a cluster sends each node's share at once
def test_the_zone_costs_no_round_trip(
    app_factory: Callable[..., Flask],
    backend_server: BackendServer,
    client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A site's latest readings, a range inside the raw window (raw or in buckets) and its analytics
    cost one round trip each, the site's zone and whether it exists included (read with the data:
    no existence check of their own when the caller does not know it; a missing site is
    SiteNotFound)."""
    app = app_factory(backend_server.server, TIMESERIES_BACKEND=backend_server.name)
    api = ApiCalls(app.test_client())
    api.create_site(1, capacity=5.0, timezone="Asia/Kolkata")
    api.post_readings(1, [api.reading_body(hour(h)) for h in (3, 2, 1)])
    services = get_services(app)
    start, end = hour(4), hour(0)
    reads: list[Callable[[int], Any]] = [
        lambda s: analytics.latest_readings(services, s),
        lambda s: analytics.series(services, s, MetricType.WH_USED, start, end),
        lambda s: analytics.series(services, s, MetricType.TEMP_C, start, end, "max", 7_200_000),
        lambda s: analytics.site_analytics(services, s, start, end),
    ]
    for read in reads:
        read(1)  # scripts loaded
        trips, answer = sent_while(monkeypatch, lambda read=read: read(1))
        assert trips == 1 and answer.timezone == "Asia/Kolkata" and answer.value
        trips, missing = sent_while(monkeypatch, lambda read=read: read(2))
        assert trips == 1 and isinstance(missing, SiteNotFound)

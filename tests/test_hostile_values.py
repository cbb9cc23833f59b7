"""Values that cannot poison the store: hostile numbers, strings and bodies are refused (or stored
harmlessly), nothing is written for a refused request, and afterwards every read answers strict JSON
(RFC 8259: no NaN, no Infinity) and the site still takes a normal reading. Both backends."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redisolar.models.site import DEFAULT_MAX_READING_WH, MeterReading
from redisolar.timeutil import utcnow

Snapshot = Callable[[], dict[bytes, Any]]
HUGE = [1e308, 1.7e308, DEFAULT_MAX_READING_WH * 1.000001, 1e16]
ENERGY_FIELDS = ("wh_generated", "wh_used")


def strict(text: str) -> Any:
    """Parse ``text`` as RFC 8259 JSON: NaN and Infinity are errors."""

    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def now_iso(minutes_ago: int = 0) -> str:
    return (utcnow() - timedelta(minutes=minutes_ago)).isoformat()


@pytest.fixture
def site(api: Any) -> int:
    api.create_site(1)
    api.post_readings(1, [api.reading_body(now_iso(10))])
    return 1


def assert_refused(response: Any, statuses: tuple[int, ...] = (400,)) -> dict[str, Any]:
    assert response.status_code in statuses, response.get_data(as_text=True)
    body: dict[str, Any] = strict(response.get_data(as_text=True))
    assert set(body) >= {"error", "details"}
    return body


def assert_reads_are_strict_json(http: FlaskClient, site_id: int) -> None:
    day = utcnow().date().isoformat()
    paths = [
        "/api/analytics/summary",
        "/api/analytics/leaderboards/capacity",
        f"/api/analytics/leaderboards/generation?day={day}",
        f"/api/analytics/leaderboards/efficiency?day={day}",
        f"/api/analytics/readings/{site_id}/latest",
        f"/api/analytics/analytics/{site_id}",
        f"/api/analytics/readings/{site_id}/wh_generated",
        f"/api/analytics/readings/{site_id}/net_generation?aggregation=sum",
        f"/api/analytics/readings/{site_id}/temp_c?aggregation=avg",
        "/api/sites/",
        f"/api/sites/{site_id}",
        "/api/sites/stats",
        "/api/sites/search?state=CA",
    ]
    for path in paths:
        response = http.get(path)
        assert response.status_code in (200, 404), (path, response.get_data(as_text=True))
        strict(response.get_data(as_text=True))


def assert_site_still_takes_readings(http: FlaskClient, api: Any, site_id: int) -> None:
    response = http.post(f"/api/analytics/readings/{site_id}", json=api.reading_body(now_iso(1)))
    assert response.status_code == 201, response.get_data(as_text=True)


# -- huge energies: single, batch (fast path and schema path) ------------------------------------------
@pytest.mark.parametrize("field", ENERGY_FIELDS)
@pytest.mark.parametrize("value", HUGE)
def test_huge_energy_is_a_400_naming_the_field_and_bound(
    http: FlaskClient, api: Any, site: int, store_snapshot: Snapshot, field: str, value: float
) -> None:
    before = store_snapshot()
    single = http.post(f"/api/analytics/readings/{site}", json=api.reading_body(now_iso(2), **{field: value}))
    body = assert_refused(single)
    assert field in json.dumps(body["details"]) and "MAX_READING_WH" in json.dumps(body["details"])
    batch = [api.reading_body(now_iso(3)), api.reading_body(now_iso(2), **{field: value})]
    assert_refused(http.post(f"/api/analytics/readings/{site}/batch", json=batch))
    with_extra = [api.reading_body(now_iso(2), **{field: value}, site_id=site)]  # not the fast path's
    assert_refused(http.post(f"/api/analytics/readings/{site}/batch", json=with_extra))
    assert store_snapshot() == before
    assert_reads_are_strict_json(http, site)
    assert_site_still_takes_readings(http, api, site)


def test_temperature_outside_the_plausible_range_is_a_400(
    http: FlaskClient, api: Any, site: int, store_snapshot: Snapshot
) -> None:
    before = store_snapshot()
    for temp in (1000.5, 1e308, -273.16, -1e308):
        body = [api.reading_body(now_iso(2), temp_c=temp)]
        assert_refused(http.post(f"/api/analytics/readings/{site}/batch", json=body))
        assert_refused(http.post(f"/api/analytics/readings/{site}", json=body[0]))
    assert store_snapshot() == before


def test_sums_that_would_overflow_without_the_bound_stay_finite(
    http: FlaskClient, api: Any, site: int
) -> None:
    top = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=20)
    at_bound = [
        api.reading_body((top + timedelta(milliseconds=i)).isoformat(), wh_generated=DEFAULT_MAX_READING_WH)
        for i in range(2000)
    ]
    api.post_readings(site, at_bound)
    api.post_readings(site, at_bound)  # a retry
    summary = strict(http.get("/api/analytics/summary").get_data(as_text=True))
    assert summary["summary"]["total_generation_24h_wh"] >= 2000 * DEFAULT_MAX_READING_WH
    assert_reads_are_strict_json(http, site)
    assert_site_still_takes_readings(http, api, site)


def test_negative_zero_and_subnormals_are_stored_harmlessly(
    http: FlaskClient, api: Any, site: int, client: redis.Redis
) -> None:
    when = now_iso(4)
    body = [api.reading_body(when, wh_generated=-0.0, wh_used=5e-324, temp_c=-0.0)]
    api.post_readings(site, body)
    latest = strict(http.get(f"/api/analytics/readings/{site}/latest").get_data(as_text=True))
    values = {m: p["value"] for m, p in latest["latest_readings"].items()}
    assert repr(values["wh_generated"]) == "0.0" and repr(values["temp_c"]) == "0.0"
    assert values["wh_used"] == 5e-324
    single = http.post(f"/api/analytics/readings/{site}", json=api.reading_body(when, wh_generated=-0.0))
    assert single.status_code == 201
    assert repr(strict(single.get_data(as_text=True))["reading"]["wh_generated"]) == "0.0"
    assert_reads_are_strict_json(http, site)


# -- strings and bodies ----------------------------------------------------------------------------------
def test_long_strings_are_refused(http: FlaskClient, api: Any, site: int, store_snapshot: Snapshot) -> None:
    before = store_snapshot()
    long = "9" * 100_000
    assert_refused(http.post(f"/api/analytics/readings/{site}", json=api.reading_body(long)))
    assert_refused(http.post(f"/api/analytics/readings/{site}/batch", json=[api.reading_body(long)]))
    assert_refused(http.post("/api/sites/", json=api.site_body(2, address="a" * 100_000)))
    assert_refused(http.put(f"/api/sites/{site}", json=api.site_body(site, city="b" * 10_000)))
    huge_body = json.dumps([api.reading_body(now_iso(1), note="x" * (9 * 1024 * 1024))])
    response = http.post(
        f"/api/analytics/readings/{site}/batch", data=huge_body, content_type="application/json"
    )
    assert_refused(response, (413,))
    assert store_snapshot() == before


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deeply_nested_bodies_are_a_400(
    http: FlaskClient, site: int, store_snapshot: Snapshot, depth: int
) -> None:
    before = store_snapshot()
    nested = "[" * depth + "]" * depth
    for path in (f"/api/analytics/readings/{site}", f"/api/analytics/readings/{site}/batch", "/api/sites/"):
        assert_refused(http.post(path, data=nested, content_type="application/json"))
    obj = '{"a":' * depth + "1" + "}" * depth
    assert_refused(http.put(f"/api/sites/{site}", data=obj, content_type="application/json"))
    assert store_snapshot() == before


def test_non_json_bodies_are_refused(
    http: FlaskClient, api: Any, site: int, store_snapshot: Snapshot
) -> None:
    before = store_snapshot()
    text = json.dumps([api.reading_body(now_iso(1))])
    response = http.post(f"/api/analytics/readings/{site}/batch", data=text, content_type="text/plain")
    assert_refused(response, (400, 415))
    nan = text.replace("150.5", "NaN")
    response = http.post(f"/api/analytics/readings/{site}/batch", data=nan, content_type="application/json")
    assert_refused(response)
    assert store_snapshot() == before


def test_duplicate_keys_keep_the_last_value_on_every_path(
    http: FlaskClient, site: int, store_snapshot: Snapshot
) -> None:
    when = now_iso(5)
    hostile_last = (
        '{"timestamp": "%s", "wh_generated": 1.0, "wh_generated": 1e308, "wh_used": 1, "temp_c": 1}'
    )
    before = store_snapshot()
    for path, body in (
        (f"/api/analytics/readings/{site}", hostile_last % when),
        (f"/api/analytics/readings/{site}/batch", "[" + hostile_last % when + "]"),
    ):
        assert_refused(http.post(path, data=body, content_type="application/json"))
    assert store_snapshot() == before
    benign_last = (
        '[{"timestamp": "%s", "wh_generated": 1e308, "wh_generated": 2.5, "wh_used": 1, "temp_c": 1}]'
    )
    response = http.post(
        f"/api/analytics/readings/{site}/batch", data=benign_last % when, content_type="application/json"
    )
    assert response.status_code == 201
    dup_site = '{"id": 5, "capacity": 1e308, "capacity": 4.5, "panels": 3, "address": "1 A St", ' + (
        '"city": "Oakland", "state": "CA", "postal_code": "94577", "capacity": 1e308}'
    )
    assert_refused(http.post("/api/sites/", data=dup_site, content_type="application/json"))
    assert_reads_are_strict_json(http, site)


@pytest.mark.parametrize("value", [1e308, 1.7e308, 1e8 + 1])
def test_huge_site_numbers_are_refused(
    http: FlaskClient, api: Any, site: int, store_snapshot: Snapshot, value: float
) -> None:
    before = store_snapshot()
    for field in ("capacity", "panels"):
        assert_refused(http.post("/api/sites/", json=api.site_body(2, **{field: value})))
        assert_refused(http.put(f"/api/sites/{site}", json=api.site_body(site, **{field: value})))
    coordinate = {"lat": value, "lng": 0}
    assert_refused(http.post("/api/sites/", json=api.site_body(3, coordinate=coordinate)))
    assert store_snapshot() == before


# -- the value space, per reading ------------------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=-(10**20), max_value=10**20),
    ),
    field=st.sampled_from(("wh_generated", "wh_used", "temp_c")),
)
def test_any_number_is_stored_within_bounds_or_refused(
    http: FlaskClient, api: Any, site: int, value: float, field: str
) -> None:
    response = http.post(
        f"/api/analytics/readings/{site}/batch", json=[api.reading_body(now_iso(6), **{field: value})]
    )
    low, high = (-273.15, 1000.0) if field == "temp_c" else (0.0, MeterReading.max_reading_wh)
    if low <= value <= high:
        assert response.status_code == 201, response.get_data(as_text=True)
    else:
        assert_refused(response)
    assert_reads_are_strict_json(http, site)


# -- a non-finite value in the store never leaves as invalid JSON ------------------------------------------
def test_a_corrupted_store_answers_a_json_500_not_infinity(
    app: Flask, http: FlaskClient, site: int, client: redis.Redis
) -> None:
    board = f"ru102py-app:lb:{{lb:{utcnow().date().isoformat()}}}:generation"
    client.zadd(board, {"site:1": float("inf")})
    response = http.get("/api/analytics/leaderboards/generation")
    assert response.status_code == 500
    body = strict(response.get_data(as_text=True))
    assert set(body) >= {"error", "details"}
    assert "Infinity" not in response.get_data(as_text=True)
    with pytest.raises(ValueError):
        app.json.dumps({"x": float("nan")})

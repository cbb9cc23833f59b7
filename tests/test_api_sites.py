"""The sites routes (``/api/sites/...``) on both backends: shapes, and every error they can answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from redisolar.app import get_services
from redisolar.dao.key_manager import KeyManager
from redisolar.localtime import local_day_hours
from redisolar.timeutil import utcnow

if TYPE_CHECKING:
    from conftest import ApiCalls


# -- success shapes --------------------------------------------------------------------------------
def test_create_get_list(api: ApiCalls, http: FlaskClient) -> None:
    assert http.get("/api/sites/").get_json() == []
    oakland = api.site_body(1, timezone="America/Los_Angeles")  # the zone of its coordinate
    assert api.create_site(1) == oakland
    assert http.get("/api/sites/1").get_json() == oakland
    api.create_site(2, coordinate=None)
    listed = http.get("/api/sites").get_json()  # without the trailing slash: no redirect
    assert [s["id"] for s in listed] == [1, 2]
    assert listed[1]["coordinate"] is None


def test_created_site_joins_the_capacity_board(api: ApiCalls, http: FlaskClient) -> None:
    api.create_site(1, capacity=9.5)
    board = http.get("/api/analytics/leaderboards/capacity").get_json()
    assert [(e["site"]["id"], e["score"]) for e in board["entries"]] == [(1, 9.5)]


def test_put_replaces_the_site(api: ApiCalls, http: FlaskClient) -> None:
    api.create_site(1)
    body = api.site_body(1, capacity=7.0, city="Berkeley")
    del body["id"]  # the path says which site
    response = http.put("/api/sites/1", json=body)
    assert response.status_code == 200
    berkeley = api.site_body(1, capacity=7.0, city="Berkeley", timezone="America/Los_Angeles")
    assert response.get_json() == berkeley
    assert http.put("/api/sites/1", json=api.site_body(1, capacity=7.0, panels=9)).get_json()["panels"] == 9
    board = http.get("/api/analytics/leaderboards/capacity").get_json()
    assert board["entries"][0]["score"] == 7.0


def test_capacity_change_rescores_efficiency_and_its_statistics(api: ApiCalls, http: FlaskClient) -> None:
    api.create_site(1, capacity=2.0)
    api.create_site(2, capacity=4.0)
    now = utcnow().replace(minute=0, second=0, microsecond=0).isoformat()
    for site_id in (1, 2):
        reading = {"timestamp": now, "wh_generated": 4800.0, "wh_used": 1.0, "temp_c": 20.0}
        assert http.post(f"/api/analytics/readings/{site_id}", json=reading).status_code == 201
    body = api.site_body(1, capacity=8.0)
    assert http.put("/api/sites/1", json=body).status_code == 200
    board = http.get("/api/analytics/leaderboards/efficiency").get_json()  # the sites' local today
    scores = {e["site"]["id"]: e["score"] for e in board["entries"]}
    wh = 1000 * local_day_hours(date.fromisoformat(board["day"]), "America/Los_Angeles")  # per kW
    assert scores == pytest.approx({1: 100 * 4800 / (8.0 * wh), 2: 100 * 4800 / (4.0 * wh)})
    assert board["stats"]["average_score"] == pytest.approx(sum(scores.values()) / 2)


def test_delete_removes_site_readings_and_board_entries(
    api: ApiCalls, http: FlaskClient, client: redis.Redis
) -> None:
    api.create_site(1)
    api.create_site(2)
    reading = {"timestamp": utcnow().isoformat(), "wh_generated": 5.0, "wh_used": 1.0, "temp_c": 20.0}
    assert http.post("/api/analytics/readings/1", json=reading).status_code == 201
    response = http.delete("/api/sites/1")
    assert response.status_code == 204
    assert response.get_data() == b""
    api.error(http.get("/api/sites/1"), 404, "Site 1 not found")
    api.error(http.delete("/api/sites/1"), 404)
    assert not [k for k in client.scan_iter() if "{site:1}" in k]
    members = {
        m
        for key in client.scan_iter(match="*lb*")
        if client.type(key) == "zset"
        for m in client.zrange(key, 0, -1)
    }
    members |= set(client.zrange(KeyManager().capacity_leaderboard_key(), 0, -1))
    assert "site:1" not in members
    assert "site:2" in members


def test_search(api: ApiCalls, http: FlaskClient) -> None:
    api.create_site(1, state="CA", city="Oakland", capacity=3.0, address="1 Maple St")
    api.create_site(2, state="CA", city="Berkeley", capacity=6.0, address="2 Oak Ave",
           coordinate={"lat": 37.87, "lng": -122.27})  # fmt: skip
    api.create_site(3, state="NY", city="Albany", capacity=9.0, address="3 Pine Rd",
           coordinate={"lat": 42.65, "lng": -73.75})  # fmt: skip

    def ids(query: str) -> list[int]:
        response = http.get(f"/api/sites/search?{query}")
        assert response.status_code == 200, response.get_json()
        return [s["id"] for s in response.get_json()["sites"]]

    assert ids("state=ca") == [1, 2]
    assert ids("q=oak") == [1, 2]  # Oakland, Oak Ave
    assert ids("min_capacity=5&max_capacity=9") == [2, 3]
    assert ids("lat=37.8&lng=-122.2&radius_km=50") == [1, 2]
    page = http.get("/api/sites/search?limit=1&offset=1").get_json()
    assert page == {"sites": [api.site_body(2, state="CA", city="Berkeley", capacity=6.0, address="2 Oak Ave",
                                        coordinate={"lat": 37.87, "lng": -122.27},
                                        timezone="America/Los_Angeles")],
                    "total": 3, "limit": 1, "offset": 1}  # fmt: skip


def test_stats(api: ApiCalls, http: FlaskClient) -> None:
    empty = {"total_sites": 0, "total_capacity_kw": 0.0, "total_panels": 0, "average_capacity_kw": 0.0}
    assert http.get("/api/sites/stats").get_json() == {**empty, "states": {}}
    api.create_site(1, state="CA", capacity=3.0, panels=2)
    api.create_site(2, state="CA", capacity=5.0, panels=4)
    api.create_site(3, state="NY", capacity=1.0, panels=1)
    assert http.get("/api/sites/stats").get_json() == {
        "total_sites": 3,
        "total_capacity_kw": 9.0,
        "total_panels": 7,
        "average_capacity_kw": 3.0,
        "states": {"CA": {"sites": 2, "capacity_kw": 8.0}, "NY": {"sites": 1, "capacity_kw": 1.0}},
    }


# -- errors ----------------------------------------------------------------------------------------
def test_duplicate_id_is_409(api: ApiCalls, http: FlaskClient, store_snapshot: Callable[[], Any]) -> None:
    api.create_site(1)
    before = store_snapshot()
    api.error(http.post("/api/sites/", json=api.site_body(1, city="Elsewhere")), 409, "already exists")
    assert store_snapshot() == before


DROP = object()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"capacity": DROP}, "capacity"),
        ({"capacity": "lots"}, "capacity"),
        ({"capacity": -1}, "capacity"),
        ({"id": 0}, "id"),
        ({"id": "1"}, "id"),
        ({"id": 2**53}, "id"),
        ({"panels": 1.5}, "panels"),
        ({"address": "   "}, "address"),
        ({"city": "a\x00b"}, "city"),
        ({"coordinate": {"lat": 91, "lng": 0}}, "coordinate"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_invalid_site_is_400_per_field(
    api: ApiCalls, http: FlaskClient, store_snapshot: Callable[[], Any], overrides: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in api.site_body(**overrides).items() if v is not DROP}
    before = store_snapshot()
    error = api.error(http.post("/api/sites/", json=body), 400, "Validation failed")
    assert field in error["details"]
    assert store_snapshot() == before


def test_latitude_redis_cannot_index_is_400(api: ApiCalls, http: FlaskClient) -> None:
    response = http.post("/api/sites/", json=api.site_body(coordinate={"lat": 89.0, "lng": 0}))
    api.error(response, 400, "latitude")


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("", "application/json", 400),  # no body
        ("{not json", "application/json", 400),
        ('[{"id": 1}]', "application/json", 400),  # an array where an object is expected
        ('"text"', "application/json", 400),
        ("id=1&capacity=2", "application/x-www-form-urlencoded", 415),
        ('{"id": 1}', "text/plain", 415),
        ('{"id": 1}', None, 415),
        (b"\xff\xfe{", "application/json", 400),  # not UTF-8
        ("[" * 100_000 + "]" * 100_000, "application/json", 400),  # nested too deeply to parse
        ("null", "application/json", 400),
    ],
)
def test_bodies_that_are_not_a_json_object(
    api: ApiCalls,
    http: FlaskClient,
    store_snapshot: Callable[[], Any],
    data: Any,
    content_type: str | None,
    status: int,
) -> None:
    before = store_snapshot()
    headers = {"Content-Type": content_type} if content_type else {}
    api.error(http.post("/api/sites/", data=data, headers=headers), status)
    assert store_snapshot() == before


def test_body_over_max_content_length_is_413(
    api: ApiCalls, app_factory: Callable[..., Flask], backend_server: Any, client: redis.Redis
) -> None:
    http = app_factory(backend_server.server, MAX_CONTENT_LENGTH=1024).test_client()
    body = api.site_body(address="x" * 200, city="y" * 100) | {"pad": "z" * 2000}
    api.error(http.post("/api/sites/", json=body), 413)
    assert client.dbsize() == 0


@pytest.mark.parametrize("path", ["0", "-1", "abc", "1.5", str(2**53), "1%00", "9" * 5000, "\u0661", "01x"])
def test_ids_no_site_can_have_are_404(api: ApiCalls, http: FlaskClient, path: str) -> None:
    api.error(http.get(f"/api/sites/{path}"), 404)
    api.error(http.put(f"/api/sites/{path}", json=api.site_body()), 404)
    api.error(http.delete(f"/api/sites/{path}"), 404)


def test_put_unknown_site_is_404_and_changes_nothing(
    api: ApiCalls, http: FlaskClient, store_snapshot: Callable[[], Any]
) -> None:
    before = store_snapshot()
    api.error(http.put("/api/sites/5", json=api.site_body(5)), 404, "Site 5 not found")
    assert store_snapshot() == before


def test_put_with_another_id_is_400(
    api: ApiCalls, http: FlaskClient, store_snapshot: Callable[[], Any]
) -> None:
    api.create_site(1)
    before = store_snapshot()
    error = api.error(http.put("/api/sites/1", json=api.site_body(2)), 400)
    assert "id" in error["details"]
    api.error(http.put("/api/sites/1", json={"capacity": 3}), 400)
    assert store_snapshot() == before


def test_wrong_method_is_405_with_allow(api: ApiCalls, http: FlaskClient) -> None:
    response = http.patch("/api/sites/1", json={})
    api.error(response, 405)
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "PUT", "DELETE"}
    api.error(http.delete("/api/sites/"), 405)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0", "limit=1001", "limit=abc", "offset=-1", "min_capacity=abc", "min_capacity=nan",
        "min_capacity=5&max_capacity=1", "lat=10", "lat=10&lng=10", "lat=10&lng=10&radius_km=-1",
        "lat=95&lng=10&radius_km=1", "lat=89&lng=10&radius_km=1", "q=", "q=a", "state=%00",
    ],
)  # fmt: skip
def test_bad_search_is_400(api: ApiCalls, http: FlaskClient, query: str) -> None:
    api.error(http.get(f"/api/sites/search?{query}"), 400)


def test_service_keeps_working_after_bad_input(api: ApiCalls, http: FlaskClient, app: Flask) -> None:
    http.post("/api/sites/", data="{", content_type="application/json")
    api.create_site(1)
    assert get_services(app).sites.count() == 1

"""Listing sites a page at a time (``GET /api/sites/``) and the sites of a map view
(``GET /api/sites/map``), on every target of the ``http`` fixture; and both at 100,000 sites, whose
answers must stay bounded (rows and bytes) whatever the fleet.

Sites are created through the API where a test is about a few of them; the large fleet is written in
bulk with a pipeline (the site hashes and the indexes the reads use, named by the KeyManager).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from redisolar.app import get_services
from redisolar.dao.sites import pages
from redisolar.dao.sites.hashes import SITE_FIELDS

if TYPE_CHECKING:
    from conftest import ApiCalls

# -- helpers ---------------------------------------------------------------------------------------


def next_link(response: Any) -> str | None:
    """The URL of the ``Link: <URL>; rel="next"`` header, or None without one."""
    link = response.headers.get("Link")
    if link is None:
        return None
    url, rel = (part.strip() for part in link.split(";"))
    assert rel == 'rel="next"' and url.startswith("<") and url.endswith(">"), link
    return url[1:-1]


def walk(http: FlaskClient, url: str) -> list[list[int]]:
    """Follow the ``next`` links from ``url``; the ids of each page."""
    pages_seen: list[list[int]] = []
    next_url: str | None = url
    while next_url is not None:
        response = http.get(next_url)
        assert response.status_code == 200, response.get_json()
        pages_seen.append([site["id"] for site in response.get_json()])
        next_url = next_link(response)
        assert len(pages_seen) < 1000, "the walk does not end"
    return pages_seen


def create_sites(api: ApiCalls, ids: list[int]) -> None:
    for site_id in ids:
        api.create_site(
            site_id, capacity=float(site_id), coordinate={"lat": 30.0 + site_id / 10, "lng": -100.0}
        )


# -- pages -----------------------------------------------------------------------------------------
def test_a_small_fleet_is_one_page_without_a_link(api: ApiCalls, http: FlaskClient) -> None:
    create_sites(api, [5, 1, 3, 2, 4])
    response = http.get("/api/sites/")
    assert [site["id"] for site in response.get_json()] == [1, 2, 3, 4, 5]
    first = api.site_body(
        1, capacity=1.0, coordinate={"lat": 30.1, "lng": -100.0}, timezone="America/Chicago"
    )
    assert response.get_json()[0] == first
    assert "Link" not in response.headers
    exact = http.get("/api/sites/?limit=5")  # a page that ends exactly at the last site
    assert len(exact.get_json()) == 5 and "Link" not in exact.headers


def test_pages_cover_every_site_once_in_id_order(api: ApiCalls, http: FlaskClient) -> None:
    ids = [2, 3, 5, 7, 11, 13, 17, 19]
    create_sites(api, ids)
    seen = walk(http, "/api/sites/?limit=3")
    assert seen == [[2, 3, 5], [7, 11, 13], [17, 19]]
    first = http.get("/api/sites/?limit=3")
    assert next_link(first) == "http://localhost/api/sites/?limit=3&cursor=5"


def test_offset_and_cursor(api: ApiCalls, http: FlaskClient) -> None:
    create_sites(api, [10, 20, 30, 40, 50, 60])

    def ids(query: str) -> list[int]:
        response = http.get(f"/api/sites/?{query}")
        assert response.status_code == 200, response.get_json()
        return [site["id"] for site in response.get_json()]

    assert ids("offset=2&limit=2") == [30, 40]
    assert ids("cursor=20") == [30, 40, 50, 60]
    assert ids("cursor=25&limit=2") == [30, 40]  # a cursor need not be a site's id
    assert ids("cursor=20&offset=1&limit=2") == [40, 50]
    assert ids("offset=6") == []
    assert ids("cursor=60") == []
    assert ids("cursor=0&limit=1") == [10]
    # the offset is behind the next page's cursor
    assert (
        next_link(http.get("/api/sites/?offset=2&limit=2")) == "http://localhost/api/sites/?limit=2&cursor=40"
    )


def test_a_walk_survives_writes_behind_and_ahead_of_the_cursor(api: ApiCalls, http: FlaskClient) -> None:
    create_sites(api, [1, 2, 3, 4, 5, 6])
    first = http.get("/api/sites/?limit=2")
    assert http.delete("/api/sites/2").status_code == 204  # the cursor's own site goes
    api.create_site(7)  # ahead of the cursor: seen
    api.create_site(8, coordinate=None)
    next_url = next_link(first)
    assert next_url is not None
    assert walk(http, next_url) == [[3, 4], [5, 6], [7, 8]]


def test_an_id_without_its_hash_is_left_out_and_the_walk_goes_on(
    api: ApiCalls, http: FlaskClient, app: Flask
) -> None:
    """A site whose index entry exists without its hash (a write or delete under way)."""
    create_sites(api, [1, 3])
    services = get_services(app)
    services.redis.zadd(services.keys.site_ids_key(), {"2": 2})
    assert walk(http, "/api/sites/?limit=1") == [[1], [], [3]]


@pytest.mark.parametrize(
    "query",
    [
        "limit=0", "limit=1001", "limit=abc", "limit=1.5", "offset=-1", "offset=x", f"offset={2**53}",
        "cursor=abc", "cursor=-1", "cursor=1.5", "cursor=", f"cursor={2**53}", "cursor=%EF%BC%91",
        "cursor=" + "9" * 5000,
    ],
)  # fmt: skip
def test_bad_page_arguments_are_400(api: ApiCalls, http: FlaskClient, query: str) -> None:
    api.error(http.get(f"/api/sites/?{query}"), 400)


def test_the_largest_page(api: ApiCalls, http: FlaskClient, app: Flask) -> None:
    bulk_write(get_services(app).redis, get_services(app).keys, 1001)
    response = http.get("/api/sites/?limit=1000")
    assert [s["id"] for s in response.get_json()] == list(range(1, 1001))
    assert next_link(response) == "http://localhost/api/sites/?limit=1000&cursor=1000"


# -- map views -------------------------------------------------------------------------------------
def map_ids(http: FlaskClient, query: str) -> tuple[list[int], dict[str, Any]]:
    response = http.get(f"/api/sites/map?{query}")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    return [site["id"] for site in body["sites"]], body


def test_map_returns_the_sites_of_the_view(api: ApiCalls, http: FlaskClient) -> None:
    api.create_site(1, capacity=4.5, coordinate={"lat": 37.72, "lng": -122.2})  # Oakland
    api.create_site(2, capacity=6.0, coordinate={"lat": 40.71, "lng": -74.0})  # New York
    api.create_site(3, capacity=1.5, coordinate={"lat": -33.87, "lng": 151.21})  # Sydney
    api.create_site(4, coordinate=None)
    ids, body = map_ids(http, "")
    assert ids == [1, 2, 3] and body["truncated"] is False and body["limit"] == 500
    assert body["bbox"] == list(pages.WORLD)
    assert body["sites"][0] == {"id": 1, "lat": 37.72, "lng": -122.2, "capacity": 4.5}
    assert map_ids(http, "bbox=-125,24,-66,50")[0] == [1, 2]
    assert map_ids(http, "bbox=-123,37,-122,38")[0] == [1]
    assert map_ids(http, "bbox=140,-40,160,-30")[0] == [3]
    assert map_ids(http, "bbox=0,0,10,10")[0] == []
    assert map_ids(http, "bbox=-122.2,37.72,-122.1,37.8")[0] == [1]  # edges are inside


def test_map_limit_truncates_and_says_so(api: ApiCalls, http: FlaskClient) -> None:
    for site_id in range(1, 7):
        api.create_site(site_id, coordinate={"lat": 30.0 + site_id, "lng": -100.0 + site_id})
    ids, body = map_ids(http, "bbox=-125,24,-66,50&limit=2")
    assert len(ids) == 2 and set(ids) <= set(range(1, 7)) and body["truncated"] is True
    ids, body = map_ids(http, "bbox=-125,24,-66,50&limit=6")
    assert ids == [1, 2, 3, 4, 5, 6] and body["truncated"] is False


@pytest.mark.parametrize(
    "query",
    [
        "bbox=1,2,3", "bbox=1,2,3,4,5", "bbox=a,b,c,d", "bbox=", "bbox=10,0,5,10", "bbox=0,10,10,5",
        "bbox=0,0,0,10", "bbox=-181,0,0,10", "bbox=0,-89,10,10", "bbox=0,0,10,86", "bbox=nan,0,10,10",
        "bbox=0,0,inf,10", "limit=0", "limit=2001", "limit=x",
    ],
)  # fmt: skip
def test_bad_map_arguments_are_400(api: ApiCalls, http: FlaskClient, query: str) -> None:
    api.error(http.get(f"/api/sites/map?{query}"), 400)


def test_openapi_documents_the_page_and_map_arguments(http: FlaskClient) -> None:
    document = http.get("/api/openapi.json").get_json()
    paths = document["paths"]
    listing = paths["/api/sites/"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"limit", "cursor", "offset"}
    assert "Link" in listing["responses"]["200"]["headers"]
    view = paths["/api/sites/map"]["get"]
    assert {p["name"] for p in view["parameters"]} >= {"bbox", "limit"}
    assert view["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MapView"
    }
    assert set(document["components"]["schemas"]["MapView"]["properties"]) == {
        "sites",
        "truncated",
        "limit",
        "bbox",
    }


# -- a large fleet ---------------------------------------------------------------------------------
FLEET = 100_000
COLUMNS = 400
"""The fleet on a grid over the lower 48: 400 columns 0.15 degrees apart, 250 rows 0.1 apart."""


def grid_position(site_id: int) -> tuple[float, float]:
    """(lat, lng) of a site of the bulk fleet: no site lies on a half-step edge."""
    row, col = divmod(site_id - 1, COLUMNS)
    return round(25.0 + 0.1 * row, 4), round(-125.0 + 0.15 * col, 4)


def bulk_write(client: redis.Redis, keys: Any, count: int, chunk: int = 5000) -> None:
    """Write ``count`` sites (ids 1..count) straight to Redis: each hash, and the id, geo and
    capacity indexes, with a pipeline per chunk (not the API: that would take minutes)."""
    for start in range(1, count + 1, chunk):
        ids = range(start, min(start + chunk, count + 1))
        pipe = client.pipeline(transaction=False)
        for site_id in ids:
            lat, lng = grid_position(site_id)
            values = [str(site_id), repr(1.0 + site_id % 50), "10", f"{site_id} Grid Road", "Gridville", "CA",
                      "90210", repr(lat), repr(lng), "America/Los_Angeles"]  # fmt: skip
            pipe.hset(keys.site_key(site_id), mapping=dict(zip(SITE_FIELDS, values, strict=True)))
        pipe.zadd(keys.site_ids_key(), {str(i): i for i in ids})
        pipe.geoadd(
            keys.site_geo_key(), [v for i in ids for v in (grid_position(i)[1], grid_position(i)[0], str(i))]
        )
        pipe.zadd(keys.capacity_leaderboard_key(), {keys.member(i): 1.0 + i % 50 for i in ids})
        pipe.execute()


@pytest.fixture
def big_fleet(app: Flask) -> int:
    services = get_services(app)
    bulk_write(services.redis, services.keys, FLEET)
    return FLEET


def test_a_large_fleet_answers_bounded_pages_and_map_views(http: FlaskClient, big_fleet: int) -> None:
    first = http.get("/api/sites/")
    assert [s["id"] for s in first.get_json()] == list(range(1, 101))
    assert len(first.get_data()) < 30_000
    assert next_link(first) == "http://localhost/api/sites/?limit=100&cursor=100"
    deep = http.get(f"/api/sites/?offset={big_fleet - 2}")
    assert [s["id"] for s in deep.get_json()] == [big_fleet - 1, big_fleet] and "Link" not in deep.headers

    whole = http.get("/api/sites/map")
    body = whole.get_json()
    assert body["truncated"] is True and len(body["sites"]) == 500
    assert len(whole.get_data()) < 40_000
    # spread over the view, not the first cells Redis scans: every quarter of the fleet's extent
    quarters = {(s["lat"] >= 37.5, s["lng"] >= -95.0) for s in body["sites"]}
    assert quarters == {(False, False), (False, True), (True, False), (True, True)}
    for site in body["sites"]:
        assert (site["lat"], site["lng"]) == pytest.approx(grid_position(site["id"]), abs=1e-5)
        assert site["capacity"] == 1.0 + site["id"] % 50

    # zoomed in: every site of the view, and only those
    west, south, east, north = -120.025, 30.05, -118.525, 31.05  # 10 columns x 10 rows
    view = http.get(f"/api/sites/map?bbox={west},{south},{east},{north}").get_json()
    expected = [
        site_id
        for site_id in range(1, big_fleet + 1)
        if south <= grid_position(site_id)[0] <= north and west <= grid_position(site_id)[1] <= east
    ]
    assert len(expected) == 100
    assert [s["id"] for s in view["sites"]] == expected and view["truncated"] is False

    busy = http.get("/api/sites/map?bbox=-125,24,-66,50&limit=2000").get_json()
    assert len(busy["sites"]) == 2000 and busy["truncated"] is True
    assert len({s["id"] for s in busy["sites"]}) == 2000

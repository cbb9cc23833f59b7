"""Leaderboards, the reconciler trigger and the fleet summary (``/api/analytics/...``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from redisolar.app import get_services
from redisolar.localtime import local_day_hours
from redisolar.tasks.leaderboard_updater import LOCK_NAME
from redisolar.timeutil import utcnow

if TYPE_CHECKING:
    from conftest import ApiCalls, BackendServer

BOARD_KEYS = {"leaderboard_type", "day", "entries", "stats"}


@pytest.fixture
def fleet(api: ApiCalls) -> date:
    """Four sites (capacities 2, 4, 6, 8 kW) in Oakland (America/Los_Angeles, derived from their
    coordinates) with readings now; returns their local date (the day their boards count, and the
    fleet's today: the UTC date unless no site has reached it yet)."""
    when = utcnow() - timedelta(seconds=5)
    for site_id in (1, 2, 3, 4):
        api.create_site(site_id, capacity=2.0 * site_id)
        generated = {1: 400.0, 2: 100.0, 3: 300.0, 4: 240.0}[site_id]
        api.post_readings(site_id, [api.reading_body(when, wh_generated=generated)])
    return when.astimezone(ZoneInfo("America/Los_Angeles")).date()


def ranking(body: dict[str, Any]) -> list[tuple[int, int]]:
    return [(entry["rank"], entry["site"]["id"]) for entry in body["entries"]]


# -- boards ----------------------------------------------------------------------------------------
def test_capacity_board(http: FlaskClient, fleet: date) -> None:
    body = http.get("/api/analytics/leaderboards/capacity").get_json()
    assert set(body) == BOARD_KEYS
    assert body["leaderboard_type"] == "capacity" and body["day"] is None
    assert ranking(body) == [(1, 4), (2, 3), (3, 2), (4, 1)]
    assert body["entries"][0]["score"] == 8.0
    assert body["entries"][0]["site"]["capacity"] == 8.0
    stats = {"total_sites": 4, "highest_score": 8.0, "lowest_score": 2.0, "average_score": 5.0}
    assert body["stats"] == stats
    page = http.get("/api/analytics/leaderboards/capacity?limit=2&offset=1").get_json()
    assert ranking(page) == [(2, 3), (3, 2)]


def test_daily_boards(http: FlaskClient, fleet: date) -> None:
    generation = http.get("/api/analytics/leaderboards/generation").get_json()
    assert generation["day"] == fleet.isoformat()
    assert ranking(generation) == [(1, 1), (2, 3), (3, 4), (4, 2)]
    assert generation["entries"][0]["score"] == 400.0
    efficiency = http.get(f"/api/analytics/leaderboards/efficiency?day={fleet.isoformat()}").get_json()
    assert ranking(efficiency) == [(1, 1), (2, 3), (3, 4), (4, 2)]  # Wh per kW: 200, 25, 50, 30
    hours = local_day_hours(fleet, "America/Los_Angeles")  # 23 or 25 on DST changes
    assert efficiency["entries"][0]["score"] == pytest.approx(100 * 400.0 / (2.0 * 1000 * hours))
    older = (fleet - timedelta(days=3)).isoformat()
    empty = http.get(f"/api/analytics/leaderboards/generation?day={older}").get_json()
    assert empty["entries"] == [] and empty["stats"]["total_sites"] == 0 and empty["day"] == older


def test_site_position(http: FlaskClient, fleet: date) -> None:
    body = http.get("/api/analytics/leaderboards/capacity/site/2?context=1").get_json()
    assert body == {
        "site_id": 2, "leaderboard_type": "capacity", "day": None, "rank": 3, "score": 4.0,
        "surrounding_sites": body["surrounding_sites"], "timezone": "America/Los_Angeles",
    }  # fmt: skip
    assert ranking({"entries": body["surrounding_sites"]}) == [(2, 3), (3, 2), (4, 1)]
    top = http.get("/api/analytics/leaderboards/generation/site/1").get_json()
    assert top["rank"] == 1 and top["day"] == fleet.isoformat()
    assert [e["site"]["id"] for e in top["surrounding_sites"]] == [1, 3, 4]  # context 2, none above


def test_site_not_on_the_board_is_the_seeds_404(api: ApiCalls, http: FlaskClient, fleet: date) -> None:
    api.create_site(5)  # no readings: on the capacity board only
    assert http.get("/api/analytics/leaderboards/capacity/site/5").status_code == 200
    response = http.get("/api/analytics/leaderboards/generation/site/5")
    body = api.error(response, 404, "not found in generation")
    assert body["message"] == body["error"]
    api.error(http.get("/api/analytics/leaderboards/generation/site/9"), 404, "Site 9 not found")


@pytest.mark.parametrize(
    ("url", "contains"),
    [
        ("/api/analytics/leaderboards/speed", "Invalid leaderboard type"),
        ("/api/analytics/leaderboards/capacity?limit=0", "Validation failed"),
        ("/api/analytics/leaderboards/capacity?limit=101", "Validation failed"),
        ("/api/analytics/leaderboards/capacity?limit=ten", "Validation failed"),
        ("/api/analytics/leaderboards/capacity?limit=1.5", "Validation failed"),
        ("/api/analytics/leaderboards/capacity?offset=-1", "Validation failed"),
        ("/api/analytics/leaderboards/generation?day=2024-02-30", "Validation failed"),
        ("/api/analytics/leaderboards/generation?day=today", "Validation failed"),
        ("/api/analytics/leaderboards/speed/site/1", "Invalid leaderboard type"),
        ("/api/analytics/leaderboards/capacity/site/1?context=-1", "Validation failed"),
        ("/api/analytics/leaderboards/capacity/site/1?context=101", "Validation failed"),
        ("/api/analytics/leaderboards/capacity/site/1?context=x", "Validation failed"),
    ],
)
def test_bad_board_query_is_400(api: ApiCalls, http: FlaskClient, url: str, contains: str) -> None:
    api.create_site(1)
    body = api.error(http.get(url), 400, contains)
    if contains == "Validation failed":
        assert isinstance(body["details"], dict) and body["details"]


def test_document_lists_the_leaderboard_types(http: FlaskClient) -> None:
    """Found by fuzzing: the document gave `leaderboard_type` as any string (every other value is a 400)."""
    paths = http.get("/api/openapi.json").get_json()["paths"]
    for path in (
        "/api/analytics/leaderboards/{leaderboard_type}",
        "/api/analytics/leaderboards/{leaderboard_type}/site/{site_id}",
    ):
        board = next(p for p in paths[path]["parameters"] if p["name"] == "leaderboard_type")
        assert board["schema"]["enum"] == ["capacity", "generation", "efficiency"]


def test_board_routes_with_ids_no_site_can_have(api: ApiCalls, http: FlaskClient) -> None:
    api.error(http.get("/api/analytics/leaderboards/capacity/site/0"), 404)
    api.error(http.get("/api/analytics/leaderboards/capacity/site/x"), 404)
    api.error(http.post("/api/analytics/leaderboards/capacity"), 405)


# -- the reconciler --------------------------------------------------------------------------------
def test_update_runs_the_reconciler(http: FlaskClient, client: redis.Redis, fleet: date) -> None:
    client.delete("ru102py-app:capacity_leaderboard")  # damage, which the reconcile repairs
    response = http.post("/api/analytics/leaderboards/update")
    assert response.status_code == 200
    assert response.get_json() == {
        "message": "Leaderboards updated successfully",
        "report": {"day": fleet.isoformat(), "sites": 4, "capacity_entries": 4, "daily_scores_changed": 0},
    }
    assert len(http.get("/api/analytics/leaderboards/capacity").get_json()["entries"]) == 4
    older = http.post(f"/api/analytics/leaderboards/update?day={fleet - timedelta(days=1)}")
    assert older.get_json()["report"]["day"] == (fleet - timedelta(days=1)).isoformat()


def test_update_while_another_process_runs_it_is_202(
    app: Flask, http: FlaskClient, client: redis.Redis
) -> None:
    lock = get_services(app).keys.lock_key(LOCK_NAME)
    client.set(lock, "another-process", ex=60)
    response = http.post("/api/analytics/leaderboards/update")
    assert response.status_code == 202
    assert response.get_json()["report"] is None
    assert "already running" in response.get_json()["message"]
    assert client.get(lock) == "another-process"


def test_update_with_bad_day_is_400(api: ApiCalls, http: FlaskClient) -> None:
    api.error(http.post("/api/analytics/leaderboards/update?day=yesterday"), 400)


def test_get_of_the_update_route_is_405(api: ApiCalls, http: FlaskClient) -> None:
    """Found by fuzzing: GET /leaderboards/update was the board "update" (400 "Invalid leaderboard
    type") and OPTIONS advertised GET there, which the document does not list."""
    response = http.get("/api/analytics/leaderboards/update")
    api.error(response, 405)
    assert set(response.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}
    assert "GET" not in http.options("/api/analytics/leaderboards/update").headers["Allow"]
    api.error(http.get("/api/analytics/leaderboards/updates"), 400, "Invalid leaderboard type")


@pytest.mark.parametrize("day", ["0982-04-10", "1970-01-01", "9999-12-31"])
def test_board_days_no_reading_can_have_are_400(api: ApiCalls, http: FlaskClient, day: str) -> None:
    """Found by fuzzing: reconciling a day before 1970 answered 500 on Redis Stack (TS.RANGE: "wrong
    fromTimestamp"), and 9999-12-31 on both backends (the day after it overflows)."""
    api.create_site(1)
    api.post_readings(1, [api.reading_body(utcnow() - timedelta(minutes=5))])
    for method, url in [
        ("POST", f"/api/analytics/leaderboards/update?day={day}"),
        ("GET", f"/api/analytics/leaderboards/generation?day={day}"),
        ("GET", f"/api/analytics/leaderboards/efficiency/site/1?day={day}"),
    ]:
        body = api.error(http.open(url, method=method), 400, "Validation failed")
        assert "day" in body["details"]
    edges = ("1970-01-02", "9999-12-30")
    assert all(http.post(f"/api/analytics/leaderboards/update?day={d}").status_code == 200 for d in edges)


# -- the fleet summary -----------------------------------------------------------------------------
def test_summary_without_sites(http: FlaskClient) -> None:
    response = http.get("/api/analytics/summary")
    assert response.status_code == 200
    assert response.get_json() == {"message": "No sites available", "total_sites": 0}


def test_summary(http: FlaskClient, fleet: date) -> None:
    summary = http.get("/api/analytics/summary").get_json()["summary"]
    start = datetime.fromisoformat(summary["period_start"])
    end = datetime.fromisoformat(summary["period_end"])
    assert start <= utcnow() - timedelta(hours=23) and end >= utcnow() - timedelta(seconds=5)
    hours = (end - start) / timedelta(hours=1)
    assert summary == {
        "total_sites": 4,
        "active_sites_24h": 4,
        "total_capacity_kw": 20.0,
        "total_generation_24h_wh": 1040.0,
        "overall_efficiency_percent": pytest.approx(100 * 1040.0 / (20.0 * 1000 * hours)),
        "period_start": summary["period_start"],
        "period_end": summary["period_end"],
    }


def test_summary_cache(
    api: ApiCalls, app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis
) -> None:
    cached = app_factory(backend_server.server, SUMMARY_CACHE_SECONDS=60).test_client()
    fresh = app_factory(backend_server.server).test_client()
    assert cached.get("/api/analytics/summary").get_json()["total_sites"] == 0
    assert fresh.post("/api/sites/", json=api.site_body(1)).status_code == 201
    assert cached.get("/api/analytics/summary").get_json()["total_sites"] == 0  # still the cached answer
    assert fresh.get("/api/analytics/summary").get_json()["summary"]["total_sites"] == 1

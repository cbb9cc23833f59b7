"""Fixed-shape responses are built without a per-request schema walk, and the readings payloads are
checked by their compiled validator only: the bodies equal what the documenting marshmallow schemas
would dump, and no marshmallow schema runs while those requests are served."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from flask.testing import FlaskClient
from marshmallow import Schema

from redisolar.api import render
from redisolar.api.schemas import FleetSummarySchema, LeaderboardStatsSchema
from redisolar.models.schemas import LeaderboardEntrySchema, SiteSchema, TimeSeriesDataSchema
from redisolar.models.site import Coordinate, LeaderboardEntry, Site, TimeSeriesData
from redisolar.timeutil import utcnow

if TYPE_CHECKING:
    from conftest import ApiCalls

SITES = [
    Site(1, 4.5, 12, "1 Main St", "Oakland", "CA", "94601", Coordinate(37.8, -122)),
    Site(2, 3, 1, "2 Oak Ave", "Albany", "NY", "12207", None),
]


@pytest.mark.parametrize("site", SITES)
def test_site_and_entry_bodies_equal_the_schema_dumps(site: Site) -> None:
    assert render.site(site) == SiteSchema().dump(site)
    entry = LeaderboardEntry(site, 7, 3)
    assert render.entry(entry) == LeaderboardEntrySchema().dump(entry)
    assert repr(render.entry(entry)["score"]) == repr(LeaderboardEntrySchema().dump(entry)["score"])


def test_point_stats_and_summary_bodies_equal_the_schema_dumps() -> None:
    point = TimeSeriesData(utcnow().replace(microsecond=123000), 2)
    assert render.point(point) == TimeSeriesDataSchema().dump(point)
    empty = {"total_sites": 0, "highest_score": 0, "lowest_score": 0, "average_score": 0}
    assert render.board_stats(empty) == LeaderboardStatsSchema().dump(empty)
    assert all(isinstance(v, float) for k, v in render.board_stats(empty).items() if k != "total_sites")
    summary = {
        "total_sites": 2,
        "active_sites_24h": 1,
        "total_capacity_kw": 7,
        "total_generation_24h_wh": 10.5,
        "overall_efficiency_percent": 0,
        "period_start": "2026-01-01T00:00:00+00:00",
        "period_end": "2026-01-02T00:00:00+00:00",
    }
    assert render.fleet_summary(summary) == FleetSummarySchema().dump(summary)
    assert render.iso(date(2026, 1, 2)) == "2026-01-02" and render.iso(None) is None


def refuse(self: Schema, *args: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"{type(self).__name__} ran on a fixed-shape request")


def test_hot_requests_answer_without_schemas(
    api: ApiCalls, http: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.create_site(1)
    when = (utcnow() - timedelta(minutes=5)).replace(microsecond=0)
    monkeypatch.setattr(Schema, "dump", refuse)
    board = http.get("/api/analytics/leaderboards/capacity").get_json()  # (its query still parsed by one)
    assert [e["site"]["id"] for e in board["entries"]] == [1] and board["day"] is None
    monkeypatch.setattr(Schema, "load", refuse)
    created = http.post("/api/analytics/readings/1", json=api.reading_body(when))
    assert created.status_code == 201 and created.get_json()["reading"]["timestamp"] == when.isoformat()
    batch = [api.reading_body(when - timedelta(minutes=m)) for m in (1, 2)]
    assert http.post("/api/analytics/readings/1/batch", json=batch).get_json()["count"] == 2
    assert set(http.get("/api/analytics/readings/1/latest").get_json()["latest_readings"]) == {
        "wh_generated", "wh_used", "temp_c", "net_generation"
    }  # fmt: skip
    assert http.get("/api/analytics/summary").get_json()["summary"]["total_sites"] == 1
    assert http.get("/health").get_json()["status"] == "healthy"
    api.error(http.post("/api/analytics/readings/1", json={"wh_used": -1}), 400, "Validation failed")


def test_a_reading_with_several_problems_names_each(api: ApiCalls, http: FlaskClient) -> None:
    api.create_site(1)
    body = {"timestamp": "yesterday", "wh_generated": "1.5", "wh_used": -1, "extra": 1}
    response = http.post("/api/analytics/readings/1", json=body)
    details = api.error(response, 400, "Validation failed")["details"]
    assert details == {
        "timestamp": ["Not a valid datetime."],
        "wh_generated": ["Not a valid number."],
        "wh_used": ["Must be greater than or equal to 0.0."],
        "temp_c": ["Missing data for required field."],
        "extra": ["Unknown field."],
    }
    batch = [api.reading_body(utcnow()), {**api.reading_body(utcnow()), "site_id": 2}, 7]
    details = api.error(http.post("/api/analytics/readings/1/batch", json=batch), 400)["details"]
    assert details == {
        "1": {"site_id": ["Must equal the site id of the path (1)."]},
        "2": {"_schema": ["Invalid input type."]},
    }

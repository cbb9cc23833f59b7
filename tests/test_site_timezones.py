"""Site time zones: validation, derivation from coordinates, DEFAULT_TIMEZONE, PUT semantics, the
migration of sites stored without one (redisolar.timezones, redisolar.dao.site_timezones)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask

from redisolar.models.site import Coordinate, Site
from redisolar.settings import DEFAULTS, ConfigError, load_config
from redisolar.timezones import derived_timezone, timezone_at, with_timezone

if TYPE_CHECKING:
    from conftest import ApiCalls, BackendServer
    from flask.testing import FlaskClient

PLACES = [  # (lat, lng, zone)
    (33.4484, -112.0740, "America/Phoenix"),
    (21.3069, -157.8583, "Pacific/Honolulu"),
    (51.5072, -0.1276, "Europe/London"),
    (40.7128, -74.0060, "America/New_York"),
    (-31.5553, 159.0821, "Australia/Lord_Howe"),
    (27.7172, 85.3240, "Asia/Kathmandu"),
    (0.0, -150.0, "Etc/GMT+10"),  # the Pacific, far from land: the nautical zone (UTC-10)
    (-50.0, -30.0, "Etc/GMT+2"),  # the South Atlantic
]


# -- derivation ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("lat", "lng", "zone"), PLACES)
def test_the_zone_of_a_coordinate(lat: float, lng: float, zone: str) -> None:
    assert timezone_at(Coordinate(lat, lng)) == zone
    assert derived_timezone(Coordinate(lat, lng), "Asia/Tokyo") == zone


def test_without_a_coordinate_the_default() -> None:
    assert timezone_at(None) is None
    assert derived_timezone(None) == "UTC"
    assert derived_timezone(None, "Asia/Tokyo") == "Asia/Tokyo"
    site = Site(1, 1.0, 1, "1 A St", "City", "ST", "12345")
    assert with_timezone(site, "Asia/Tokyo").timezone == "Asia/Tokyo"
    given = Site(1, 1.0, 1, "1 A St", "City", "ST", "12345", Coordinate(51.5, -0.13), "Asia/Tokyo")
    assert with_timezone(given) is given  # a given zone is kept, whatever the coordinate says


def test_the_model_refuses_unknown_zones() -> None:
    for bad in ("Mars/Olympus", "america/phoenix", "localtime", "", "+05:00"):
        with pytest.raises(ValueError, match="Unknown time zone"):
            Site(1, 1.0, 1, "1 A St", "City", "ST", "12345", timezone=bad)


# -- DEFAULT_TIMEZONE ------------------------------------------------------------------------------
def test_default_timezone_setting(app_factory: Callable[..., Flask], backend_server: BackendServer) -> None:
    assert DEFAULTS["DEFAULT_TIMEZONE"] == "UTC"
    app = app_factory(backend_server.server, DEFAULT_TIMEZONE="America/Phoenix")
    http = app.test_client()
    body = {"id": 7, "capacity": 1.0, "panels": 1, "address": "1 A St", "city": "C", "state": "AZ",
            "postal_code": "85001"}  # fmt: skip
    assert http.post("/api/sites/", json=body).get_json()["timezone"] == "America/Phoenix"
    at_sea = {**body, "id": 8, "coordinate": {"lat": 0.0, "lng": -150.0}}
    assert http.post("/api/sites/", json=at_sea).get_json()["timezone"] == "Etc/GMT+10"


@pytest.mark.parametrize("bad", ["Mars/Olympus", "utc", "localtime", ""])
def test_a_bad_default_timezone_is_refused_at_start_up(bad: str) -> None:
    with pytest.raises(ConfigError, match="DEFAULT_TIMEZONE must be an IANA time zone"):
        load_config(Flask(__name__).config, "none", {"DEFAULT_TIMEZONE": bad}, environ={})


def test_default_timezone_from_the_environment() -> None:
    config = Flask(__name__).config
    load_config(config, "none", environ={"REDISOLAR_DEFAULT_TIMEZONE": "Europe/Berlin"})
    assert config["DEFAULT_TIMEZONE"] == "Europe/Berlin"


# -- the API ---------------------------------------------------------------------------------------
def phoenix(api: ApiCalls, site_id: int = 1, **overrides: Any) -> dict[str, Any]:
    place = {"city": "Phoenix", "state": "AZ", "coordinate": {"lat": 33.45, "lng": -112.07}}
    return api.site_body(site_id, **{**place, **overrides})


def test_create_derives_or_keeps_the_zone(api: ApiCalls, http: FlaskClient) -> None:
    assert api.create_site(1, coordinate={"lat": 21.31, "lng": -157.86})["timezone"] == "Pacific/Honolulu"
    assert api.create_site(2, coordinate=None)["timezone"] == "UTC"  # DEFAULT_TIMEZONE
    assert api.create_site(3, timezone=None)["timezone"] == "America/Los_Angeles"  # null: derived
    given = api.create_site(4, timezone="Asia/Kathmandu")  # kept, whatever the coordinate says
    assert given["timezone"] == "Asia/Kathmandu"
    assert http.get("/api/sites/4").get_json()["timezone"] == "Asia/Kathmandu"
    zones = {s["id"]: s["timezone"] for s in http.get("/api/sites/").get_json()}
    assert zones == {1: "Pacific/Honolulu", 2: "UTC", 3: "America/Los_Angeles", 4: "Asia/Kathmandu"}
    board = http.get("/api/analytics/leaderboards/capacity").get_json()
    assert {e["site"]["id"]: e["site"]["timezone"] for e in board["entries"]} == zones
    found = http.get("/api/sites/search?state=CA").get_json()["sites"]
    assert {s["id"]: s["timezone"] for s in found} == zones


@pytest.mark.parametrize("bad", ["Mars/Olympus", "america/phoenix", "localtime", "", "UTC+2", 5, ["UTC"]])
def test_an_unknown_zone_is_a_400(api: ApiCalls, http: FlaskClient, bad: object) -> None:
    response = http.post("/api/sites/", json=api.site_body(1, timezone=bad))
    body = api.error(response, 400)
    assert "timezone" in body["details"], body
    if isinstance(bad, str):
        assert any("IANA" in message for message in body["details"]["timezone"]), body
    assert http.get("/api/sites/1").status_code == 404  # nothing written
    api.create_site(1)
    response = http.put("/api/sites/1", json=api.site_body(1, timezone=bad))
    assert "timezone" in api.error(response, 400)["details"]
    assert http.get("/api/sites/1").get_json()["timezone"] == "America/Los_Angeles"


def test_put_without_a_zone_derives_it_again(api: ApiCalls, http: FlaskClient) -> None:
    api.create_site(1, timezone="Europe/London")
    moved = http.put("/api/sites/1", json=phoenix(api))  # a PUT replaces: no zone given, derived
    assert moved.get_json()["timezone"] == "America/Phoenix"
    kept = http.put("/api/sites/1", json=phoenix(api, timezone="America/Denver"))
    assert kept.get_json()["timezone"] == "America/Denver"
    assert http.get("/api/sites/1").get_json()["timezone"] == "America/Denver"
    again = http.put("/api/sites/1", json=phoenix(api, timezone=None))
    assert again.get_json()["timezone"] == "America/Phoenix"
    unplaced = http.put("/api/sites/1", json=phoenix(api, coordinate=None))
    assert unplaced.get_json()["timezone"] == "UTC"


def test_the_openapi_document_describes_the_field(http: FlaskClient) -> None:
    document = http.get("/api/openapi.json").get_json()
    field = document["components"]["schemas"]["Site"]["properties"]["timezone"]
    assert field["type"] == ["string", "null"] or field.get("nullable") is True, field
    assert "IANA" in field["description"]

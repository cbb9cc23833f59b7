"""Site time zones: validation, derivation from coordinates, DEFAULT_TIMEZONE, PUT semantics, the
migration of sites stored without one (redisolar.timezones, redisolar.dao.site_timezones)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
import redis
from click.testing import CliRunner
from flask import Flask

from redisolar.app import get_services
from redisolar.cli import main
from redisolar.dao.key_manager import KeyManager
from redisolar.dao.scripts import ScriptCall, run_scripts, script
from redisolar.dao.site_dao_redis import SiteDaoRedis
from redisolar.dao.site_timezones import MIGRATION, give_sites_timezones
from redisolar.models.site import Coordinate, Site
from redisolar.preflight import migrate_store
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
def test_default_timezone_setting(
    app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis
) -> None:
    """(``client`` empties the store first: sites 7 and 8 must be new.)"""
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


# -- the migration of sites stored without a zone ----------------------------------------------------
KEYS = KeyManager()
OLD_SITES = [  # as an earlier version stored them: no zone
    Site(1, 1.0, 1, "1 Central Ave", "Phoenix", "AZ", "85004", Coordinate(33.45, -112.07)),
    Site(2, 2.0, 2, "2 Strand", "London", "LDN", "WC2R", Coordinate(51.51, -0.12)),
    Site(3, 3.0, 3, "3 Nowhere Rd", "Unknown", "NV", "89101"),  # no coordinate: the default
    Site(4, 4.0, 4, "4 Kalakaua Ave", "Honolulu", "HI", "96815", Coordinate(21.28, -157.83), "Asia/Tokyo"),
]
MIGRATED = {1: "America/Phoenix", 2: "Europe/London", 3: "America/Denver", 4: "Asia/Tokyo"}


def zones(client: redis.Redis) -> dict[int, str | None]:
    return {site.id: site.timezone for site in SiteDaoRedis(client, search="core").find_all()}


def test_the_migration_gives_old_sites_zones_once(
    client: redis.Redis, store_snapshot: Callable[[], dict[bytes, bytes | None]]
) -> None:
    SiteDaoRedis(client, search="core").insert_many(*OLD_SITES)
    assert zones(client) == {1: None, 2: None, 3: None, 4: "Asia/Tokyo"}
    assert give_sites_timezones(client, KEYS, "America/Denver") == 3
    assert zones(client) == MIGRATED
    assert client.hget(KEYS.migrations_key(), MIGRATION) == "done"
    before = store_snapshot()
    assert give_sites_timezones(client, KEYS, "America/Denver") == 0  # done: one HEXISTS
    assert give_sites_timezones(client, KEYS, "UTC", force=True) == 0  # every site has one
    assert store_snapshot() == before


def test_a_forced_walk_finds_sites_written_without_a_zone_since(client: redis.Redis) -> None:
    dao = SiteDaoRedis(client, search="core")
    assert give_sites_timezones(client, KEYS, "UTC") == 0  # an empty fleet: done at once
    dao.insert(OLD_SITES[0])  # a direct DAO write without a zone (an older process, say)
    assert give_sites_timezones(client, KEYS, "UTC") == 0  # the start-up trusts its marker
    assert give_sites_timezones(client, KEYS, "UTC", force=True) == 1  # `redisolar migrate` walks
    assert zones(client) == {1: "America/Phoenix"}


def test_the_script_sets_no_zone_over_a_concurrent_write(client: redis.Redis) -> None:
    dao = SiteDaoRedis(client, search="core")
    dao.insert(OLD_SITES[0])
    key = KEYS.site_key(1)

    def set_zone(lat: str, lng: str, site_id: int = 1) -> int:
        call = ScriptCall(script("site_timezone"), (KEYS.site_key(site_id),), ("Europe/Paris", lat, lng))
        return int(run_scripts(client, [call])[0])

    assert set_zone("33.4", "-112.07") == 0  # moved since it was read: read again
    assert set_zone("33.45", "-112.07", site_id=9) == 0  # gone: no stray hash
    assert not client.exists(KEYS.site_key(9))
    assert client.hget(key, "timezone") is None
    assert set_zone("33.45", "-112.07") == 1
    assert set_zone("33.45", "-112.07") == 0  # it has one now: kept
    assert client.hget(key, "timezone") == "Europe/Paris"


def test_start_up_and_the_migrate_command_give_zones(
    app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis
) -> None:
    SiteDaoRedis(client, search="core").insert_many(*OLD_SITES)
    app = app_factory(backend_server.server, DEFAULT_TIMEZONE="America/Denver")
    migrate_store(get_services(app))  # what serve, demo and load run first
    assert zones(client) == MIGRATED
    assert app.test_client().get("/api/sites/3").get_json()["timezone"] == "America/Denver"
    SiteDaoRedis(client, search="core").insert(replace(OLD_SITES[2], id=5))  # stored without a zone since
    env = {**backend_server.env(), "REDISOLAR_DEFAULT_TIMEZONE": "America/Denver"}
    result = CliRunner().invoke(main, ["migrate"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Time zones: 1 " in result.output
    assert zones(client) == {**MIGRATED, 5: "America/Denver"}

"""Alerts: each rule kind against readings crafted for it (opens once, stays single across passes,
resolves by itself), the rules' API, the alert listings, on every target (both backends, standalone
and cluster)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from redisolar.alerts import service, solar
from redisolar.alerts.conditions import usual_interval
from redisolar.app import get_services
from redisolar.events.stream import EventKeys, read_range
from redisolar.timeutil import UTC, from_ms, to_ms, utcnow
from tests.conftest import ApiCalls
from tests.test_dashboard import browser  # noqa: F401  (the fixture)

LA = (34.05, -118.24)
STEP = timedelta(minutes=5)


def solar_noon(lat: float, lng: float) -> datetime:
    """Yesterday's (UTC) solar noon at the place, to 5 minutes: the sun at its highest."""
    day = datetime.combine(utcnow().date() - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    times = [day + i * STEP for i in range(288)]
    return max(times, key=lambda t: solar.solar_elevation(to_ms(t), lat, lng))


def add_rule(http: FlaskClient, **rule: Any) -> dict[str, Any]:
    response = http.post("/api/alerts/rules", json=rule)
    assert response.status_code == 201, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def evaluate(app: Flask, now: datetime | None = None) -> None:
    report = service.evaluate(get_services(app), now)
    assert report is not None


def alerts(http: FlaskClient, **query: Any) -> list[dict[str, Any]]:
    response = http.get("/api/alerts", query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    found: list[dict[str, Any]] = response.get_json()["alerts"]
    return found


def readings(start: datetime, end: datetime, wh: Any = 100.0, temp: float = 25.0) -> list[dict[str, Any]]:
    """Readings every 5 minutes in ``[start, end)``; ``wh`` a number or a function of the time."""
    out, t = [], start
    while t < end:
        value = wh(t) if callable(wh) else wh
        out.append({"timestamp": t.isoformat(), "wh_generated": value, "wh_used": 50.0, "temp_c": temp})
        t += STEP
    return out


def clear_sky(capacity: float, lat: float, lng: float, factor: float) -> Any:
    """Wh per 5-minute reading: ``factor`` of the clear-sky yield of the 5 minutes it starts."""
    return lambda t: round(factor * solar.clear_sky_wh(capacity, lat, lng, to_ms(t), to_ms(t + STEP)), 3)


def test_solar_elevation_is_high_at_noon_and_negative_at_midnight() -> None:
    noon = solar_noon(*LA)
    assert 25 < solar.solar_elevation(to_ms(noon), *LA) < 85
    assert solar.solar_elevation(to_ms(noon + timedelta(hours=12)), *LA) < -20
    # the equator at an equinox: the sun nearly overhead at solar noon (12:00 UTC at lng 0, ± EoT)
    assert solar.solar_elevation(to_ms(datetime(2026, 3, 20, 12, 7, tzinfo=UTC)), 0.0, 0.0) > 88


def test_solar_elevation_at_noon_of_the_solstices() -> None:
    """At solar noon the sun stands 90° - latitude + declination high (±23.44° at the solstices)."""
    for day, declination in (
        (datetime(2026, 6, 21, tzinfo=UTC), 23.44),
        (datetime(2026, 12, 21, tzinfo=UTC), -23.44),
    ):
        highest = max(
            solar.solar_elevation(to_ms(day + timedelta(minutes=m)), 40.0, -105.0) for m in range(1440)
        )
        assert highest == pytest.approx(90 - 40 + declination, abs=0.5)


def test_usual_interval_is_the_median_gap() -> None:
    assert usual_interval([0, 300_000, 600_000, 900_000, 4_500_000]) == 5.0
    assert usual_interval([1]) is None


def test_offline_opens_once_and_resolves(app: Flask, http: FlaskClient, api: ApiCalls) -> None:
    api.create_site(1, coordinate={"lat": LA[0], "lng": LA[1]})
    now = utcnow().replace(microsecond=0)
    api.post_readings(1, readings(now - timedelta(hours=3), now - timedelta(hours=2)))
    add_rule(http, kind="offline", id="quiet")
    evaluate(app, now)
    evaluate(app, now)
    opened = alerts(http)
    assert [(a["site_id"], a["kind"], a["state"]) for a in opened] == [(1, "offline", "open")]
    assert opened[0]["values"]["limit_minutes"] == 15.0  # 3 x 5 min is less than the floor
    assert opened[0]["values"]["minutes_silent"] > 100
    api.post_readings(1, readings(now - timedelta(minutes=5), now))  # resolves it at ingest
    evaluate(app, now)  # (and the evaluator agrees: nothing more)
    assert alerts(http) == []
    resolved = alerts(http, state="resolved")
    assert [(a["id"], a["state"], a["resolution"]) for a in resolved] == [
        (opened[0]["id"], "resolved", "a reading arrived")
    ]
    history = http.get("/api/alerts/site/1").get_json()["alerts"]
    assert [a["state"] for a in history] == ["resolved"]
    services = get_services(app)
    events = read_range(services.redis, EventKeys.of(services.keys).notify)
    assert [(e.kind, e.data["id"]) for e in events] == [
        ("alert.opened", opened[0]["id"]),
        ("alert.resolved", opened[0]["id"]),
    ]


def test_daylight_zero_at_local_noon(app: Flask, http: FlaskClient, api: ApiCalls) -> None:
    api.create_site(2, coordinate={"lat": LA[0], "lng": LA[1]})
    noon = solar_noon(*LA)
    api.post_readings(2, readings(noon - timedelta(hours=2), noon, wh=0.0))
    add_rule(http, kind="daylight", window_minutes=60)
    evaluate(app, noon)
    evaluate(app, noon)
    opened = alerts(http, site_id=2)
    assert [(a["kind"], a["state"]) for a in opened] == [("daylight", "open")]
    assert opened[0]["values"]["wh_generated"] == 0
    evaluate(app, noon + timedelta(hours=12))  # night: cannot tell, stays open
    assert [a["state"] for a in alerts(http, site_id=2)] == ["open"]
    api.post_readings(2, readings(noon, noon + timedelta(hours=1), wh=clear_sky(4.5, *LA, 0.8)))
    evaluate(app, noon + timedelta(hours=1))
    assert [a["state"] for a in alerts(http, site_id=2)] == ["resolved"]


def test_daylight_does_not_alert_at_night(app: Flask, http: FlaskClient, api: ApiCalls) -> None:
    api.create_site(3, coordinate={"lat": LA[0], "lng": LA[1]})
    midnight = solar_noon(*LA) - timedelta(hours=12)
    api.post_readings(3, readings(midnight - timedelta(hours=1), midnight, wh=0.0))
    add_rule(http, kind="daylight")
    evaluate(app, midnight)
    assert alerts(http) == []


NEIGHBOURS = {11: (34.05, -118.24), 12: (34.10, -118.30), 13: (34.00, -118.20), 14: (34.08, -118.15)}


def _region(api: ApiCalls, http: FlaskClient) -> datetime:
    for site_id, (lat, lng) in NEIGHBOURS.items():
        api.create_site(site_id, capacity=5.0, coordinate={"lat": lat, "lng": lng})
    add_rule(http, kind="underperformance", window_minutes=60, percent=50, radius_km=30)
    return solar_noon(*LA)


def _post_region(api: ApiCalls, start: datetime, factors: dict[int, float]) -> None:
    for site_id, (lat, lng) in NEIGHBOURS.items():
        wh = clear_sky(5.0, lat, lng, factors[site_id])
        api.post_readings(site_id, readings(start, start + timedelta(hours=1), wh=wh))


def test_underperformance_against_neighbours(app: Flask, http: FlaskClient, api: ApiCalls) -> None:
    noon = _region(api, http)
    _post_region(api, noon - timedelta(hours=1), {11: 0.36, 12: 0.9, 13: 0.9, 14: 0.9})  # 40 % of theirs
    evaluate(app, noon)
    evaluate(app, noon)
    opened = alerts(http)
    assert [(a["site_id"], a["kind"]) for a in opened] == [(11, "underperformance")]
    values = opened[0]["values"]
    assert values["neighbours"] == 3
    assert values["percent_of_neighbours"] == pytest.approx(40, abs=2)
    assert values["percent_of_clear_sky"] == pytest.approx(36, abs=2)
    _post_region(api, noon, {11: 0.9, 12: 0.9, 13: 0.9, 14: 0.9})
    evaluate(app, noon + timedelta(hours=1))
    assert alerts(http) == []
    assert [a["site_id"] for a in alerts(http, state="resolved")] == [11]


def test_a_cloudy_region_does_not_alert(app: Flask, http: FlaskClient, api: ApiCalls) -> None:
    noon = _region(api, http)
    _post_region(api, noon - timedelta(hours=1), {11: 0.25, 12: 0.3, 13: 0.3, 14: 0.28})  # all low
    evaluate(app, noon)
    assert alerts(http) == []


def test_threshold_on_temperature(app: Flask, http: FlaskClient, api: ApiCalls) -> None:
    api.create_site(5, coordinate={"lat": LA[0], "lng": LA[1]})
    add_rule(http, kind="threshold", metric="temp_c", op=">", value=70)
    now = utcnow().replace(microsecond=0)
    api.post_readings(5, readings(now - timedelta(minutes=20), now - timedelta(minutes=10), temp=80.0))
    evaluate(app)
    evaluate(app)
    opened = alerts(http)
    assert [(a["kind"], a["values"]["value"]) for a in opened] == [("threshold", 80.0)]
    api.post_readings(5, readings(now - timedelta(minutes=10), now, temp=40.0))
    evaluate(app)
    assert alerts(http) == []


def test_a_site_rule_replaces_the_fleet_default_and_removal_resolves(
    app: Flask, http: FlaskClient, api: ApiCalls
) -> None:
    api.create_site(6, coordinate={"lat": LA[0], "lng": LA[1]})
    api.create_site(7, coordinate={"lat": LA[0], "lng": LA[1]})
    now = utcnow().replace(microsecond=0)
    for site_id in (6, 7):
        api.post_readings(site_id, readings(now - timedelta(hours=2), now - timedelta(hours=1)))
    add_rule(http, kind="offline", id="fleet")
    add_rule(http, kind="offline", id="lenient", site_id=7, minutes=24 * 60)
    evaluate(app)
    assert [(a["site_id"], a["rule_id"]) for a in alerts(http)] == [(6, "fleet")]
    assert http.delete("/api/alerts/rules/fleet").status_code == 204
    evaluate(app)
    assert alerts(http) == []
    assert [a["resolution"] for a in alerts(http, state="resolved")] == ["rule removed or disabled"]


def test_rules_api(http: FlaskClient, api: ApiCalls, store_snapshot: Any) -> None:
    api.create_site(8)
    rule = add_rule(http, kind="threshold", metric="temp_c", op=">=", value=65.5, site_id=8, id="hot")
    assert rule["description"] == "temp_c >= 65.5"
    before = store_snapshot()
    api.error(http.post("/api/alerts/rules", json={"kind": "threshold", "metric": "temp_c"}), 400)
    api.error(http.post("/api/alerts/rules", json={"kind": "sunspots"}), 400)
    api.error(http.post("/api/alerts/rules", json={"kind": "offline", "minutes": -1}), 400)
    api.error(http.post("/api/alerts/rules", json={"kind": "offline", "site_id": 999}), 404)
    api.error(http.post("/api/alerts/rules", json={"kind": "offline", "id": "hot"}), 409)
    api.error(http.put("/api/alerts/rules/nope", json={"kind": "offline"}), 404)
    api.error(http.get("/api/alerts/rules/NOT%20AN%20ID"), 404)
    api.error(http.get("/api/alerts", query_string={"state": "sideways"}), 400)
    api.error(http.get("/api/alerts/site/999"), 404)
    assert store_snapshot() == before
    replaced = http.put("/api/alerts/rules/hot", json={"kind": "offline", "minutes": 30})
    assert replaced.status_code == 200 and replaced.get_json()["kind"] == "offline"
    assert [r["id"] for r in http.get("/api/alerts/rules").get_json()["rules"]] == ["hot"]
    assert http.delete("/api/alerts/rules/hot").status_code == 204
    api.error(http.get("/api/alerts/rules/hot"), 404)


def test_pages_of_alerts(app: Flask, http: FlaskClient, api: ApiCalls) -> None:
    now = utcnow().replace(microsecond=0)
    for site_id in (21, 22, 23):
        api.create_site(site_id)
        api.post_readings(site_id, readings(now - timedelta(hours=2), now - timedelta(hours=1)))
    add_rule(http, kind="offline", minutes=30)
    evaluate(app)
    first = http.get("/api/alerts", query_string={"limit": 2}).get_json()
    assert len(first["alerts"]) == 2 and first["next_cursor"] == 2
    second = http.get("/api/alerts", query_string={"limit": 2, "cursor": 2}).get_json()
    assert len(second["alerts"]) == 1 and second["next_cursor"] is None
    seen = {a["site_id"] for a in first["alerts"] + second["alerts"]}
    assert seen == {21, 22, 23}
    assert from_ms(to_ms(now)) == now


# -- the dashboard (a browser test: tests/test_dashboard.py's Chromium) ---------------------------------
@pytest.fixture
def alerting_url(backend_server: Any, client: Any) -> Any:
    """A live server on the sample data with the demo's silent site (5) and an evaluation done."""
    from redisolar.app import create_app
    from redisolar.sample_data import load_plan, plan_sample_data, with_quiet_site
    from tests.test_dashboard import REFRESH_MS, _serve

    server = backend_server.server
    # EVENTS_MAX_STREAMS: a stream-slot table of its own (the slots are per process and limit; the
    # streams of earlier pages or tests can hold the default table's two for minutes: 503s, console errors)
    config = {"TESTING": True, "REDIS_URL": f"{server.url}/0", "DASHBOARD_REFRESH_MS": REFRESH_MS}
    app = create_app("test", {**config, "EVENTS_MAX_STREAMS": 61})
    services = get_services(app)
    load_plan(services, with_quiet_site(plan_sample_data()))
    assert service.rules(services).ensure_defaults() == 2
    evaluate(app)
    yield from _serve(app)
    services.redis.close()


@pytest.mark.core
@pytest.mark.parametrize("backend_server", ["core"], indirect=True)
def test_the_dashboard_shows_open_alerts_and_a_sites_history(browser: Any, alerting_url: str) -> None:  # noqa: F811
    from tests.test_dashboard import Page

    tab = Page(browser, alerting_url, viewport={"width": 1280, "height": 900})
    page = tab.page
    page.goto(f"{alerting_url}/dashboard")
    page.wait_for_selector("#open-alerts tr.alert-open")
    rows = page.eval_on_selector_all("#open-alerts tbody tr", "rows => rows.map(r => r.textContent)")
    assert len(rows) == 1 and "Site 5" in rows[0] and "offline" in rows[0]
    page.wait_for_selector('#map a.marker.alerting[data-site-id="5"]')
    assert page.locator("#map a.marker.alerting").count() == 1
    page.goto(f"{alerting_url}/sites/5")
    page.wait_for_selector("#site-alerts tr.alert-open")
    assert "offline" in page.locator("#site-alerts").inner_text()
    page.goto(f"{alerting_url}/sites/4")
    page.wait_for_selector('#site-alerts p.empty:text-is("No alerts.")')  # (the page starts "Loading…")
    assert page.locator("#site-alerts").inner_text() == "No alerts."
    assert tab.errors == []
    tab.context.close()


# -- who may, the CLI, the metrics --------------------------------------------------------------------
def test_rules_need_an_admin_key_and_alerts_a_read_key(
    app_factory: Any, backend_server: Any, client: Any
) -> None:
    app = app_factory(backend_server.server, TIMESERIES_BACKEND=backend_server.name, AUTH_MODE="required")
    services = get_services(app)
    keys = {
        scope: services.create_api_key(scope, all_sites=scope == "write")[1]
        for scope in ("read", "write", "admin")
    }
    http = app.test_client()
    rule = {"kind": "offline", "minutes": 30}
    for scope in ("read", "write"):
        headers = {"Authorization": f"Bearer {keys[scope]}"}
        assert http.post("/api/alerts/rules", json=rule, headers=headers).status_code == 403
        assert http.get("/api/alerts/rules", headers=headers).status_code == 403
        assert http.post("/api/alerts/evaluate", headers=headers).status_code == 403
    assert http.get("/api/alerts", headers={"Authorization": f"Bearer {keys['read']}"}).status_code == 200
    assert http.get("/api/alerts").status_code == 401
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    assert http.post("/api/alerts/rules", json=rule, headers=admin).status_code == 201
    passed = http.post("/api/alerts/evaluate", headers=admin).get_json()
    assert passed["ran"] is True and passed["opened"] == 0


def test_the_cli_manages_rules_and_lists_alerts(
    backend_server: Any, client: Any, app: Flask, api: ApiCalls
) -> None:
    from click.testing import CliRunner

    from redisolar.cli import main

    env = {**backend_server.env(), "REDISOLAR_KEY_PREFIX": "ru102py-app:"}

    def run(*args: str) -> Any:
        return CliRunner().invoke(main, ["alerts", *args], env=env, catch_exceptions=False)

    now = utcnow().replace(microsecond=0)
    api.create_site(31)
    api.post_readings(31, readings(now - timedelta(hours=2), now - timedelta(hours=1)))
    added = run("rules", "add", "--kind", "offline", "--minutes", "30", "--id", "quiet")
    assert added.exit_code == 0 and "Added quiet: no reading for 30 min" in added.output, added.output
    bad = run("rules", "add", "--kind", "threshold", "--metric", "temp_c")
    assert bad.exit_code == 1 and "Invalid alert rule" in bad.output
    assert "quiet: offline at every site" in run("rules", "list").output
    assert "1 opened" in run("evaluate").output
    listed = run("list", "--json").output.strip().splitlines()
    assert [json.loads(line)["site_id"] for line in listed] == [31]
    assert run("rules", "delete", "quiet").exit_code == 0
    assert run("rules", "delete", "quiet").exit_code == 1


def test_a_pass_sets_the_open_alerts_gauge(app: Flask, http: FlaskClient, api: ApiCalls) -> None:
    from prometheus_client import REGISTRY

    from redisolar.alerts.background import with_evaluator

    now = utcnow().replace(microsecond=0)
    api.create_site(41)
    api.post_readings(41, readings(now - timedelta(hours=2), now - timedelta(hours=1)))
    add_rule(http, kind="offline", minutes=30)
    assert with_evaluator(app, None) is not None  # (not started: the test runs the pass itself)
    before = REGISTRY.get_sample_value("redisolar_alert_evaluations_total", {"outcome": "done"}) or 0
    evaluate(app)
    assert REGISTRY.get_sample_value("redisolar_alerts_open", {"kind": "offline"}) == 1
    assert REGISTRY.get_sample_value("redisolar_alerts_open", {"kind": "threshold"}) == 0
    assert REGISTRY.get_sample_value("redisolar_alert_evaluations_total", {"outcome": "done"}) == before + 1


def test_deleting_a_site_forgets_its_alerts(
    app: Flask, http: FlaskClient, api: ApiCalls, raw_client: Any
) -> None:
    now = utcnow().replace(microsecond=0)
    api.create_site(51)
    api.post_readings(51, readings(now - timedelta(hours=2), now - timedelta(hours=1)))
    add_rule(http, kind="offline", minutes=30)
    evaluate(app)
    assert [a["site_id"] for a in alerts(http)] == [51]
    assert http.delete("/api/sites/51").status_code == 204
    evaluate(app)
    assert alerts(http) == []
    keys = get_services(app).keys
    assert not raw_client.exists(
        keys.site_alerts_key(51), keys.site_open_alerts_key(51), keys.site_alert_history_key(51)
    )
    api.create_site(51)  # the same id again starts without history
    assert http.get("/api/alerts/site/51").get_json()["alerts"] == []

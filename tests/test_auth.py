"""The trust boundary in one process: every route × every kind of credential × AUTH_MODE, the
``auto`` mode's local-only rule, cross-site refusals, rate limits and their header fields, and the
keys themselves (API, storage without secrets, last use). Two server processes: tests/test_auth_processes.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from redisolar.app import get_services
from redisolar.auth.policy import Need
from redisolar.models.site import Coordinate, MeterReading, Site
from redisolar.services import Services
from redisolar.timeutil import utcnow

if TYPE_CHECKING:
    from conftest import BackendServer

AUTH_PREFIXES = (b"ru102py-app:apikey", b"ru102py-app:rl:")
"""Keys the checks themselves write (last use, rate budgets): the rest must not change on a refusal."""
REMOTE = {"REMOTE_ADDR": "203.0.113.7"}


@dataclass(frozen=True)
class Route:
    """One operation, its body, what it needs and its success status."""

    name: str
    method: str
    path: str
    need: Need
    ok: int
    body: Any = None


def _site(site_id: int, **changes: Any) -> dict[str, Any]:
    site = {
        "id": site_id,
        "capacity": 4.5,
        "panels": 3,
        "address": "1 Sun Road",
        "city": "Oakland",
        "state": "CA",
        "postal_code": "94577",
        "coordinate": {"lat": 37.7, "lng": -122.2},
    }
    return {**site, **changes}


def _reading(minutes_ago: int) -> dict[str, Any]:
    when = (utcnow() - timedelta(minutes=minutes_ago)).isoformat()
    return {"timestamp": when, "wh_generated": 120.0, "wh_used": 30.0, "temp_c": 21.0}


ROUTES = [
    Route("list sites", "GET", "/api/sites/", Need.READ, 200),
    Route("one site", "GET", "/api/sites/1", Need.READ, 200),
    Route("search", "GET", "/api/sites/search?state=CA", Need.READ, 200),
    Route("stats", "GET", "/api/sites/stats", Need.READ, 200),
    Route("create site", "POST", "/api/sites/", Need.ADMIN, 201, _site(3)),
    Route("update site", "PUT", "/api/sites/1", Need.ADMIN, 200, _site(1, capacity=5.0)),
    Route("delete site", "DELETE", "/api/sites/2", Need.ADMIN, 204),
    Route("post reading", "POST", "/api/analytics/readings/1", Need.WRITE_SITE, 201, _reading(1)),
    Route("post batch", "POST", "/api/analytics/readings/1/batch", Need.WRITE_SITE, 201, [_reading(2)]),
    Route("latest", "GET", "/api/analytics/readings/1/latest", Need.READ, 200),
    Route("series", "GET", "/api/analytics/readings/1/wh_generated", Need.READ, 200),
    Route("analytics", "GET", "/api/analytics/analytics/1", Need.READ, 200),
    Route("leaderboard", "GET", "/api/analytics/leaderboards/generation", Need.READ, 200),
    Route("position", "GET", "/api/analytics/leaderboards/capacity/site/1", Need.READ, 200),
    Route("reconcile", "POST", "/api/analytics/leaderboards/update", Need.ADMIN, 200),
    Route("summary", "GET", "/api/analytics/summary", Need.READ, 200),
    Route("list keys", "GET", "/api/keys/", Need.ADMIN, 200),
    Route("one key", "GET", "/api/keys/{victim}", Need.ADMIN, 200),
    Route("create key", "POST", "/api/keys/", Need.ADMIN, 201, {"scope": "read", "name": "new"}),
    Route("revoke key", "DELETE", "/api/keys/{victim}", Need.ADMIN, 204),
]
CREDENTIALS = ("none", "malformed", "unknown", "revoked", "expired", "read", "write-1", "write-2", "admin")
INVALID = ("malformed", "unknown", "revoked", "expired")


def expected_status(mode: str, credential: str, route: Route) -> int:
    """The documented answer (docs/security.md) for ``credential`` on ``route`` under ``mode``."""
    if mode == "off":
        return route.ok
    if credential in INVALID:
        return 401
    open_reads = mode != "required"
    if credential == "none":
        return route.ok if route.need is Need.READ and open_reads else 401
    allowed = {
        "admin": True,
        "read": route.need is Need.READ,
        "write-1": route.need is Need.WRITE_SITE or (route.need is Need.READ and open_reads),
        "write-2": route.need is Need.READ and open_reads,
    }[credential]
    return route.ok if allowed else 403


@dataclass
class World:
    """A store with two sites, readings of site 1, and a key of every kind."""

    secrets: dict[str, str | None]
    victim: str

    def headers(self, credential: str, style: str = "bearer") -> dict[str, str]:
        secret = self.secrets[credential]
        if secret is None:
            return {}
        return {"Authorization": f"Bearer {secret}"} if style == "bearer" else {"X-API-Key": secret}


def build_world(services: Services) -> World:
    """Flush the store and fill it (sites 1 and 2, readings of site 1, keys)."""
    services.redis.flushall()
    for site_id in (1, 2):
        services.create_site(
            Site(site_id, 4.5, 3, "1 Sun Road", "Oakland", "CA", "94577", Coordinate(37.7, -122.2))
        )
    now = utcnow()
    services.timeseries.add_readings_batch(
        [MeterReading(1, now - timedelta(minutes=m), 100.0, 20.0, 20.0) for m in (5, 10, 15)]
    )
    secret: dict[str, str | None] = {"none": None, "malformed": "not-a-key"}
    secret["unknown"] = "rsk_0123456789ab_" + "A" * 43
    for name, scope, sites in (("read", "read", ()), ("write-1", "write", (1,)), ("write-2", "write", (2,))):
        secret[name] = services.create_api_key(scope, sites=sites)[1]
    secret["admin"] = services.create_api_key("admin")[1]
    revoked, secret["revoked"] = services.create_api_key("admin")
    services.revoke_api_key(revoked.id)
    secret["expired"] = services.create_api_key("admin", expires_days=1e-9)[1]
    victim, _ = services.create_api_key("read", name="victim")
    return World(secret, victim.id)


def call(http: FlaskClient, route: Route, world: World, headers: dict[str, str], **kwargs: Any) -> Any:
    path = route.path.format(victim=world.victim)
    return http.open(path, method=route.method, json=route.body, headers=headers, **kwargs)


def data_snapshot(raw: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key but the ones the checks write, with its DUMP."""
    keys = sorted(k for k in raw.scan_iter(count=1000) if not k.startswith(AUTH_PREFIXES))
    return {key: raw.dump(key) for key in keys}


@pytest.fixture
def make_app(
    app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis
) -> Callable[..., Flask]:
    def make(**config: Any) -> Flask:
        return app_factory(backend_server.server, TIMESERIES_BACKEND=backend_server.name, **config)

    return make


@pytest.fixture
def raw(backend_server: BackendServer) -> Iterator[redis.Redis]:
    server = backend_server.server
    connection = redis.Redis(host=server.host, port=server.port, decode_responses=False)
    yield connection
    connection.close()


# -- the matrix --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["required", "writes", "off"])
@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_every_route_answers_every_credential_as_documented(
    make_app: Callable[..., Flask], raw: redis.Redis, mode: str, route: Route
) -> None:
    app = make_app(AUTH_MODE=mode)
    services = get_services(app)
    http = app.test_client()
    world = build_world(services)
    for credential in CREDENTIALS:
        expected = expected_status(mode, credential, route)
        if expected < 400 and route.method != "GET":
            world = build_world(services)  # a successful write changes the store: start afresh
        before = data_snapshot(raw)
        style = "bearer" if CREDENTIALS.index(credential) % 2 else "x-api-key"
        response = call(http, route, world, world.headers(credential, style), environ_base=REMOTE)
        assert response.status_code == expected, (credential, response.get_data(as_text=True))
        if expected >= 400:
            body = json.loads(response.get_data(as_text=True))
            assert set(body) >= {"error", "details"} and body["error"]
            assert data_snapshot(raw) == before, f"{credential}: a refused request changed the store"
        if expected == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("mode", ["required", "writes"])
def test_refusals_do_not_say_whether_a_site_exists(make_app: Callable[..., Flask], mode: str) -> None:
    app = make_app(AUTH_MODE=mode)
    world = build_world(get_services(app))
    http = app.test_client()
    for credential in ("none", "unknown", "write-1"):
        answers = []
        for site_id in (2, 999_999):  # site 2 exists, 999999 does not
            for path in (f"/api/analytics/readings/{site_id}", f"/api/sites/{site_id}"):
                method = "POST" if "readings" in path else "DELETE"
                body = _reading(1) if method == "POST" else None
                response = http.open(path, method=method, json=body, headers=world.headers(credential))
                answers.append((response.status_code, response.get_json()))
        assert answers[0] == answers[2] and answers[1] == answers[3], (credential, answers)
        assert all(status in (401, 403) for status, _ in answers)


def test_expired_keys_say_so_and_work_until_then(make_app: Callable[..., Flask]) -> None:
    app = make_app(AUTH_MODE="required")
    world = build_world(get_services(app))
    http = app.test_client()
    response = http.get("/api/analytics/summary", headers=world.headers("expired"))
    assert response.status_code == 401 and "expired" in response.get_json()["error"]
    _, fresh = get_services(app).create_api_key("read", expires_days=1)
    assert http.get("/api/analytics/summary", headers={"X-API-Key": fresh}).status_code == 200


# -- AUTH_MODE=auto ----------------------------------------------------------------------------------
def test_auto_serves_this_machine_without_a_key_while_no_key_exists(make_app: Callable[..., Flask]) -> None:
    app = make_app()  # AUTH_MODE defaults to auto
    http = app.test_client()
    assert http.post("/api/sites/", json=_site(1)).status_code == 201
    assert http.post("/api/analytics/readings/1", json=_reading(1)).status_code == 201
    assert http.get("/api/analytics/summary").status_code == 200
    response = http.get("/api/analytics/summary", environ_base=REMOTE)
    assert response.status_code == 401
    assert "redisolar keys create --scope admin" in response.get_json()["error"]


@pytest.mark.parametrize(
    ("headers", "environ"),
    [
        ({"X-Forwarded-For": "198.51.100.4"}, {}),  # a reverse proxy on this machine
        ({"Forwarded": "for=198.51.100.4"}, {}),
        ({"Host": "rebound.example.com"}, {}),  # DNS rebinding: a page's name pointed at 127.0.0.1
        ({}, {"REMOTE_ADDR": "10.1.2.3"}),
    ],
)
def test_auto_does_not_take_proxied_or_rebound_requests_for_local_ones(
    make_app: Callable[..., Flask], headers: dict[str, str], environ: dict[str, str]
) -> None:
    http = make_app().test_client()
    response = http.get("/api/analytics/summary", headers=headers, environ_base=environ)
    assert response.status_code == 401


def test_auto_behaves_as_writes_once_a_key_exists(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    http = app.test_client()
    response = http.post("/api/keys/", json={"scope": "admin", "name": "first"})
    assert response.status_code == 201
    admin = response.get_json()["key"]
    assert http.get("/api/analytics/summary").status_code == 200
    assert http.get("/api/analytics/summary", environ_base=REMOTE).status_code == 200
    assert http.post("/api/sites/", json=_site(1)).status_code == 401
    assert http.post("/api/sites/", json=_site(1), headers={"X-API-Key": admin}).status_code == 201


def test_trusted_proxies_use_the_forwarded_address(make_app: Callable[..., Flask]) -> None:
    http = make_app(TRUSTED_PROXIES=1).test_client()
    assert http.get("/api/analytics/summary", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200
    assert http.get("/api/analytics/summary", headers={"X-Forwarded-For": "198.51.100.4"}).status_code == 401


# -- cross-site requests -------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["auto", "off"])
def test_a_cross_site_form_cannot_change_data(
    make_app: Callable[..., Flask], raw: redis.Redis, mode: str
) -> None:
    app = make_app(AUTH_MODE=mode)
    services = get_services(app)
    build_world(services)
    for key in services.api_keys.find_all():  # auto: no key yet, so this machine needs none
        services.api_keys.revoke(key.id)
    http = app.test_client()
    path = "/api/analytics/leaderboards/update"
    before = data_snapshot(raw)
    for content_type in ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain"):
        assert http.post(path, data="a=1", content_type=content_type).status_code == 415
    assert http.delete("/api/sites/1", headers={"Origin": "https://evil.example"}).status_code == 403
    assert http.delete("/api/sites/1", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert data_snapshot(raw) == before
    assert http.post(path).status_code == 200  # curl -X POST, as the seed's README does
    assert http.post(path, headers={"Origin": "http://localhost"}).status_code == 200


# -- rate limits -----------------------------------------------------------------------------------------
def test_a_budget_counts_down_then_answers_429_with_its_fields(make_app: Callable[..., Flask]) -> None:
    app = make_app(AUTH_MODE="required", RATE_LIMIT_READS="3/minute", RATE_LIMIT_WRITES="600/minute")
    world = build_world(get_services(app))
    http = app.test_client()
    headers = world.headers("admin")
    remaining = []
    for _ in range(3):
        response = http.get("/api/analytics/summary", headers=headers)
        assert response.status_code == 200
        assert response.headers["RateLimit-Policy"] == '"reads";q=3;w=60'
        remaining.append(response.headers["RateLimit"])
    assert remaining == ['"reads";r=2;t=20', '"reads";r=1;t=40', '"reads";r=0;t=60']
    refused = http.get("/api/analytics/summary", headers=headers)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "20"
    assert refused.headers["RateLimit"] == '"reads";r=0;t=20'
    assert "reads" in refused.get_json()["error"]
    written = http.post("/api/analytics/readings/1", json=_reading(1), headers=headers)
    assert written.status_code == 201, "writes have their own budget"
    assert written.headers["RateLimit"].startswith('"writes";r=599;')
    other = http.get("/api/analytics/summary", headers=world.headers("read"))
    assert other.status_code == 200, "each key has its own budget"
    anonymous = make_app(AUTH_MODE="writes", RATE_LIMIT_READS="3/minute").test_client()
    assert anonymous.get("/api/analytics/summary").status_code == 200, "and each address"


def test_a_budget_refills(make_app: Callable[..., Flask]) -> None:
    app = make_app(AUTH_MODE="writes", RATE_LIMIT_READS="10/second;burst=1")
    http = app.test_client()
    assert http.get("/api/analytics/summary").status_code == 200
    refused = http.get("/api/analytics/summary")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    time.sleep(0.15)
    assert http.get("/api/analytics/summary").status_code == 200


def test_public_routes_are_not_limited(make_app: Callable[..., Flask]) -> None:
    http = make_app(AUTH_MODE="required", RATE_LIMIT_READS="1/minute").test_client()
    for _ in range(3):
        response = http.get("/health")
        assert response.status_code in (200, 503) and "RateLimit" not in response.headers
        assert http.get("/api/openapi.json").status_code == 200


@pytest.mark.parametrize("setting", ["fast", "600/fortnight", "0/minute", "5/minute;burst=0"])
def test_a_bad_rate_limit_is_a_configuration_error(make_app: Callable[..., Flask], setting: str) -> None:
    with pytest.raises(ValueError, match="RATE_LIMIT_READS"):
        make_app(RATE_LIMIT_READS=setting)


# -- keys ---------------------------------------------------------------------------------------------------
def test_keys_are_created_listed_and_revoked_through_the_api(make_app: Callable[..., Flask]) -> None:
    app = make_app(AUTH_MODE="required")
    world = build_world(get_services(app))
    http = app.test_client()
    admin = world.headers("admin")
    response = http.post(
        "/api/keys/", json={"scope": "write", "sites": [1, 2], "name": "gateway"}, headers=admin
    )
    assert response.status_code == 201
    created = response.get_json()
    assert created["key"].startswith("rsk_") and created["sites"] == [1, 2] and created["last_used"] is None
    gateway = {"X-API-Key": created["key"]}
    assert http.post("/api/analytics/readings/2", json=_reading(1), headers=gateway).status_code == 201
    listed = http.get("/api/keys/", headers=admin).get_json()["keys"]
    mine = next(k for k in listed if k["id"] == created["id"])
    assert mine["last_used"] is not None and "key" not in mine
    assert all("key" not in k and "hash" not in k for k in listed)
    assert http.delete(f"/api/keys/{created['id']}", headers=admin).status_code == 204
    assert http.post("/api/analytics/readings/2", json=_reading(1), headers=gateway).status_code == 401
    assert http.get(f"/api/keys/{created['id']}", headers=admin).status_code == 404
    assert http.delete(f"/api/keys/{created['id']}", headers=admin).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"scope": "write"},  # a write key needs sites
        {"scope": "read", "sites": [1]},  # only write keys are bound to sites
        {"scope": "owner"},
        {"scope": "admin", "expires_days": 0},
        {"scope": "admin", "expires_days": -1},
        {"scope": "admin", "name": "x" * 101},
        {"scope": "admin", "name": "bad\nname"},
        {"scope": "write", "sites": [0]},
        {"scope": "write", "sites": ["1"]},
    ],
)
def test_bad_key_requests_are_400s(
    make_app: Callable[..., Flask], raw: redis.Redis, body: dict[str, Any]
) -> None:
    app = make_app(AUTH_MODE="required")
    world = build_world(get_services(app))
    before = data_snapshot(raw)
    response = app.test_client().post("/api/keys/", json=body, headers=world.headers("admin"))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]
    assert data_snapshot(raw) == before


def test_no_secret_is_stored(make_app: Callable[..., Flask], raw: redis.Redis) -> None:
    app = make_app(AUTH_MODE="required")
    world = build_world(get_services(app))
    http = app.test_client()
    secrets = [s for name, s in world.secrets.items() if s and name not in ("malformed", "unknown")]
    for _ in range(3):
        response = http.post("/api/keys/", json={"scope": "read"}, headers=world.headers("admin"))
        secrets.append(response.get_json()["key"])
    for secret in secrets:  # use each once, so last_used and budgets are written too
        http.get("/api/analytics/summary", headers={"X-API-Key": secret})
    stored = b"".join(key + (raw.dump(key) or b"") for key in raw.scan_iter(count=1000))
    for secret in secrets:
        random_part = secret.split("_", 2)[2].encode()
        assert random_part not in stored and secret.encode() not in stored


# -- what the checks cost ---------------------------------------------------------------------------------
def round_trips(monkeypatch: pytest.MonkeyPatch, request: Callable[[], Any]) -> int:
    """How many times the app's Redis connections sent something while ``request`` ran (a pipeline or
    a single command is one round trip)."""
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        original(self, command, check_health)

    with monkeypatch.context() as patch:
        patch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
        response = request()
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return len(sent)


@pytest.mark.parametrize(
    ("method", "path", "body", "extra"),
    [  # a site's latest readings and a reading's write learn whether the site exists in their own
        # round trip (the zone read with the data; the write script), so the key check is the one
        # extra trip; the site-position read checks the site in the key check's round trip: none extra
        ("GET", "/api/analytics/readings/1/latest", None, 1),
        ("GET", "/api/analytics/leaderboards/capacity/site/1", None, 0),
        ("GET", "/api/analytics/summary", None, 1),
        ("POST", "/api/analytics/readings/1", "reading", 1),
        ("GET", "/api/sites/1", None, 1),
    ],
)
@pytest.mark.standalone_only  # counts one connection's round trips; a cluster sends each node's share at once
def test_keys_and_limits_cost_at_most_one_round_trip(
    make_app: Callable[..., Flask],
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    body: Any,
    extra: int,
) -> None:
    open_app = make_app(AUTH_MODE="off")
    keyed_app = make_app(
        AUTH_MODE="required", RATE_LIMIT_READS="1000/second", RATE_LIMIT_WRITES="1000/second"
    )
    auto_app = make_app(AUTH_MODE="auto", RATE_LIMIT_READS="1000/second", RATE_LIMIT_WRITES="1000/second")
    services = get_services(keyed_app)
    build_world(services)
    for key in services.api_keys.find_all():  # auto with no key: this machine's requests need none
        services.api_keys.revoke(key.id)
    counts = {"anonymous": measure(auto_app, {}, method, path, body, monkeypatch)}
    counts["off"] = measure(open_app, {}, method, path, body, monkeypatch)
    admin = {"X-API-Key": services.create_api_key("admin")[1]}
    counts["keys"] = measure(keyed_app, admin, method, path, body, monkeypatch)
    assert counts["keys"] == counts["off"] + extra, counts
    assert counts["anonymous"] == counts["off"] + extra, counts


def measure(
    app: Flask, headers: dict[str, str], method: str, path: str, body: Any, monkeypatch: pytest.MonkeyPatch
) -> int:
    """Round trips of one request (after a first one: backend detection, script loading)."""
    http = app.test_client()
    minutes = iter(range(100, 0, -1))

    def send() -> Any:
        payload = _reading(next(minutes)) if body else None
        return http.open(path, method=method, json=payload, headers=headers)

    send()
    return round_trips(monkeypatch, send)


def test_the_check_survives_a_script_flush(make_app: Callable[..., Flask]) -> None:
    app = make_app(AUTH_MODE="required", RATE_LIMIT_READS="100/minute")
    world = build_world(get_services(app))
    http = app.test_client()
    assert http.get("/api/analytics/summary", headers=world.headers("read")).status_code == 200
    get_services(app).redis.script_flush()
    response = http.get("/api/analytics/summary", headers=world.headers("read"))
    assert response.status_code == 200 and response.headers["RateLimit"].startswith('"reads";r=98;')


def test_options_lists_the_methods_without_a_key(make_app: Callable[..., Flask]) -> None:
    http = make_app(AUTH_MODE="required").test_client()
    response = http.options("/api/keys/0123456789ab")
    assert response.status_code == 200
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "DELETE", "OPTIONS"}


def test_under_required_health_tells_callers_without_a_read_key_only_the_status(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(AUTH_MODE="required")
    world = build_world(get_services(app))
    http = app.test_client()
    assert http.get("/health").get_json() == {"status": "healthy"}
    assert http.get("/health", headers=world.headers("write-1")).get_json() == {"status": "healthy"}
    assert http.get("/health", headers=world.headers("revoked")).get_json() == {"status": "healthy"}
    detailed = http.get("/health", headers=world.headers("read")).get_json()
    assert detailed["status"] == "healthy" and detailed["redis"]["connected"] is True
    assert http.get("/").get_json()["redis_info"] is None
    assert http.get("/", headers=world.headers("admin")).get_json()["redis_info"]
    open_health = make_app(AUTH_MODE="writes").test_client().get("/health").get_json()
    assert "redis" in open_health and "background_services" in open_health


def test_the_check_and_its_site_read_survive_a_script_flush(make_app: Callable[..., Flask]) -> None:
    app = make_app(AUTH_MODE="required", RATE_LIMIT_READS="100/minute")
    world = build_world(get_services(app))
    http = app.test_client()
    get_services(app).redis.script_flush()
    response = http.get("/api/analytics/readings/1/latest", headers=world.headers("read"))
    assert response.status_code == 200 and response.headers["RateLimit"].startswith('"reads";r=99;')
    missing = http.get("/api/analytics/readings/999/latest", headers=world.headers("read"))
    assert missing.status_code == 404


def test_keys_checked_across_a_redis_outage(
    make_app: Callable[..., Flask], backend_server: BackendServer
) -> None:
    app = make_app(AUTH_MODE="required", RATE_LIMIT_READS="100/minute")
    world = build_world(get_services(app))
    http = app.test_client()
    path = "/api/analytics/readings/1/latest"
    assert http.get(path, headers=world.headers("read")).status_code == 200
    backend_server.server.stop()
    try:
        response = http.get(path, headers=world.headers("read"))
        assert response.status_code == 503 and response.headers["Retry-After"]
    finally:
        backend_server.server.start()
    world = build_world(get_services(app))  # the server kept nothing: fill it again
    assert http.get(path, headers=world.headers("read")).status_code == 200

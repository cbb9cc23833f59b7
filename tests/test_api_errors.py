"""The store temporarily unavailable (a standalone server down, a cluster failing over): 503 with
``Retry-After`` and a body without internals; programming errors of the cluster client stay 500s."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import exceptions as redis_errors

from redisolar.api.errors import is_store_unavailable
from redisolar.embedded import RedisServer

pytestmark = pytest.mark.usefixtures("app_env")

ADDRESS = "10.0.0.7:7001"
"""A node's address, as redis-py puts it in its messages: it must not reach the client."""

UNAVAILABLE = [
    redis_errors.ClusterDownError("CLUSTERDOWN The cluster is down"),
    redis_errors.MasterDownError("MASTERDOWN Link with MASTER is down"),
    redis_errors.ClusterError("TTL exhausted."),
    redis_errors.MovedError(f"3999 {ADDRESS}"),
    redis_errors.AskError(f"3999 {ADDRESS}"),
    redis_errors.TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
    redis_errors.SlotNotCoveredError(f'Slot "3999" not covered by the cluster. {ADDRESS}'),
    redis_errors.RedisClusterException(
        f"Redis Cluster cannot be connected. Please provide at least one reachable node: {ADDRESS}"
    ),
    redis_errors.RedisClusterException("All slots are not covered after query all startup_nodes. 10922 of"),
    redis_errors.ConnectionError(f"Error 111 connecting to {ADDRESS}. Connection refused."),
    redis_errors.TimeoutError("Timeout reading from socket"),
]
NOT_UNAVAILABLE = [
    redis_errors.RedisClusterException("method eval() is not implemented"),
    redis_errors.CrossSlotTransactionError("Cannot watch or send commands on different slots"),
    redis_errors.ResponseError("CROSSSLOT Keys in request don't hash to the same slot"),
    redis_errors.AuthenticationError("invalid username-password pair"),  # misconfigured: retrying won't help
]


def _raising(app: Flask, error: Exception) -> FlaskClient:
    def fail() -> str:
        raise error

    app.add_url_rule("/fail", "fail", fail)
    return app.test_client()


@pytest.fixture
def bare_app(app_factory: Callable[..., Flask], plain_redis: RedisServer) -> Flask:
    """An app on the session's plain server (its request hooks need one); the view raises."""
    return app_factory(plain_redis, RETRY_AFTER_SECONDS=2)


@pytest.mark.parametrize("error", UNAVAILABLE, ids=lambda e: type(e).__name__)
def test_cluster_trouble_is_503_with_retry_after(bare_app: Flask, error: Exception) -> None:
    response = _raising(bare_app, error).get("/fail")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert response.get_json() == {"error": "Redis is unavailable; try again shortly", "details": None}
    assert is_store_unavailable(error)


@pytest.mark.parametrize("error", NOT_UNAVAILABLE, ids=lambda e: type(e).__name__)
def test_cluster_programming_errors_stay_500(bare_app: Flask, error: Exception) -> None:
    response = _raising(bare_app, error).get("/fail")
    assert response.status_code == 500
    assert "Retry-After" not in response.headers
    body = response.get_json()
    assert body["error"] and ADDRESS not in body["error"] and "CROSSSLOT" not in body["error"]
    assert not is_store_unavailable(error)

"""The trust boundary across processes: two ``redisolar serve`` servers (each its own gunicorn
master and worker) on one Redis share one rate budget per key, see a revocation at once, and
``redisolar keys`` manages the keys they check.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
import requests
from test_e2e import Server, answers, free_port, redisolar_command, wait_for

if TYPE_CHECKING:
    from redisolar.embedded import RedisServer

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture
def auth_env(plain_redis: RedisServer) -> dict[str, str]:
    """About processes, not storage: the core backend's server is enough."""
    redis.Redis(host=plain_redis.host, port=plain_redis.port).flushall()
    env = {key: value for key, value in os.environ.items() if not key.startswith("REDISOLAR_")}
    env.update(
        REDISOLAR_REDIS_URL=plain_redis.url,
        REDISOLAR_TIMESERIES="core",
        REDISOLAR_AUTH_MODE="required",
        REDISOLAR_RATE_LIMIT_READS="6/minute",
        REDISOLAR_LEADERBOARD_UPDATE_INTERVAL="0",
    )
    return env


def keys_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [*redisolar_command(), "keys", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def two_servers(auth_env: dict[str, str], tmp_path: Path) -> Iterator[list[str]]:
    servers, bases = [], []
    try:
        for n in range(2):
            port = free_port()
            args = ["serve", "--port", str(port), "--workers", "1", "--threads", "2"]
            servers.append(Server(args, auth_env, tmp_path / f"server{n}"))
            bases.append(f"http://127.0.0.1:{port}")
        for server, base in zip(servers, bases, strict=True):
            wait_for(answers(f"{base}/health"), 60, "/health", server.process)
        yield bases
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.stop(signal.SIGTERM)
            server.close()


def test_two_servers_share_one_budget_and_see_revocations_at_once(
    auth_env: dict[str, str], two_servers: list[str]
) -> None:
    output = keys_cli(auth_env, "create", "--scope", "read", "--name", "dashboard")
    secret = output.strip().splitlines()[-1]
    assert secret.startswith("rsk_") and output.count(secret) == 1
    admin = keys_cli(auth_env, "create", "--scope", "admin").strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {secret}"}

    statuses = []
    for n in range(8):  # alternate between the servers: 6 per minute in all, not 6 each
        response = requests.get(f"{two_servers[n % 2]}/api/analytics/summary", headers=headers, timeout=10)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
    assert statuses == [200] * 6 + [429] * 2

    listed = keys_cli(auth_env, "list")
    assert "dashboard" in listed and "last used" in listed and secret not in listed and admin not in listed
    key_id = secret.split("_")[1]
    revoked = requests.delete(f"{two_servers[0]}/api/keys/{key_id}", headers={"X-API-Key": admin}, timeout=10)
    assert revoked.status_code == 204
    response = requests.get(f"{two_servers[1]}/api/analytics/summary", headers=headers, timeout=10)
    assert response.status_code == 401, "the other server refuses the revoked key at once"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_cli_revokes_keys(auth_env: dict[str, str]) -> None:
    secret = (
        keys_cli(auth_env, "create", "--scope", "write", "--site", "1", "--site", "2")
        .strip()
        .splitlines()[-1]
    )
    key_id = secret.split("_")[1]
    assert "write (1, 2)" in keys_cli(auth_env, "list")
    assert keys_cli(auth_env, "revoke", key_id).strip() == f"Revoked key {key_id}"
    assert key_id not in keys_cli(auth_env, "list")
    done = subprocess.run(
        [*redisolar_command(), "keys", "revoke", key_id],
        env=auth_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "not found" in done.stderr

"""Structured logs and request ids: ``LOG_FORMAT=json`` writes one JSON object a line, the access
line carries the request's route, status, duration and id, ``X-Request-ID`` round-trips (a sane one
is kept, any other replaced) on every response, errors included, and no secret is ever logged."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from flask import Flask
from test_e2e import Server, answers, free_port, wait_for

from redisolar.app import get_services
from redisolar.logs import ACCESS_LOGGER, JsonFormatter, RequestIdFilter

if TYPE_CHECKING:
    from redisolar.embedded import RedisServer, ServerSpec

PASSWORD = "hunter2-redis-pw"
FAKE_KEY = "rsk_0123456789ab_NotARealKeyButShapedLikeOne0123456789abcdefgh"


@pytest.fixture
def core_app(app_factory: Callable[..., Flask], plain_redis: RedisServer) -> Flask:
    app = app_factory(plain_redis, TIMESERIES_BACKEND="core")
    get_services(app).redis.flushdb()
    return app


@pytest.fixture
def json_lines() -> Iterator[StringIO]:
    """Everything logged during the test, as ``LOG_FORMAT=json`` writes it."""
    stream = StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root, access = logging.getLogger(), logging.getLogger(ACCESS_LOGGER)
    levels = root.level, access.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    access.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(levels[0])
    access.setLevel(levels[1])


def parsed(stream: StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def test_the_access_line_is_one_json_object(core_app: Flask, json_lines: StringIO) -> None:
    http = core_app.test_client()
    response = http.get("/api/sites/42?page=2", headers={"X-Request-ID": "trace-42.a:b"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "trace-42.a:b"
    lines = parsed(json_lines)
    access = [line for line in lines if line["logger"] == ACCESS_LOGGER]
    assert len(access) == 1
    line = access[0]
    assert set(line) >= {"time", "level", "logger", "message", "request_id", "method", "route", "status"}
    assert line["request_id"] == "trace-42.a:b"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/api/sites/<site_id:site_id>", 404)
    assert line["path"] == "/api/sites/42" and "page" not in json.dumps(line), "no query string"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$", str(line["time"]))


@pytest.mark.parametrize(
    "given", ["", "x" * 129, "has space", "semi;colon", "ünïcode", "<script>"], ids=lambda g: repr(g[:8])
)
def test_an_insane_request_id_is_replaced(core_app: Flask, given: str) -> None:
    response = core_app.test_client().get("/health", headers={"X-Request-ID": given} if given else {})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_every_response_carries_an_id_errors_included(
    app_factory: Callable[..., Flask], plain_redis: RedisServer
) -> None:
    app = app_factory(plain_redis, TIMESERIES_BACKEND="core", AUTH_MODE="required")
    http = app.test_client()
    answers_ = [
        http.get("/api/sites/"),  # 401: refused by the auth hook
        http.get("/no/such/route"),  # 404: no rule
        http.delete("/health"),  # 405
        http.post("/api/analytics/readings/1", data="x", content_type="text/plain"),  # 401 before 415
        http.get("/health"),
    ]
    ids = [response.headers.get("X-Request-ID") for response in answers_]
    assert [response.status_code for response in answers_] == [401, 404, 405, 401, 200]
    assert all(ids) and len(set(ids)) == len(ids), "a fresh id for each"


def test_log_lines_of_a_request_carry_its_id(core_app: Flask, json_lines: StringIO) -> None:
    http = core_app.test_client()
    http.post("/api/analytics/readings/1", json={"timestamp": "x"}, headers={"X-Request-ID": "req-7"})
    assert {line.get("request_id") for line in parsed(json_lines)} == {"req-7"}


# -- a real server: no secret in anything it writes ------------------------------------------------
@pytest.fixture
def locked_redis(plain_spec: ServerSpec, redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    return redis_server_factory(plain_spec, extra_args=["--requirepass", PASSWORD])


def test_a_json_logging_server_never_logs_a_secret(locked_redis: RedisServer, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("REDISOLAR_")}
    env.update(
        REDISOLAR_REDIS_URL=f"redis://default:{PASSWORD}@127.0.0.1:{locked_redis.port}/0",
        REDISOLAR_TIMESERIES="core",
        REDISOLAR_LOG_FORMAT="json",
        REDISOLAR_LEADERBOARD_UPDATE_INTERVAL="0",
    )
    port = free_port()
    args = ["serve", "--port", str(port), "--workers", "1", "--threads", "2", "--access-log"]
    server = Server([*args, "--log-level", "debug"], env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(answers(f"{base}/health"), 60, "/health", server.process)
        for headers in ({"Authorization": f"Bearer {FAKE_KEY}"}, {"X-API-Key": FAKE_KEY}):
            assert requests.get(f"{base}/api/sites/", headers=headers, timeout=10).status_code == 401
        requests.get(f"{base}/api/sites/?api_key={FAKE_KEY}", timeout=10)
        requests.post(f"{base}/api/keys", json={"scope": "read"}, timeout=10)  # logs a new key's creation
        assert server.stop(signal.SIGTERM) == 0
    finally:
        server.close()
    output = server.stdout_path.read_text() + server.stderr_path.read_text()
    secret_part = FAKE_KEY.split("_", 2)[2]
    assert PASSWORD not in output and secret_part not in output
    lines = [line for line in server.stderr_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    access = [r for r in records if r["logger"] == ACCESS_LOGGER]
    assert len(access) >= 5 and all(r["request_id"] and r["route"] for r in access)

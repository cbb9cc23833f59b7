"""``redisolar serve --server gunicorn``: the webhook deliverer (and the alert evaluator) run in the one
worker that hosts the reconciler, deliver to a local receiver, and stop with the server.

A real gunicorn-served process on a private Redis (the same for both backends: this is about the
server's processes, not storage)."""

from __future__ import annotations

import http.client
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_e2e import free_port
from test_shutdown import (
    STOP_WITHIN,
    WORKERS_STARTED,
    Running,
    _wait_until_serving,
    assert_clean_stop,
    hermetic_env,
    running,
)
from test_webhooks import Receiver

from redisolar.dao.key_manager import KeyManager
from redisolar.embedded import RedisServer, ServerSpec
from redisolar.events import signing
from redisolar.events.deliverer import GROUP
from redisolar.events.stream import publish

WITHIN = 20.0


def post_json(port: int, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def wait_until(check: Callable[[], bool], what: str, output: Callable[[], str]) -> None:
    deadline = time.monotonic() + WITHIN
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {WITHIN} s\n{output()}")


def stop(serve: Running, how: str) -> float:
    """Ctrl-C (SIGINT to the group: stop at once) or SIGTERM to the master (graceful); seconds taken."""
    if how == "ctrl_c":
        return serve.ctrl_c()
    started = time.monotonic()
    serve.proc.send_signal(signal.SIGTERM)
    serve.proc.wait(STOP_WITHIN + 25)
    return time.monotonic() - started


@pytest.mark.parametrize("how", ["ctrl_c", "sigterm"])
def test_gunicorn_runs_one_deliverer_that_delivers_and_stops_with_the_server(
    how: str, plain_spec: ServerSpec, redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = redis_server_factory(plain_spec)
    client = server.client(decode_responses=True)
    keys = KeyManager()
    receiver = Receiver()
    port = free_port()
    env = hermetic_env(REDISOLAR_REDIS_URL=f"{server.url}/0", REDISOLAR_ALERT_EVALUATION_SECONDS="3600")
    args = ["serve", "--port", str(port), "--workers", "2", "--threads", "2", "--server", "gunicorn"]
    try:
        with running(args, env, tmp_path) as serve:
            serve.wait_for(WORKERS_STARTED)
            _wait_until_serving(port)
            serve.wait_for(r"webhook deliverer started in worker (\d+)")
            status, hook = post_json(port, "/api/webhooks", {"url": receiver.url})
            assert status == 201, hook
            event_id = publish(client, keys, "alert.opened", {"site_id": 7, "rule_id": "offline"})
            wait_until(lambda: len(receiver.requests) >= 1, "the delivery", lambda: serve.output)
            [request] = receiver.requests
            header = request["headers"][signing.HEADER]
            assert signing.verify(hook["secret"], header, request["body"], now=time.time())
            assert json.loads(request["body"])["event_id"] == event_id
            consumers = client.xinfo_consumers(keys.events_notify_key(), GROUP)
            assert len(consumers) == 1, consumers  # one deliverer for the server's two workers
            assert serve.output.count("webhook deliverer started in worker") == 1
            assert serve.output.count("alert evaluator started") == 1  # the evaluator: one as well
            seconds = stop(serve, how)
            assert_clean_stop(serve, seconds)
            assert "webhook deliverer stopped in worker" in serve.output
    finally:
        receiver.close()
    pending = client.xpending(keys.events_notify_key(), GROUP)
    assert pending["pending"] == 0  # the event was acknowledged before the stop

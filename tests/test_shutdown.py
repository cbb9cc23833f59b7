"""Ctrl-C on ``redisolar serve`` and ``redisolar demo``: everything stops within 5 seconds, no worker
is killed, no redis-server is left behind, even with kept-alive connections, a client that never
sends, and a request stuck on a paused Redis. SIGTERM lets that request finish, then stops. With
Granian (the default) and gunicorn (``--server gunicorn``)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from test_e2e import free_port, redisolar_command

from redisolar.embedded import RedisServer, ServerSpec

STOP_WITHIN = 5.0
START_WITHIN = 90.0
SERVERS = ["granian", "gunicorn"]
WORKERS_STARTED = r"Booting worker|Started worker"
KILLED = ("SIGKILL", "Killing worker", "Unexpected exit")
"""What gunicorn and Granian log when they kill a worker, or lose one."""


def hermetic_env(**settings: str) -> dict[str, str]:
    """This process's environment without REDISOLAR_* settings, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDISOLAR_")}
    return {**env, **settings}


class Running:
    """A ``redisolar`` command in its own process group, its output collected by a thread."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [*redisolar_command(), *args],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a process group of its own, as a terminal's foreground job
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = START_WITHIN) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output)
            if found:
                return found
            assert self.proc.poll() is None, f"exited early:\n{self.output}"
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not seen within {timeout} s:\n{self.output}")

    def ctrl_c(self) -> float:
        """SIGINT to the whole process group (what a terminal's Ctrl-C does); seconds until exit."""
        started = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(STOP_WITHIN + 25)
        finally:
            self.kill()
        self._reader.join(5)
        return time.monotonic() - started

    def kill(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True


@contextmanager
def running(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[Running]:
    command = Running(args, env, cwd)
    try:
        yield command
    finally:
        command.kill()


def get(connection: http.client.HTTPConnection, path: str) -> int:
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    return response.status


def hold_connections(port: int) -> list[socket.socket | http.client.HTTPConnection]:
    """A kept-alive connection after a few requests, and one that never sends a byte (a browser's
    pre-connection)."""
    kept = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for path in ("/health", "/api/sites/stats", "/api/analytics/summary"):
        assert get(kept, path) == 200
    idle = socket.create_connection(("127.0.0.1", port))
    return [kept, idle]


def close_all(connections: list[socket.socket | http.client.HTTPConnection]) -> None:
    for connection in connections:
        connection.close()


def assert_clean_stop(command: Running, seconds: float) -> None:
    output = command.output
    assert seconds < STOP_WITHIN, f"stopped after {seconds:.1f} s:\n{output}"
    assert not any(word in output for word in KILLED) and "Traceback" not in output, output
    assert not command.group_alive(), "a process of the group is still running"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("server_kind", SERVERS)
def test_ctrl_c_on_serve_stops_at_once_despite_a_request_stuck_on_redis(
    server_kind: str,
    plain_spec: ServerSpec,
    redis_server_factory: Callable[..., RedisServer],
    tmp_path: Path,
) -> None:
    server = redis_server_factory(plain_spec)
    port = free_port()
    env = hermetic_env(REDISOLAR_REDIS_URL=f"{server.url}/0")
    args = ["serve", "--port", str(port), "--workers", "2", "--threads", "4", "--server", server_kind]
    control = server.client()
    with running(args, env, tmp_path) as serve:
        serve.wait_for(WORKERS_STARTED)
        _wait_until_serving(port)
        held = hold_connections(port)
        control.client_pause(30_000, all=False)  # every write waits: a request gets stuck
        try:
            stuck = threading.Thread(target=_quiet_post_site, args=(port,), daemon=True)
            stuck.start()
            time.sleep(0.5)
            seconds = serve.ctrl_c()
        finally:
            control.client_unpause()
        assert_clean_stop(serve, seconds)
    close_all(held)
    print(f"serve ({server_kind}) stopped {seconds:.2f} s after Ctrl-C")


def test_sigterm_on_serve_lets_the_request_in_flight_finish(
    plain_spec: ServerSpec, redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """Granian: SIGTERM to ``serve`` stops accepting, the request stuck on a paused Redis answers once
    the pause ends, and the server stops right after, though kept-alive and silent connections remain."""
    server = redis_server_factory(plain_spec)
    port = free_port()
    env = hermetic_env(REDISOLAR_REDIS_URL=f"{server.url}/0")
    args = ["serve", "--port", str(port), "--workers", "2", "--threads", "2"]
    control = server.client()
    answered: list[int] = []
    with running(args, env, tmp_path) as serve:
        serve.wait_for(WORKERS_STARTED)
        _wait_until_serving(port)
        held = hold_connections(port)
        control.client_pause(2_000, all=False)
        stuck = threading.Thread(target=lambda: answered.append(_post_site(port)), daemon=True)
        stuck.start()
        time.sleep(0.5)
        started = time.monotonic()
        serve.proc.send_signal(signal.SIGTERM)  # to the main process only, as a supervisor does
        serve.proc.wait(STOP_WITHIN + 25)
        seconds = time.monotonic() - started
        stuck.join(10)
        assert_clean_stop(serve, seconds)
    close_all(held)
    assert answered == [201], serve.output
    print(f"serve stopped {seconds:.2f} s after SIGTERM (the request in flight waited 1.5 s of it)")


def test_ctrl_c_on_demo_stops_everything_and_leaves_no_redis(tmp_path: Path) -> None:
    port = free_port()
    args = ["demo", "--port", str(port), "--workers", "2", "--data-dir", str(tmp_path / "redis")]
    with running(args, hermetic_env(), tmp_path) as demo:
        redis_pid = int(demo.wait_for(r"Redis \(\w+, pid (\d+)\)").group(1))
        demo.wait_for(r"is running on")
        _wait_until_serving(port)
        held = hold_connections(port)
        seconds = demo.ctrl_c()
        assert_clean_stop(demo, seconds)
    close_all(held)
    assert not pid_alive(redis_pid), "the embedded redis-server outlived the demo"
    print(f"demo stopped {seconds:.2f} s after Ctrl-C")


def _wait_until_serving(port: int, timeout: float = START_WITHIN) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            if get(connection, "/health") == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.1)
    pytest.fail(f"nothing served on port {port} within {timeout} s")


def _post_site(port: int) -> int:
    site = {"id": 1, "capacity": 4.5, "panels": 3, "address": "1 Main St", "city": "Oakland", "state": "CA",
            "postal_code": "94577"}  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/api/sites/", json.dumps(site), {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _quiet_post_site(port: int) -> None:
    with suppress(OSError, http.client.HTTPException):  # the server went away mid-request: expected
        _post_site(port)

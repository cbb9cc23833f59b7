"""The ``redisolar`` command: ``load`` against private Redis servers, the guards of ``serve`` and ``demo``."""

from __future__ import annotations

import os
import pty
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
from click.testing import CliRunner, Result

from redisolar import store
from redisolar.cli import CliContext, main
from redisolar.config import Config
from redisolar.models.site import MeterReading, MetricType, Site
from redisolar.sample_data import SEED_SITES
from redisolar.services import Services, Settings, build_services
from redisolar.timeutil import utcnow

if TYPE_CHECKING:
    from conftest import BackendServer

OTHER_SITE = Site(42, 9.9, 30, "42 Elsewhere Road", "Somewhere", "NV", "89101", timezone="UTC")


@pytest.fixture
def env(backend_server: BackendServer, client: redis.Redis) -> dict[str, str]:
    """The environment that points the CLI at the test's (flushed) server."""
    return {
        **backend_server.env(),
        "REDISOLAR_KEY_PREFIX": "ru102py-app:",
        "REDISOLAR_RETENTION_DAYS": "30",
    }


@pytest.fixture
def services(env: dict[str, str]) -> Iterator[Services]:
    """Services on the same server and prefix, to look at what the CLI did."""
    config = Config(
        redis_url=env["REDISOLAR_REDIS_URL"],
        redis_key_prefix=env["REDISOLAR_KEY_PREFIX"],
        cluster=env["REDISOLAR_REDIS_CLUSTER"] == "true",
    )
    built = build_services(Settings(redis=config, timeseries_backend=env["REDISOLAR_TIMESERIES"]))
    yield built
    built.redis.close()


def run(args: list[str], env: dict[str, str], stdin: str | None = None) -> Result:
    """Invoke the CLI in-process (stdin is not a terminal under CliRunner)."""
    return CliRunner().invoke(main, args, env=env, input=stdin, catch_exceptions=False)


def add_other_site(services: Services) -> None:
    services.create_site(OTHER_SITE)
    services.timeseries.add_reading(MeterReading(42, utcnow(), 10.0, 5.0, 20.0))


# -- load ------------------------------------------------------------------------------------------------
def test_load_puts_the_seed_sample_data_into_an_empty_store(env: dict[str, str], services: Services) -> None:
    result = run(["load"], env)
    assert result.exit_code == 0, result.output
    assert "Loaded 5 sites and 840 readings" in result.output
    assert "http://localhost:8081/api/analytics/summary" in result.output
    assert services.sites.find_all() == list(SEED_SITES)
    assert [e.site.id for e in services.leaderboards.get_capacity_leaders(10)] == [4, 2, 1, 3, 5]
    assert services.summary()["active_sites_24h"] == 5


def test_load_refuses_to_replace_data_without_yes_on_a_non_interactive_stdin(
    env: dict[str, str], services: Services
) -> None:
    add_other_site(services)
    result = run(["load"], env, stdin="y\n")  # an answer on a pipe is not a confirmation
    assert result.exit_code != 0
    assert "1 sites already exist" in result.output and "--yes" in result.output
    assert services.sites.find_all() == [OTHER_SITE]
    assert services.timeseries.get_latest_readings(42)


def test_load_with_yes_replaces_the_data(env: dict[str, str], services: Services) -> None:
    add_other_site(services)
    result = run(["load", "--yes"], env)
    assert result.exit_code == 0, result.output
    assert "Deleted 1 sites" in result.output
    assert services.sites.find_all() == list(SEED_SITES)
    assert services.timeseries.get_latest_readings(42) == {}
    assert services.leaderboards.get_site_rank(42, "capacity") is None


def test_load_asks_on_a_terminal(env: dict[str, str], services: Services) -> None:
    add_other_site(services)
    assert load_on_a_terminal(env, "n") != 0
    assert services.sites.find_all() == [OTHER_SITE]
    assert load_on_a_terminal(env, "y") == 0
    assert services.sites.find_all() == list(SEED_SITES)


def load_on_a_terminal(env: dict[str, str], answer: str) -> int:
    """Run the real CLI with a pseudo-terminal as stdin and answer its question."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [*redisolar_command(), "load"],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
        os.write(controller, f"{answer}\n".encode())
        output, _ = process.communicate(timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)
    assert b"already exist" in output, output
    return process.returncode


def test_load_a_synthetic_fleet(env: dict[str, str], services: Services) -> None:
    result = run(["load", "--sites", "25", "--days", "1", "--interval", "30", "--seed", "7"], env)
    assert result.exit_code == 0, result.output
    assert "Loaded 25 sites and 1,200 readings" in result.output
    sites = services.sites.find_all()
    assert [s.id for s in sites] == list(range(1, 26))
    now = utcnow()
    points = services.timeseries.get_readings_range(20, MetricType.WH_USED, now - timedelta(days=2), now)
    assert len(points) == 48
    assert services.summary()["total_sites"] == 25


def test_load_uses_the_key_prefix(env: dict[str, str], client: redis.Redis) -> None:
    result = run(["load", "--days", "1"], {**env, "REDISOLAR_KEY_PREFIX": "elsewhere:"})
    assert result.exit_code == 0, result.output
    keys = list(client.scan_iter(count=1000))
    assert keys and all(key.startswith("elsewhere:") for key in keys)


def test_load_refuses_a_span_longer_than_the_retention(env: dict[str, str], services: Services) -> None:
    add_other_site(services)
    result = run(["load", "--yes"], {**env, "REDISOLAR_RETENTION_DAYS": "3"})
    assert result.exit_code == 1
    assert "retention" in result.output
    assert services.sites.find_all() == [OTHER_SITE]  # nothing deleted


def test_load_without_redis_says_where_it_looked(unused_port: int) -> None:
    result = run(["load"], {"REDISOLAR_REDIS_URL": f"redis://127.0.0.1:{unused_port}/0"})
    assert result.exit_code == 1
    assert f"Cannot reach Redis at redis://127.0.0.1:{unused_port}" in result.output


def test_load_rejects_a_bad_configuration() -> None:
    result = run(["load"], {"REDISOLAR_RETENTION_DAYS": "forever"})
    assert result.exit_code == 1
    assert "Invalid configuration" in result.output and "RETENTION_DAYS" in result.output


@pytest.mark.parametrize("args", [["--interval", "0"], ["--days", "0"], ["--sites", "0"]])
def test_load_rejects_bad_options(args: list[str]) -> None:
    result = run(["load", *args], {})
    assert result.exit_code == 2
    assert "Invalid value" in result.output


# -- serve and demo: refusals before anything starts ------------------------------------------------------
@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_serve_refuses_a_taken_port(taken_port: int) -> None:
    result = run(["serve", "--port", str(taken_port)], {})
    assert result.exit_code == 1
    assert f"Cannot listen on 127.0.0.1:{taken_port}" in result.output
    assert "--port" in result.output


def test_demo_refuses_a_taken_port_before_starting_redis(taken_port: int, tmp_path: Path) -> None:
    data_dir = tmp_path / "redis"
    result = run(["demo", "--port", str(taken_port), "--data-dir", str(data_dir)], {})
    assert result.exit_code == 1
    assert f"Cannot listen on 127.0.0.1:{taken_port}" in result.output
    assert not data_dir.exists()


def test_serve_offers_granian_by_default_and_gunicorn() -> None:
    result = run(["serve", "--help"], {})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "[granian|gunicorn]" in text and "default: granian" in text
    assert "granian: CPU cores; gunicorn: 2 × CPU cores" in text


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_serve_and_demo_refuse_an_unknown_server(command: str) -> None:
    result = run([command, "--server", "waitress"], {})
    assert result.exit_code == 2
    assert "Invalid value for '--server'" in result.output


# -- the entry points ---------------------------------------------------------------------------------------
def redisolar_command() -> list[str]:
    """The installed ``redisolar`` script next to this Python, else ``python -m redisolar``."""
    script = Path(sys.executable).parent / "redisolar"
    return [str(script)] if script.exists() else [sys.executable, "-m", "redisolar"]


@pytest.mark.parametrize(
    "command", [[sys.executable, "-m", "redisolar"], redisolar_command()], ids=["python -m", "script"]
)
def test_the_entry_points_list_the_commands(command: list[str]) -> None:
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    for name in ("serve", "load", "demo"):
        assert name in done.stdout


# -- resources ---------------------------------------------------------------------------------------------
def open_sockets(client: redis.Redis) -> int:
    """Connected sockets left in ``client``'s pools (every primary's on a cluster)."""
    pools = [node.connection_pool for node in store.node_clients(client)]
    connections = [c for pool in pools for c in (*pool._available_connections, *pool._in_use_connections)]
    return sum(1 for connection in connections if connection._sock is not None)


def test_a_command_closes_its_client_when_it_ends(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start-up migration opens a connection to every primary; the command closes them when it
    ends instead of leaving them to the garbage collector (an "unclosed socket" warning, sometimes)."""
    built: list[Services] = []
    services_of = CliContext.services

    def spy(cli: CliContext) -> Services:
        built.append(services_of(cli))
        return built[-1]

    monkeypatch.setattr(CliContext, "services", spy)
    assert run(["keys", "list"], env).exit_code == 0
    assert len(built) == 1 and open_sockets(built[0].redis) == 0

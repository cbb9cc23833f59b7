"""The application's configuration, the one source of every default: :data:`OPTIONS` (each key's
type and bounds), :data:`DEFAULTS` (each key's default, written once), where values come from, and the
:class:`Settings` the services are built from. ``config.Config`` (the seed's keyword facade), the
models' bounds and the services read their defaults from here.

Layers, each overriding the one before (see :func:`load_config`):

1. :data:`DEFAULTS`;
2. the instance file ``instance/<config_name>.cfg`` (Python syntax, seed style; optional);
3. the environment: ``REDISOLAR_<KEY>`` for every key of :data:`OPTIONS` (``REDISOLAR_REDIS_PORT=6380``),
   plus the aliases ``REDISOLAR_KEY_PREFIX`` and ``REDISOLAR_TIMESERIES``;
4. the ``test_config`` mapping given to ``create_app``.

Every value is then checked and converted (:func:`validate_config`); a bad one raises
:class:`ConfigError` naming the key (or the environment variable) and what is wrong with it.
``REDIS_URL`` (``redis://``, ``rediss://``, ``unix://``), when set, wins over host, port, db, username
and password.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from redisolar.timeutil import MS_PER_DAY

if TYPE_CHECKING:
    import flask

    from redisolar.config import Config

# This module is (nearly) a leaf: at import time it takes only timeutil (which imports nothing of
# RediSolar), so that config.Config, the models and the services can take their defaults from here.

DEFAULT_KEY_PREFIX = "ru102py-app:"
"""The seed's key prefix (``REDIS_KEY_PREFIX``)."""
DEFAULT_MAX_READING_WH = 1e11
"""The default bound on the energy of one reading (Wh): 100 GWh, more than the largest solar complex
on Earth yields in a whole day (Talatan, Qinghai, about 16 GW peak × at most 6 full-sun hours ≈ 96 GWh),
so no honest meter reports more in one reading. Configurable: ``MAX_READING_WH``."""
MAX_READING_WH_LIMIT = 1e15
"""The largest value ``MAX_READING_WH`` may be configured to (see ``models.site.MeterReading``: bounds)."""
DEFAULT_CLOCK_SKEW_SECONDS = 300.0
"""How far in the future a reading's timestamp may lie by default (``CLOCK_SKEW_SECONDS``)."""

ENV_PREFIX = "REDISOLAR_"
ENV_ALIASES = {"KEY_PREFIX": "REDIS_KEY_PREFIX", "TIMESERIES": "TIMESERIES_BACKEND"}
"""Short environment names (``REDISOLAR_KEY_PREFIX``) → config keys. The long name wins if both are set."""

TIMESERIES_BACKENDS = ("auto", "redistimeseries", "core")
SEARCH_BACKENDS = ("auto", "redisearch", "core")
AUTH_MODES = ("auto", "required", "writes", "off")
DURABILITY_MODES = ("local", "replicated")
LOG_FORMATS = ("text", "json")
RATE_LIMIT_KEYS = ("RATE_LIMIT_WRITES", "RATE_LIMIT_READS")
_CONFIG_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class ConfigError(ValueError):
    """The configuration is unusable; the message says which key and why."""


@dataclass(frozen=True)
class Option:
    """What one configuration key may hold: a type, optional bounds or choices, and None or not."""

    kind: type
    nullable: bool = False
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None


OPTIONS: dict[str, Option] = {
    "REDIS_URL": Option(str, nullable=True),
    "REDIS_HOST": Option(str),
    "REDIS_PORT": Option(int, low=1, high=65535),
    "REDIS_DB": Option(int, low=0, high=1_000_000),
    "REDIS_USERNAME": Option(str, nullable=True),
    "REDIS_PASSWORD": Option(str, nullable=True),
    "REDIS_KEY_PREFIX": Option(str),
    "REDIS_SOCKET_TIMEOUT": Option(float, low=0.01, high=3600),
    "REDIS_RETRIES": Option(int, low=0, high=100),
    "REDIS_CLUSTER": Option(bool),
    "REDIS_CLUSTER_NODES": Option(str, nullable=True),
    "DURABILITY": Option(str, choices=DURABILITY_MODES),
    "DURABILITY_TIMEOUT_MS": Option(int, low=1, high=60_000),
    "TIMESERIES_BACKEND": Option(str, choices=TIMESERIES_BACKENDS),
    "SEARCH_BACKEND": Option(str, choices=SEARCH_BACKENDS),
    "RETENTION_DAYS": Option(float, low=0, high=36_500),
    "HISTORY_DAYS": Option(float, low=0, high=36_500),
    "CLOCK_SKEW_SECONDS": Option(float, low=0, high=86_400 * 366),
    "MAX_READING_WH": Option(float, low=1, high=MAX_READING_WH_LIMIT),
    "MAX_BATCH_READINGS": Option(int, low=1, high=10_000_000),
    "MAX_CONTENT_LENGTH": Option(int, low=1024, high=2**40),
    "SUMMARY_CACHE_SECONDS": Option(float, low=0, high=86_400),
    "RETRY_AFTER_SECONDS": Option(int, low=1, high=86_400),
    "LEADERBOARD_UPDATE_INTERVAL": Option(float, low=0, high=86_400),
    "ALERT_EVALUATION_SECONDS": Option(float, low=0, high=86_400),
    "EVENTS_MAX_STREAMS": Option(int, low=0, high=1024),
    "EVENTS_STREAM_SECONDS": Option(float, low=0, high=86_400),
    "EVENTS_HEARTBEAT_SECONDS": Option(float, low=0.5, high=3600),
    "WEBHOOK_DELIVERY": Option(bool),
    "DASHBOARD_REFRESH_MS": Option(int, low=100, high=3_600_000),
    "DASHBOARD_API_BASE": Option(str),
    "AUTH_MODE": Option(str, choices=AUTH_MODES),
    "RATE_LIMIT_WRITES": Option(str),
    "RATE_LIMIT_READS": Option(str),
    "TRUSTED_PROXIES": Option(int, low=0, high=10),
    "DEFAULT_TIMEZONE": Option(str),
    "LOG_FORMAT": Option(str, choices=LOG_FORMATS),
    "FLEET_SHARDS": Option(int, low=1, high=256),
}
"""Every key RediSolar reads from the Flask config (other Flask keys pass through untouched)."""

DEFAULTS: dict[str, Any] = {
    "REDIS_URL": None,
    "REDIS_HOST": "localhost",
    "REDIS_PORT": 6379,
    "REDIS_DB": 0,
    "REDIS_USERNAME": None,
    "REDIS_PASSWORD": None,
    "REDIS_KEY_PREFIX": DEFAULT_KEY_PREFIX,
    "REDIS_SOCKET_TIMEOUT": 5.0,  # seconds, connect and read
    "REDIS_RETRIES": 3,  # retries of a command after a network error, with jittered backoff
    "REDIS_CLUSTER": False,  # true: REDIS_URL (or host/port) names any node of a Redis Cluster
    "REDIS_CLUSTER_NODES": None,  # more seed nodes of the cluster: "host:port,host:port"
    # local: a write is acknowledged once its master has it; replicated: once >= 1 replica has it too
    # (WAIT 1 DURABILITY_TIMEOUT_MS after each write's round trip, on the same connection)
    "DURABILITY": "local",
    "DURABILITY_TIMEOUT_MS": 1000,
    "TIMESERIES_BACKEND": "auto",
    "SEARCH_BACKEND": "auto",
    "RETENTION_DAYS": 30.0,  # 0 keeps every reading
    "HISTORY_DAYS": 3650.0,  # hourly and local-daily rollups (redisolar.dao.history); 0 keeps them all
    "CLOCK_SKEW_SECONDS": DEFAULT_CLOCK_SKEW_SECONDS,  # how far in the future a reading may lie
    # the most energy one reading may carry (Wh): 1e11 = 100 GWh, more than the largest solar complex
    # yields in a day; it keeps every stored sum finite (models.site.MeterReading: "Bounds")
    "MAX_READING_WH": DEFAULT_MAX_READING_WH,
    "MAX_BATCH_READINGS": 10_000,
    "MAX_CONTENT_LENGTH": 8 * 1024 * 1024,  # bytes of a request body (Flask's key)
    "SUMMARY_CACHE_SECONDS": 0.0,  # 0: the fleet summary is computed on every request
    "RETRY_AFTER_SECONDS": 5,  # the Retry-After of a 503 while Redis is unreachable
    "LEADERBOARD_UPDATE_INTERVAL": 300.0,  # seconds between reconciles in `redisolar serve`; 0: none
    "ALERT_EVALUATION_SECONDS": 60.0,  # seconds between alert evaluations in `redisolar serve`; 0: none
    # GET /api/events (redisolar.events.sse): streams per worker process (each holds a thread; more: 503),
    # a stream's lifetime (the client resumes with Last-Event-ID), a keepalive after this long idle
    "EVENTS_MAX_STREAMS": 2,
    "EVENTS_STREAM_SECONDS": 300.0,
    "EVENTS_HEARTBEAT_SECONDS": 15.0,
    "WEBHOOK_DELIVERY": True,  # false: this server runs no webhook deliverer (redisolar.events.deliverer)
    "DASHBOARD_REFRESH_MS": 7000,  # how often an open dashboard page polls the API
    "DASHBOARD_API_BASE": "/api",  # where the dashboard's pages find the API
    "AUTH_MODE": "auto",  # auto | required | writes | off (docs/security.md)
    "RATE_LIMIT_WRITES": "600/minute",  # per API key, or per client address without a key; 0: none
    "RATE_LIMIT_READS": "1200/minute",
    "TRUSTED_PROXIES": 0,  # reverse proxies in front whose X-Forwarded-For is believed
    # the IANA zone of a site without one whose coordinates give none (no coordinate): redisolar.timezones
    "DEFAULT_TIMEZONE": "UTC",
    "LOG_FORMAT": "text",  # text | json: one JSON object a line (redisolar.logs)
    # parts of the per-reading fleet-wide keys (day boards, fleet hours, last-seen) on a cluster;
    # 1 keeps them whole (KeyManager's docstring and docs/capacity.md say when to raise it)
    "FLEET_SHARDS": 1,
}


@dataclass(frozen=True)
class Settings:
    """What the services are built from (:func:`redisolar.services.build_services`): where Redis is
    and how storage behaves. Every default is :data:`DEFAULTS`'s; an app's come from its validated
    configuration (:func:`settings_from_config`)."""

    redis: Config = field(default_factory=lambda: _config_class()())
    timeseries_backend: str = DEFAULTS["TIMESERIES_BACKEND"]  # auto | redistimeseries | core
    retention_days: float = DEFAULTS["RETENTION_DAYS"]
    history_days: float = DEFAULTS["HISTORY_DAYS"]
    search_backend: str = DEFAULTS["SEARCH_BACKEND"]  # auto | redisearch | core
    summary_cache_seconds: float = DEFAULTS["SUMMARY_CACHE_SECONDS"]
    default_timezone: str = DEFAULTS["DEFAULT_TIMEZONE"]
    fleet_shards: int = DEFAULTS["FLEET_SHARDS"]

    @property
    def retention_ms(self) -> int:
        return int(self.retention_days * MS_PER_DAY)

    @property
    def history_ms(self) -> int:
        return int(self.history_days * MS_PER_DAY)


def _config_class() -> type[Config]:
    from redisolar.config import Config  # config.Config takes its defaults from this module

    return Config


def load_config(
    config: flask.Config,
    config_name: str,
    test_config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Fill a Flask ``config`` from the four layers, then validate it in place.

    The instance file is optional; ``environ`` defaults to ``os.environ``.
    """
    if not _CONFIG_NAME.match(config_name):
        raise ConfigError(f"Invalid config name {config_name!r}: use letters, digits, '.', '_' or '-'")
    config.update(DEFAULTS)
    config.from_pyfile(f"{config_name}.cfg", silent=True)
    config.update(from_environment(os.environ if environ is None else environ))
    if test_config:
        config.update(test_config)
    validate_config(config)


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The config keys set by ``REDISOLAR_*`` variables, converted to their types.

    An empty variable means None for the keys that may be None (``REDISOLAR_REDIS_URL=``).
    """
    found: dict[str, Any] = {}
    names = [*ENV_ALIASES.items(), *((key, key) for key in OPTIONS)]
    for name, key in names:  # aliases first, so that the long names win
        raw = environ.get(ENV_PREFIX + name)
        if raw is not None:
            found[key] = convert(ENV_PREFIX + name, OPTIONS[key], raw)
    return found


def validate_config(config: MutableMapping[str, Any]) -> None:
    """Check and convert every RediSolar key of ``config`` in place; raise :class:`ConfigError`."""
    from redisolar.auth.limits import parse_policy

    for key, option in OPTIONS.items():
        config[key] = convert(key, option, config.get(key, DEFAULTS[key]))
    settings_from_config(config)  # the combinations (URL scheme, key prefix) are checked there
    for key in RATE_LIMIT_KEYS:
        try:
            parse_policy(key, config[key])
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None


def convert(name: str, option: Option, value: Any) -> Any:
    """``value`` as ``option`` wants it (strings are parsed), or :class:`ConfigError` naming ``name``."""
    if value is None or (option.nullable and value == ""):
        if option.nullable:
            return None
        raise ConfigError(f"{name} must be set")
    result = _typed(name, option.kind, value)
    if option.choices is not None and result not in option.choices:
        raise ConfigError(f"{name} must be one of {', '.join(option.choices)}, got {value!r}")
    if option.low is not None and result < option.low:
        raise ConfigError(f"{name} must be at least {option.low:g}, got {value!r}")
    if option.high is not None and result > option.high:
        raise ConfigError(f"{name} must be at most {option.high:g}, got {value!r}")
    return result


def _typed(name: str, kind: type, value: Any) -> Any:
    if kind is bool:
        return _boolean(name, value)
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be {_KIND_NAMES[kind]}, got {value!r}")
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value.strip() if name.endswith(("BACKEND", "TIMESERIES", "MODE", "DURABILITY")) else value
    try:
        number = kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name} must be {_KIND_NAMES[kind]}, got {value!r}") from None
    if kind is int and isinstance(value, float) and number != value:
        raise ConfigError(f"{name} must be {_KIND_NAMES[kind]}, got {value!r}")
    if kind is float and not math.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return number


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number"}
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0", "")


def _boolean(name: str, value: Any) -> bool:
    """``value`` as a bool: a bool, 0/1, or a word of :data:`_TRUE`/:data:`_FALSE` (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def redis_config(config: Mapping[str, Any]) -> Config:
    """The connection settings of a validated ``config``."""
    _check_url(config["REDIS_URL"])
    try:
        return _config_class()(
            redis_host=config["REDIS_HOST"],
            redis_port=config["REDIS_PORT"],
            redis_db=config["REDIS_DB"],
            redis_username=config["REDIS_USERNAME"],
            redis_password=config["REDIS_PASSWORD"],
            redis_key_prefix=config["REDIS_KEY_PREFIX"],
            redis_url=config["REDIS_URL"],
            socket_timeout=config["REDIS_SOCKET_TIMEOUT"],
            retries=config["REDIS_RETRIES"],
            cluster=config["REDIS_CLUSTER"],
            cluster_nodes=config["REDIS_CLUSTER_NODES"],
            durability=config["DURABILITY"],
            durability_timeout_ms=config["DURABILITY_TIMEOUT_MS"],
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _check_url(url: str | None) -> None:
    if url is None:
        return
    try:
        urlsplit(url).port  # noqa: B018 - parsing the port raises ValueError when it is bad
    except ValueError as exc:
        raise ConfigError(f"REDIS_URL has a bad port: {exc}") from None


def settings_from_config(config: Mapping[str, Any]) -> Settings:
    """The storage :class:`Settings` of a validated ``config``."""
    return Settings(
        redis=redis_config(config),
        timeseries_backend=config["TIMESERIES_BACKEND"],
        retention_days=config["RETENTION_DAYS"],
        history_days=config["HISTORY_DAYS"],
        search_backend=config["SEARCH_BACKEND"],
        summary_cache_seconds=config["SUMMARY_CACHE_SECONDS"],
        default_timezone=_check_timezone(config["DEFAULT_TIMEZONE"]),
        fleet_shards=config["FLEET_SHARDS"],
    )


def _check_timezone(name: str) -> str:
    from redisolar.localtime import is_timezone

    if not is_timezone(name.strip()):
        raise ConfigError(f"DEFAULT_TIMEZONE must be an IANA time zone name such as 'UTC', got {name!r}")
    return name.strip()

"""Connection settings (the seed's ``Config`` keywords) and building a Redis client from them.

``Config`` is the seed's keyword facade over :mod:`redisolar.settings`: each default is that
module's (``DEFAULTS``), written nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from redisolar import store
from redisolar.settings import DEFAULT_KEY_PREFIX, DEFAULTS
from redisolar.store import Durability

_URL_SCHEMES = ("redis", "rediss", "unix")
T = TypeVar("T")
__all__ = ["DEFAULT_KEY_PREFIX", "Config", "NetworkRetry", "redact_url"]


class NetworkRetry(Retry):
    """redis-py's :class:`Retry` for network errors only: a refused login (``AuthenticationError``
    is a ``ConnectionError``) is a configuration error, raised at once instead of after the backoff."""

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        def retryable(error: Exception) -> bool:
            if isinstance(error, redis.AuthenticationError | redis.exceptions.AuthorizationError):
                return False
            return is_retryable is None or is_retryable(error)

        return super().call_with_retry(do, fail, retryable, with_failure_count)


@dataclass(frozen=True)
class Config:
    """Where Redis is and how RediSolar's keys are named.

    The keyword arguments are the seed's; ``redis_url`` (``redis://``, ``rediss://`` or ``unix://``),
    when given, takes precedence over host, port, db, username and password.
    """

    redis_host: str = DEFAULTS["REDIS_HOST"]
    redis_port: int = DEFAULTS["REDIS_PORT"]
    redis_db: int = DEFAULTS["REDIS_DB"]
    redis_password: str | None = DEFAULTS["REDIS_PASSWORD"]
    redis_username: str | None = DEFAULTS["REDIS_USERNAME"]
    redis_key_prefix: str = DEFAULTS["REDIS_KEY_PREFIX"]
    redis_url: str | None = DEFAULTS["REDIS_URL"]
    socket_timeout: float = DEFAULTS["REDIS_SOCKET_TIMEOUT"]
    retries: int = DEFAULTS["REDIS_RETRIES"]
    cluster: bool = DEFAULTS["REDIS_CLUSTER"]
    cluster_nodes: str | None = DEFAULTS["REDIS_CLUSTER_NODES"]
    durability: str = DEFAULTS["DURABILITY"]
    durability_timeout_ms: int = DEFAULTS["DURABILITY_TIMEOUT_MS"]

    def __post_init__(self) -> None:
        if self.redis_url is not None and urlsplit(self.redis_url).scheme not in _URL_SCHEMES:
            raise ValueError(f"Redis URL must start with one of {', '.join(s + '://' for s in _URL_SCHEMES)}")
        if not 0 < int(self.redis_port) < 65536:
            raise ValueError(f"Redis port must be between 1 and 65535, got {self.redis_port}")
        if int(self.redis_db) < 0:
            raise ValueError(f"Redis db must not be negative, got {self.redis_db}")
        if "{" in self.redis_key_prefix or "}" in self.redis_key_prefix:
            raise ValueError("The key prefix must not contain braces (they would change hash slots)")
        Durability.named(self.durability, self.durability_timeout_ms)
        if self.cluster:
            self._check_cluster()
        elif self.cluster_nodes:
            raise ValueError("REDIS_CLUSTER_NODES is set but REDIS_CLUSTER is not true")

    def _check_cluster(self) -> None:
        if self.redis_url is not None and urlsplit(self.redis_url).scheme == "unix":
            raise ValueError("A Redis Cluster is reached over TCP: REDIS_URL must be redis:// or rediss://")
        db = _url_db(self.redis_url) if self.redis_url else int(self.redis_db)
        if db != 0:
            raise ValueError(f"A Redis Cluster has only database 0, got {db}")
        self.seed_nodes()  # raises on a malformed REDIS_CLUSTER_NODES

    def seed_nodes(self) -> list[tuple[str, int]]:
        """The extra seed nodes of ``cluster_nodes`` (``host:port,[::1]:port``) as (host, port)."""
        return [_host_port(item.strip()) for item in (self.cluster_nodes or "").split(",") if item.strip()]

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> Config:
        """A config whose connection comes from ``url``, with other fields from ``overrides``."""
        return cls(redis_url=url, **overrides)

    def with_prefix(self, prefix: str) -> Config:
        """The same config with another key prefix."""
        return replace(self, redis_key_prefix=prefix)

    def describe(self) -> str:
        """Where this config points, without credentials (for logs and /health)."""
        if self.redis_url:
            parts = urlsplit(self.redis_url)
            host = parts.hostname or ""
            where = f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"
            return where
        return f"redis://{self.redis_host}:{self.redis_port}/{self.redis_db}"

    def client(self, **kwargs: Any) -> redis.Redis:
        """A pooled, thread-safe client that retries network errors with jittered backoff: the one
        client factory of the app, the CLI, the reconciler and the benchmarks.

        With ``cluster`` it is a :class:`redis.cluster.RedisCluster` (same decoding, timeouts,
        retries and credentials), typed as ``redis.Redis``: it has the same command methods, and the
        plumbing that differs asks :mod:`redisolar.store`. The client's :attr:`durability` is
        registered there for :func:`redisolar.dao.scripts.run_scripts`.
        """
        client = self._cluster_client(**kwargs) if self.cluster else self._standalone_client(**kwargs)
        store.register(client, Durability.named(self.durability, self.durability_timeout_ms))
        return client

    def _options(self, **kwargs: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_timeout,
            "retry": NetworkRetry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), self.retries),
            "health_check_interval": 30,
        }
        options.update(kwargs)
        return options

    def _standalone_client(self, **kwargs: Any) -> redis.Redis:
        options = self._options(**kwargs)
        if self.redis_url:
            url = self.redis_url
            if url.startswith("unix://"):
                options.pop("health_check_interval", None)
            return redis.Redis.from_url(url, **options)
        return redis.Redis(
            host=self.redis_host,
            port=int(self.redis_port),
            db=int(self.redis_db),
            username=self.redis_username,
            password=self.redis_password,
            **options,
        )

    def _cluster_client(self, **kwargs: Any) -> redis.Redis:
        """The cluster client: ``retry`` becomes the cluster client's own (redis-py retries a command
        on a refreshed slot map after a connection error or CLUSTERDOWN; its node connections do not
        retry by themselves)."""
        options = self._options(**kwargs)
        seeds = [ClusterNode(host, port) for host, port in self.seed_nodes()]
        if self.redis_url:
            url = self.redis_url.rstrip("/").removesuffix("/0")
            cluster = RedisCluster(url=url, startup_nodes=seeds, **options)
        else:
            seeds.insert(0, ClusterNode(self.redis_host, int(self.redis_port)))
            options.update(username=self.redis_username, password=self.redis_password)
            cluster = RedisCluster(startup_nodes=seeds, **options)
        return cast(redis.Redis, cluster)


def _url_db(url: str) -> int:
    path = urlsplit(url).path.strip("/")
    try:
        return int(path or 0)
    except ValueError:
        raise ValueError(f"Bad database number in REDIS_URL: {path!r}") from None


def _host_port(item: str) -> tuple[str, int]:
    host, sep, port = item.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"REDIS_CLUSTER_NODES: expected host:port, got {item!r}")
    return host, int(port)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=unquote(netloc)).geturl()

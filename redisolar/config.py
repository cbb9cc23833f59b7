"""Connection settings (the seed's ``Config`` keywords) and building a Redis client from them.

``Config`` is the seed's keyword facade over :mod:`redisolar.settings`: each default is that
module's (``DEFAULTS``), written nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from redisolar.settings import DEFAULT_KEY_PREFIX, DEFAULTS

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

    def __post_init__(self) -> None:
        if self.redis_url is not None and urlsplit(self.redis_url).scheme not in _URL_SCHEMES:
            raise ValueError(f"Redis URL must start with one of {', '.join(s + '://' for s in _URL_SCHEMES)}")
        if not 0 < int(self.redis_port) < 65536:
            raise ValueError(f"Redis port must be between 1 and 65535, got {self.redis_port}")
        if int(self.redis_db) < 0:
            raise ValueError(f"Redis db must not be negative, got {self.redis_db}")
        if "{" in self.redis_key_prefix or "}" in self.redis_key_prefix:
            raise ValueError("The key prefix must not contain braces (they would change hash slots)")

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
        """A pooled, thread-safe client that retries network errors with jittered backoff."""
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_timeout,
            "retry": NetworkRetry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), self.retries),
            "health_check_interval": 30,
        }
        options.update(kwargs)
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


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=unquote(netloc)).geturl()

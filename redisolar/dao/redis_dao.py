"""The connection the seed imports: ``RedisConnection`` and ``get_redis``.

Nothing connects at import time. The application builds its own client per app (see
``redisolar.app.create_app``); this module is for scripts that want one process-wide client.
"""

from __future__ import annotations

import threading

import redis

from redisolar.config import Config


class RedisConnection:
    """A lazily created, process-wide client (thread-safe, pooled)."""

    _client: redis.Redis | None = None
    _config: Config | None = None
    _lock = threading.Lock()

    @classmethod
    def get_connection(cls, config: Config | None = None) -> redis.Redis:
        """The shared client; ``config`` replaces the current one when given."""
        with cls._lock:
            if config is not None and config != cls._config:
                cls._close_locked()
                cls._config = config
            if cls._client is None:
                cls._config = cls._config or Config()
                cls._client = cls._config.client()
            return cls._client

    @classmethod
    def test_connection(cls) -> bool:
        """Whether Redis answers PING."""
        try:
            return bool(cls.get_connection().ping())
        except redis.RedisError:
            return False

    @classmethod
    def close(cls) -> None:
        """Close the shared client (a later call creates a new one)."""
        with cls._lock:
            cls._close_locked()

    @classmethod
    def _close_locked(cls) -> None:
        if cls._client is not None:
            cls._client.close()
        cls._client = None


def get_redis() -> redis.Redis:
    """The process-wide client."""
    return RedisConnection.get_connection()

"""Which Redis failures are a configuration error, which mean "storage full", and what Redis says
about its memory: shared by the API's error handlers, ``/health`` and the start-up checks.

- **Authentication failed** (wrong or missing password, unknown user): redis-py raises
  ``AuthenticationError`` (a ``ConnectionError``, so by its class it would look like an outage) or, for
  some servers and ACL replies, ``AuthorizationError`` or a ``ResponseError`` starting ``NOAUTH`` /
  ``WRONGPASS``. Retrying does not help: it is a configuration error.
- **Out of memory** (``maxmemory`` reached with a policy that cannot evict): ``OutOfMemoryError`` (a
  ``ResponseError`` whose message started with ``OOM``). The write was refused whole; it succeeds
  again as soon as memory is available.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from redis import exceptions as redis_errors

AUTH_HINT = "authentication failed: check REDIS_PASSWORD/REDIS_USERNAME (or the credentials in REDIS_URL)"
"""What to say about a refused login, wherever it is said (never the password itself)."""

_AUTH_PREFIXES = ("NOAUTH", "WRONGPASS", "INVALID PASSWORD", "INVALID USERNAME-PASSWORD")

StorageState = Literal["ok", "full"]


def is_auth_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis refused our credentials (or wants some we did not send)."""
    if isinstance(exc, redis_errors.AuthenticationError | redis_errors.AuthorizationError):
        return True
    if isinstance(exc, redis_errors.AuthenticationWrongNumberOfArgsError):
        return True  # a username sent to a server without ACLs
    return isinstance(exc, redis_errors.ResponseError) and _message(exc).upper().startswith(_AUTH_PREFIXES)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis refusing a write because it reached ``maxmemory``."""
    if isinstance(exc, redis_errors.OutOfMemoryError):
        return True
    return isinstance(exc, redis_errors.ResponseError) and _message(exc).startswith("OOM ")


def storage_state(memory: Mapping[str, Any]) -> StorageState:
    """``"full"`` when ``INFO memory`` shows writes being refused: ``used_memory`` at ``maxmemory``
    under a policy that cannot make room for them (``noeviction``, or a ``volatile-*`` one, which can
    only evict keys that expire); else ``"ok"``."""
    limit = int(memory.get("maxmemory") or 0)
    used = int(memory.get("used_memory") or 0)
    policy = str(memory.get("maxmemory_policy") or "noeviction")
    evicts_anything = policy.startswith("allkeys-")
    return "full" if limit > 0 and used >= limit and not evicts_anything else "ok"


def _message(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else ""


__all__ = ["AUTH_HINT", "StorageState", "is_auth_failure", "is_out_of_memory", "storage_state"]

"""Domain exceptions: one base class, turned into HTTP errors in one place (``redisolar.api.errors``)."""

from __future__ import annotations

from typing import Any


class RediSolarError(Exception):
    """Base of every error RediSolar raises on purpose. ``status`` is the HTTP status it maps to."""

    status = 500

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(RediSolarError, ValueError):
    """Input that fails validation (HTTP 400)."""

    status = 400


class InvalidReading(InvalidInput):
    """A meter reading that cannot be stored: bad values, or older than the retention window."""


class InvalidQuery(InvalidInput):
    """A query with bad parameters (unknown aggregation, empty or reversed range, ...)."""


class SiteNotFound(RediSolarError, LookupError):
    """No site with that id (HTTP 404)."""

    status = 404

    def __init__(self, site_id: int) -> None:
        super().__init__(f"Site {site_id} not found")
        self.site_id = site_id


class ApiKeyNotFound(RediSolarError, LookupError):
    """No API key with that id (HTTP 404)."""

    status = 404

    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key {key_id} not found")
        self.key_id = key_id


class SiteAlreadyExists(RediSolarError):
    """A site with that id exists already (HTTP 409)."""

    status = 409

    def __init__(self, site_id: int) -> None:
        super().__init__(f"Site {site_id} already exists")
        self.site_id = site_id


class BackendUnavailable(RediSolarError):
    """The storage cannot serve the request (a module missing, a server too old)."""

    status = 503


class StoreUnavailable(BackendUnavailable):
    """Redis cannot answer now, but will (HTTP 503 with ``Retry-After``): on a cluster, a slot still
    moving, no node reachable for it, or the cluster down, once the bounded retries on a refreshed
    slot map are spent (``redisolar.dao.scripts``). Retrying the request later is safe."""

    def __init__(self, message: str = "Redis is unavailable; try again shortly", details: Any = None) -> None:
        super().__init__(message, details)


class NotReplicated(StoreUnavailable):
    """``DURABILITY=replicated`` and no replica acknowledged a write within ``DURABILITY_TIMEOUT_MS``
    (HTTP 503 with ``Retry-After``). The write may be stored on its master (and lost if that master
    fails now): it is not acknowledged, so the client sends it again; every write is idempotent."""

    def __init__(self, acknowledged: int, wanted: int) -> None:
        super().__init__(
            "The write was not acknowledged by a replica in time; send it again shortly",
            {"replicas_acknowledged": acknowledged, "replicas_required": wanted},
        )

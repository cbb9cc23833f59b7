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

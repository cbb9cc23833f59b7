"""Every error the HTTP API answers, mapped to a status and one JSON shape, in one place.

Body of every 4xx and 5xx: ``{"error": "<what went wrong>", "details": <more, or null>}``; validation
errors carry marshmallow's messages per field in ``details`` (per item index for a batch). The two
"no data" 404s of the seed also repeat the text as ``message``, as the seed answered.

========================================================  =====================================
raised                                                    answer
========================================================  =====================================
``RediSolarError`` (domain: InvalidInput, SiteNotFound,   its ``status`` (400, 404, 409, 503),
SiteAlreadyExists, BackendUnavailable, ...) and the       its message and details
API's own (:class:`NoData`, :class:`PayloadTooLarge`,
:class:`UnsupportedMediaType`)
marshmallow ``ValidationError``; webargs' parse errors    400 "Validation failed", field messages
werkzeug ``HTTPException`` (404 no route, 405, 413 body   its code and description (405 keeps
over MAX_CONTENT_LENGTH, ...)                             its ``Allow`` header)
redis-py ``ConnectionError`` (also BusyLoadingError),     503 with ``Retry-After``
``TimeoutError``, ``ReadOnlyError``, ``TryAgainError``;
a cluster in motion: ``ClusterError`` (CLUSTERDOWN,
MASTERDOWN, redirections beyond the client's TTL),
``AskError``/``MovedError`` left after the client's
retries, ``SlotNotCoveredError``, and the cluster
client's "cannot be connected" / "slots not covered"
``RedisClusterException``
Redis refused our credentials (``AuthenticationError``,   500 "misconfigured", no ``Retry-After``
``AuthorizationError``, NOAUTH/WRONGPASS replies)         (logged once per app, naming the settings)
Redis out of memory (``OutOfMemoryError``, ``OOM ...``)   507 "storage is full", ``Retry-After``
redis-py ``WatchError`` (a record kept changing)          409
anything else                                             500 ``{"error": "Internal server
                                                          error"}``, logged with its traceback
========================================================  =====================================

Every 503 and 507 carries ``Retry-After`` (``RETRY_AFTER_SECONDS``). A 5xx body never carries internals.

On a cluster, a master's failure shows as connection errors (the dead node), then ``CLUSTERDOWN`` or
uncovered slots (the failure is detected, no replica promoted yet), then redirections (the slot map
moves): redis-py's cluster client retries these and refreshes its slot map, and what is left after its
retries is this 503, so the client comes back after ``Retry-After`` and finds the new master. The same
app recovers by itself; nothing is restarted. Other ``RedisClusterException`` messages are programming
errors (a command the cluster client refuses, a cross-slot pipeline): a 500, logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import redis
from flask import Flask, Response, current_app, g, jsonify
from marshmallow import Schema, ValidationError, fields
from redis import exceptions as redis_errors
from werkzeug.exceptions import HTTPException

from redisolar.errors import RediSolarError
from redisolar.redis_faults import AUTH_HINT, is_auth_failure, is_out_of_memory
from redisolar.settings import DEFAULTS

log = logging.getLogger(__name__)

INTERNAL_ERROR = "Internal server error"
REDIS_UNAVAILABLE = "Redis is unavailable; try again shortly"
VALIDATION_FAILED = "Validation failed"
MISCONFIGURED = "The service is misconfigured: Redis refused its credentials; the operator must fix them"
STORAGE_FULL = "Storage is full (Redis reached its memory limit); nothing was written: try again later"
RETRY_STATUSES = (503, 507)
"""Statuses that tell the client to come back: they carry ``Retry-After``."""
_AUTH_LOGGED = "redisolar.auth_failure_logged"

REDIS_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,  # BusyLoadingError and AuthenticationError are ConnectionErrors
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    redis_errors.TryAgainError,
    redis_errors.ClusterError,  # ClusterDownError, MasterDownError, "TTL exhausted" (endless redirects)
    redis_errors.AskError,  # and MovedError: a slot still moving once the client's retries are spent
    redis_errors.SlotNotCoveredError,
)
"""redis-py errors that mean "not now": the server is unreachable, loading, failing over."""
_CLUSTER_TRANSIENT = ("cannot be connected", "not covered", "could not agree")
"""What the cluster client's plain ``RedisClusterException`` says when no node answers, the slots are
not all covered or the nodes disagree on the slot map: the state of a failover, not a bug."""


class ErrorSchema(Schema):
    """The body of every error response."""

    error = fields.String(required=True, metadata={"description": "What went wrong, for people"})
    details = fields.Raw(
        allow_none=True,
        metadata={"description": "More about it, e.g. the validation messages per field, or null"},
    )
    message = fields.String(
        metadata={"description": "Only on the seed's 'no data' 404s: the same text as `error`"}
    )


class NoData(RediSolarError):
    """A 404 that is not a missing resource: the query matched no data (the seed answers ``message``)."""

    status = 404


class PayloadTooLarge(RediSolarError):
    """A request within the byte limit but with too many items (HTTP 413)."""

    status = 413


class UnsupportedMediaType(RediSolarError):
    """A request body that is not JSON (HTTP 415)."""

    status = 415


def error_response(status: int, error: str, details: Any = None, **extra: Any) -> Response:
    """The JSON error response ``{"error", "details", **extra}`` with ``status``."""
    response = jsonify({"error": error, "details": details, **extra})
    response.status_code = status
    if status in RETRY_STATUSES:
        seconds = current_app.config.get("RETRY_AFTER_SECONDS", DEFAULTS["RETRY_AFTER_SECONDS"])
        response.headers["Retry-After"] = str(seconds)
    return response


def _domain_error(exc: RediSolarError) -> Response:
    if exc.status == 503:
        log.warning("storage unavailable: %s", exc.message)
    elif exc.status >= 500:
        return _unexpected(exc)
    extra = {"message": exc.message} if isinstance(exc, NoData) else {}
    return error_response(exc.status, exc.message, exc.details, **extra)


def _validation_error(exc: ValidationError) -> Response:
    return error_response(400, VALIDATION_FAILED, exc.messages)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    data: Mapping[str, Any] = getattr(exc, "data", None) or {}
    if "messages" in data:  # webargs: a request part failed its schema, or is no JSON at all
        details = unwrap_locations(data["messages"])
        error = details[0].rstrip(".") if isinstance(details, list) and details else VALIDATION_FAILED
        response = error_response(status, str(error), details)
    elif status >= 500:
        response = error_response(status, INTERNAL_ERROR if status == 500 else exc.name)
    else:
        response = error_response(status, exc.description or exc.name)
    for name, value in exc.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def unwrap_locations(messages: Any) -> Any:
    """webargs' ``{"json": {...}}`` as ``{...}`` (requests fail in one location at a time)."""
    if isinstance(messages, Mapping) and len(messages) == 1:
        ((location, inner),) = messages.items()
        if location in ("json", "query", "querystring", "view_args", "path", "form"):
            return inner
    return messages


def _redis_unavailable(exc: Exception) -> Response:
    if is_auth_failure(exc):
        return _misconfigured(exc)
    log.warning("Redis unavailable: %s: %s", type(exc).__name__, exc)
    return error_response(503, REDIS_UNAVAILABLE)


def is_store_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means "the store cannot answer now, try again shortly" (a 503), not a bug."""
    if isinstance(exc, REDIS_UNAVAILABLE_ERRORS):
        return not is_auth_failure(exc)
    message = str(exc.args[0]) if exc.args else ""
    return isinstance(exc, redis_errors.RedisClusterException) and any(
        part in message for part in _CLUSTER_TRANSIENT
    )


def _cluster_exception(exc: redis_errors.RedisClusterException) -> Response:
    """The cluster client's generic exception: a 503 while the cluster is unreachable or moving, else
    a programming error (500)."""
    return _redis_unavailable(exc) if is_store_unavailable(exc) else _unexpected(exc)


def _misconfigured(exc: Exception) -> Response:
    """Redis refused the credentials: retrying will not help, so not a 503. Logged once per app."""
    if not current_app.extensions.get(_AUTH_LOGGED):
        current_app.extensions[_AUTH_LOGGED] = True
        log.error("Redis refused the configured credentials (%s): %s", type(exc).__name__, AUTH_HINT)
    return error_response(500, MISCONFIGURED)


def _storage_full(exc: Exception) -> Response:
    log.warning("Redis is out of memory (maxmemory reached): a write was refused")
    return error_response(507, STORAGE_FULL)


def _response_error(exc: redis.ResponseError) -> Response:
    """A Redis error reply: out of memory, refused credentials, or unexpected (a generic 500)."""
    if is_out_of_memory(exc):
        return _storage_full(exc)
    if is_auth_failure(exc):
        return _misconfigured(exc)
    return _unexpected(exc)


def _concurrent_change(exc: redis.WatchError) -> Response:
    log.info("concurrent modification: %s", exc)
    return error_response(409, "The record changed while it was being written; retry the request")


def _unexpected(exc: Exception) -> Response:
    log.exception("unexpected error while serving a request")
    return error_response(500, INTERNAL_ERROR)


def remembered_error() -> BaseException | None:
    """The exception the current request's answer was made from, if any (for the metrics' reasons)."""
    error: BaseException | None = g.get("error")
    return error


def _remembering(handler: Callable[[Any], Response]) -> Callable[[Any], Response]:
    def handle(exc: Any) -> Response:
        g.error = exc
        return handler(exc)

    return handle


def register_error_handlers(app: Flask) -> None:
    """Install the handlers above on ``app`` (replacing flask-smorest's envelope); each remembers
    its exception for the request's metrics (:func:`remembered_error`)."""
    handlers: list[tuple[type[Exception], Callable[[Any], Response]]] = [
        (RediSolarError, _domain_error),
        (ValidationError, _validation_error),
        (HTTPException, _http_error),
        *((error, _redis_unavailable) for error in REDIS_UNAVAILABLE_ERRORS),
        (redis_errors.RedisClusterException, _cluster_exception),
        (redis_errors.AuthenticationError, _misconfigured),
        (redis_errors.AuthorizationError, _misconfigured),
        (redis.ResponseError, _response_error),
        (redis.WatchError, _concurrent_change),
        (Exception, _unexpected),
    ]
    for error, handler in handlers:
        app.register_error_handler(error, _remembering(handler))

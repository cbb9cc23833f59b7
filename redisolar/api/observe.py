"""The request hooks that observe every request: its id, its metrics and its access line.

- **Request id**: a client's ``X-Request-ID`` is kept when it is sane (1-128 characters of letters,
  digits and ``._:-``: it ends up in logs), else a new one is made (32 hex digits). Every response
  carries it in ``X-Request-ID``, errors included (an ``after_request`` hook runs for the error
  handlers' answers and the auth checks' refusals alike), and every log line written while the
  request is served shows it (:class:`redisolar.logs.RequestIdFilter`).
- **Metrics** (:mod:`redisolar.metrics`): requests by route, method and status; latency; readings
  stored; refused readings by reason; 429s by budget. ``/metrics`` itself is not counted.
- **Access line**: one line per request on the ``redisolar.access`` logger (method, route, path
  without its query, status, duration in ms, request id); ``--access-log`` turns it on. Never a
  header, never a query string (secrets travel there).

The hooks are installed first (:func:`init_observe`), so the start time precedes the auth checks and
the last ``after_request`` to run is this one, which sees the final status.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Request, Response, g, request

from redisolar import metrics
from redisolar.api.errors import remembered_error
from redisolar.auth.policy import SAFE_METHODS, WRITE_SITE_ENDPOINTS
from redisolar.errors import InvalidReading
from redisolar.logs import ACCESS_LOGGER

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
METRICS_ENDPOINT = "metrics.metrics"
BATCH_ENDPOINT = "analytics.add_meter_readings_batch"
REJECTION_REASONS = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "unknown_site",
    413: "too_large",
    415: "not_json",
    429: "rate_limited",
    503: "unavailable",
    507: "storage_full",
}
"""Status → the ``reason`` of a refused readings POST (others: ``error``)."""

access_log = logging.getLogger(ACCESS_LOGGER)


def init_observe(app: Flask) -> None:
    """Install the hooks on ``app`` (before any other request hook)."""
    app.before_request(start_request)
    app.after_request(finish_request)


def start_request() -> None:
    """``before_request``: the start time and the request id."""
    ctx_g = g._get_current_object()  # (one proxy lookup, not one per use)
    ctx_g.request_start = time.perf_counter()
    given = request.headers.get(REQUEST_ID_HEADER)
    ctx_g.request_id = given if given is not None and _SANE_ID.match(given) else uuid.uuid4().hex


def finish_request(response: Response) -> Response:
    """``after_request``: the id header, the metrics and the access line."""
    req: Request = request._get_current_object()  # type: ignore[attr-defined]
    ctx_g = g._get_current_object()
    request_id = getattr(ctx_g, "request_id", None) or uuid.uuid4().hex
    response.headers[REQUEST_ID_HEADER] = request_id
    seconds = time.perf_counter() - getattr(ctx_g, "request_start", time.perf_counter())
    rule = req.url_rule
    route = rule.rule if rule is not None else None
    if req.endpoint != METRICS_ENDPOINT:
        metrics.record_request(route, req.method, response.status_code, seconds)
        _count_domain(req, response)
    if access_log.isEnabledFor(logging.INFO):
        _log_access(route, response.status_code, seconds, request_id)
    return response


def _count_domain(req: Request, response: Response) -> None:
    status = response.status_code
    if status == 429:
        metrics.RATE_LIMITED.labels("reads" if req.method in SAFE_METHODS else "writes").inc()
    if req.endpoint not in WRITE_SITE_ENDPOINTS or req.method != "POST":
        return
    if status < 300:
        metrics.READINGS_INGESTED.inc(_stored(response))
    elif status >= 400:
        metrics.READINGS_REJECTED.labels(rejection_reason(status)).inc()


def _stored(response: Response) -> int:
    """Readings a successful POST stored: 1, or a batch's ``count``."""
    if request.endpoint != BATCH_ENDPOINT:
        return 1
    body = response.get_json(silent=True)
    count = body.get("count") if isinstance(body, dict) else None
    return count if isinstance(count, int) else 0


def rejection_reason(status: int) -> str:
    """Why a readings POST was refused: by status, and ``outside_retention`` for a reading older than
    its site's retention window (:class:`~redisolar.errors.InvalidReading`)."""
    if status == 400 and isinstance(remembered_error(), InvalidReading):
        return "outside_retention"
    return REJECTION_REASONS.get(status, "error")


def _log_access(route: str | None, status: int, seconds: float, request_id: str) -> None:
    duration_ms = round(seconds * 1000, 3)
    access_log.info(
        "%s %s %d %.1f ms", request.method, request.path, status, duration_ms,
        extra={"request_id": request_id, "method": request.method, "route": route or metrics.UNMATCHED,
               "path": request.path, "status": status, "duration_ms": duration_ms},
    )  # fmt: skip

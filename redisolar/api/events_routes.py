"""The event stream and webhooks.

- ``GET /api/events`` (a read): Server-Sent Events of ``events:{events}`` (:mod:`redisolar.events.sse`):
  ``Last-Event-ID`` (header, or ``last_event_id`` in the query for clients that cannot set headers)
  resumes after that id; ``site_id`` keeps one site's events; 400 for a malformed id, 503 with
  ``Retry-After`` when this worker already serves ``EVENTS_MAX_STREAMS`` streams.
- ``POST/GET /api/webhooks``, ``DELETE /api/webhooks/<id>``, ``GET /api/webhooks/<id>/deliveries``
  (admins only): register (201 with the secret, shown this once), list (no secrets), delete (204),
  the delivery log (newest first).
"""

from __future__ import annotations

from typing import Any

import flask
from flask import Response, stream_with_context
from marshmallow import Schema, fields, validate

from redisolar.api.common import Blueprint, services
from redisolar.api.errors import error_response
from redisolar.errors import InvalidInput, InvalidQuery
from redisolar.events.sse import Slots, SseLimits, body, parse_id
from redisolar.events.stream import NOTIFY_KINDS, EventKeys
from redisolar.events.webhooks import (
    DEFAULT_KINDS,
    MAX_WEBHOOKS,
    WebhookStore,
    check_url,
)

events_bp = Blueprint("events", __name__, url_prefix="/api/events", description="Event stream (SSE)")
webhooks_bp = Blueprint("webhooks", __name__, url_prefix="/api/webhooks", description="Webhooks (admin)")

_slots: dict[int, Slots] = {}


class EventsQuerySchema(Schema):
    site_id = fields.Integer(strict=False, validate=validate.Range(1, 2**53 - 1))
    last_event_id = fields.String(validate=validate.Length(max=45))


def limits() -> SseLimits:
    """The stream limits of this app (``EVENTS_*`` config keys over :class:`SseLimits`' defaults)."""
    config = flask.current_app.config
    default = SseLimits()
    return SseLimits(
        heartbeat=float(config.get("EVENTS_HEARTBEAT_SECONDS", default.heartbeat)),
        lifetime=float(config.get("EVENTS_STREAM_SECONDS", default.lifetime)),
        max_streams=int(config.get("EVENTS_MAX_STREAMS", default.max_streams)),
    )


def slots(limit: int) -> Slots:
    """This process's stream slots (one table per limit, made on first use)."""
    return _slots.setdefault(limit, Slots(limit))


@events_bp.route("", methods=["GET"])
@events_bp.arguments(EventsQuerySchema, location="query")
@events_bp.response(200, content_type="text/event-stream", description="Server-Sent Events")
@events_bp.errors(400)
def stream_events(args: dict[str, Any]) -> Response:
    """Server-Sent Events: ``reading`` (a site's newest values), ``rank`` (a site moved into, out of or
    within the top 10 of today's generation or efficiency board), ``alert.opened``/``alert.resolved``,
    ``gap`` (events were trimmed past ``Last-Event-ID``); ``id`` is the stream id to resume from."""
    last = flask.request.headers.get("Last-Event-ID") or args.get("last_event_id")
    if last is not None and parse_id(last) is None:
        raise InvalidQuery("Last-Event-ID must be a stream id (MS-SEQ)", {"Last-Event-ID": last[:45]})
    svc = services()
    bounds = limits()
    table = slots(bounds.max_streams)
    if not table.take():  # (a 503 with Retry-After; not logged as a storage failure)
        return error_response(
            503, f"This worker serves {bounds.max_streams} event streams already; poll instead"
        )
    block = min(bounds.heartbeat, svc.settings.redis.socket_timeout / 2)
    text = body(
        svc.redis, EventKeys.of(svc.keys).stream, last, bounds, block_s=block, site_id=args.get("site_id")
    )
    response = Response(stream_with_context(text), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    response.call_on_close(table.give)
    return response


class WebhookCreateSchema(Schema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    kinds = fields.List(
        fields.String(validate=validate.OneOf(sorted(NOTIFY_KINDS))),
        load_default=lambda: list(DEFAULT_KINDS),
        validate=validate.Length(min=1, max=len(NOTIFY_KINDS)),
    )


class WebhookSchema(Schema):
    id = fields.String(required=True)
    url = fields.String(required=True)
    kinds = fields.List(fields.String(), required=True)
    created = fields.Integer(required=True, metadata={"description": "ms since the epoch"})


class WebhookCreatedSchema(WebhookSchema):
    secret = fields.String(required=True, metadata={"description": "The signing secret: shown once"})


class WebhookListSchema(Schema):
    webhooks = fields.List(fields.Nested(WebhookSchema), required=True)


class DeliverySchema(Schema):
    delivery = fields.String()
    event_id = fields.String()
    kind = fields.String()
    attempt = fields.Integer()
    at = fields.Integer()
    state = fields.String(metadata={"description": "delivered, retrying or failed"})
    http_status = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    next_attempt = fields.Integer(allow_none=True)


class DeliveryListSchema(Schema):
    deliveries = fields.List(fields.Nested(DeliverySchema), required=True)


def store() -> WebhookStore:
    svc = services()
    return WebhookStore(svc.redis, svc.keys)


@webhooks_bp.route("", methods=["POST"])
@webhooks_bp.arguments(WebhookCreateSchema)
@webhooks_bp.response(201, WebhookCreatedSchema)
@webhooks_bp.errors(413, 415)
def create_webhook(data: dict[str, Any]) -> dict[str, Any]:
    """Register a URL for alert events; the answer holds its signing secret, shown this once."""
    why = check_url(data["url"])
    if why is not None:
        raise InvalidInput(f"The webhook URL must be {why}", {"url": [why]})
    hooks = store()
    if hooks.count() >= MAX_WEBHOOKS:
        raise InvalidInput(f"At most {MAX_WEBHOOKS} webhooks", {"url": ["too many webhooks"]})
    hook = hooks.register(data["url"], data["kinds"])
    return {**hook.public(), "secret": hook.secret}


@webhooks_bp.route("", methods=["GET"])
@webhooks_bp.response(200, WebhookListSchema)
@webhooks_bp.errors()
def list_webhooks() -> dict[str, Any]:
    """Every webhook, oldest first, without secrets."""
    return {"webhooks": [hook.public() for hook in store().all()]}


@webhooks_bp.route("/<key_id:webhook_id>", methods=["DELETE"])
@webhooks_bp.response(204)
@webhooks_bp.errors(404)
def delete_webhook(webhook_id: str) -> Response:
    """Delete a webhook and its log; no more deliveries to it."""
    store().delete(webhook_id)
    return Response(status=204)


@webhooks_bp.route("/<key_id:webhook_id>/deliveries", methods=["GET"])
@webhooks_bp.response(200, DeliveryListSchema)
@webhooks_bp.errors(404)
def list_deliveries(webhook_id: str) -> dict[str, Any]:
    """The webhook's newest 100 delivery attempts, newest first."""
    return {"deliveries": store().deliveries(webhook_id)}

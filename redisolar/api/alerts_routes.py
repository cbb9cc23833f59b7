"""Alerts: ``GET /api/alerts`` (a page of the fleet's, or a site's), ``GET /api/alerts/site/<id>`` (a
site's history), and the rules (admins only): ``GET/POST /api/alerts/rules``,
``GET/PUT/DELETE /api/alerts/rules/<rule_id>``, ``POST /api/alerts/evaluate`` (one pass now).

Decision: a site's history lives under ``/api/alerts/site/<id>`` (this blueprint owns every alert
route, as ``/api/analytics/...`` owns the readings); pages use an opaque ``cursor`` (``next_cursor``
in the body, null on the last page).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Response
from marshmallow import Schema, fields, validate

from redisolar.alerts import service
from redisolar.alerts.rules import (
    RULE_ID_PATTERN,
    RuleNotFound,
    RuleOutSchema,
    RuleSchema,
    rule_from_input,
    rule_out,
)
from redisolar.api.common import Blueprint, services
from redisolar.models.site import MAX_SITE_ID

alerts_bp = Blueprint("alerts", __name__, url_prefix="/api/alerts", description="Alerts and alert rules")


class AlertListArgs(Schema):
    """Which alerts."""

    state = fields.String(validate=validate.OneOf(service.STATES), load_default=None)
    site_id = fields.Integer(strict=False, validate=validate.Range(1, MAX_SITE_ID), load_default=None)
    limit = fields.Integer(validate=validate.Range(1, service.MAX_LIMIT), load_default=100)
    cursor = fields.Integer(validate=validate.Range(0, 10**9), load_default=0)


class AlertSchema(Schema):
    """One alert: when it opened (and resolved), and the values behind each."""

    id = fields.String(required=True)
    site_id = fields.Integer(required=True)
    rule_id = fields.String(required=True)
    kind = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(service.STATES))
    message = fields.String(required=True)
    opened_at = fields.String(required=True, metadata={"format": "date-time"})
    resolved_at = fields.String(required=True, allow_none=True, metadata={"format": "date-time"})
    values = fields.Dict(required=True)
    resolved_values = fields.Dict(required=True, allow_none=True)
    resolution = fields.String(required=True, allow_none=True)


class AlertPageSchema(Schema):
    alerts = fields.List(fields.Nested(AlertSchema), required=True)
    next_cursor = fields.Integer(required=True, allow_none=True)


class SiteAlertsSchema(Schema):
    site_id = fields.Integer(required=True)
    alerts = fields.List(fields.Nested(AlertSchema), required=True)


class RuleListSchema(Schema):
    rules = fields.List(fields.Nested(RuleOutSchema), required=True)


class PassSchema(Schema):
    """One evaluation pass (``ran`` false: another process was running one)."""

    ran = fields.Boolean(required=True)
    sites = fields.Integer(required=True)
    opened = fields.Integer(required=True)
    resolved = fields.Integer(required=True)
    open = fields.Integer(required=True)
    seconds = fields.Float(required=True)


RULE = "<rule_id>"


def _rule_id(rule_id: str) -> str:
    """``rule_id`` if it can be a rule's id, else 404 (it is not looked up)."""
    if not re.fullmatch(RULE_ID_PATTERN, rule_id):
        raise RuleNotFound(rule_id)
    return rule_id


@alerts_bp.route("/", methods=["GET"], strict_slashes=False)
@alerts_bp.arguments(AlertListArgs, location="query")
@alerts_bp.response(200, AlertPageSchema)
@alerts_bp.errors(404)
def list_alerts(args: dict[str, Any]) -> dict[str, Any]:
    """A page of alerts: the fleet's open ones by default (newest first), ``state=resolved`` for the
    resolved ones; with ``site_id`` that site's (any state unless ``state`` is given)."""
    page, cursor = service.list_alerts(
        services(), args["state"], args["site_id"], args["limit"], args["cursor"]
    )
    return {"alerts": page, "next_cursor": cursor}


@alerts_bp.route("/site/<site_id:site_id>", methods=["GET"])
@alerts_bp.response(200, SiteAlertsSchema)
@alerts_bp.errors(404)
def site_alerts(site_id: int) -> dict[str, Any]:
    """A site's alert history (the newest 200), newest first."""
    return {"site_id": site_id, "alerts": service.site_history(services(), site_id)}


@alerts_bp.route("/rules", methods=["GET"])
@alerts_bp.response(200, RuleListSchema)
@alerts_bp.errors()
def rule_list() -> dict[str, Any]:
    """Every alert rule (admin)."""
    return {"rules": service.list_rules(services())}


@alerts_bp.route("/rules", methods=["POST"])
@alerts_bp.arguments(RuleSchema)
@alerts_bp.response(201, RuleOutSchema)
@alerts_bp.errors(404, 409, 413, 415)
def rule_create(data: dict[str, Any]) -> dict[str, Any]:
    """Create a rule (admin): fleet-wide with ``site_id`` null, else for one site."""
    return service.create_rule(services(), rule_from_input(data))


@alerts_bp.route(f"/rules/{RULE}", methods=["GET"])
@alerts_bp.response(200, RuleOutSchema)
@alerts_bp.errors(404)
def rule_get(rule_id: str) -> dict[str, Any]:
    """One rule (admin)."""
    return rule_out(service.rules(services()).get(_rule_id(rule_id)))


@alerts_bp.route(f"/rules/{RULE}", methods=["PUT"])
@alerts_bp.arguments(RuleSchema)
@alerts_bp.response(200, RuleOutSchema)
@alerts_bp.errors(404, 413, 415)
def rule_replace(data: dict[str, Any], rule_id: str) -> dict[str, Any]:
    """Replace a rule (admin); its open alerts stay open while the new rule's condition holds."""
    return service.replace_rule(services(), rule_from_input(data, _rule_id(rule_id)))


@alerts_bp.route(f"/rules/{RULE}", methods=["DELETE"])
@alerts_bp.response(204)
@alerts_bp.errors(404)
def rule_delete(rule_id: str) -> Response:
    """Delete a rule (admin); its open alerts resolve at the next pass. 204, no body."""
    service.rules(services()).delete(_rule_id(rule_id))
    return Response(status=204)


@alerts_bp.route("/evaluate", methods=["POST"])
@alerts_bp.response(200, PassSchema)
@alerts_bp.errors()
def rule_evaluate() -> dict[str, Any]:
    """Run one evaluation pass now (admin), as the background evaluator does."""
    report = service.evaluate(services())
    if report is None:
        return {"ran": False, "sites": 0, "opened": 0, "resolved": 0, "open": 0, "seconds": 0.0}
    return {"ran": True, "sites": report.sites, "opened": report.opened, "resolved": report.resolved,
            "open": report.still_open, "seconds": round(report.seconds, 6)}  # fmt: skip

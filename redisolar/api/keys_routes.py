"""API keys (admins only): ``POST/GET /api/keys``, ``GET/DELETE /api/keys/<id>``.

- ``POST`` answers 201 with the key's metadata and ``key``, its secret, shown this once (only its
  SHA-256 is stored). ``write`` keys name their ``sites`` or set ``all_sites``.
- ``GET`` lists keys without secrets, oldest first: ``{"keys": [...]}``.
- ``DELETE`` revokes a key at once, in every process: 204, no body; 404 for an unknown id.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from marshmallow import Schema, fields, validate
from werkzeug.routing import BaseConverter

from redisolar.api.common import Blueprint, services
from redisolar.models.api_key import KEY_ID_PATTERN, MAX_SITES_PER_KEY, SCOPES, ApiKey
from redisolar.models.site import MAX_SITE_ID
from redisolar.services import keys as key_cases
from redisolar.services.keys import MAX_EXPIRES_DAYS

keys_bp = Blueprint("keys", __name__, url_prefix="/api/keys", description="API keys (admin)")
KEY_ID = "<key_id:key_id>"


class KeyIdConverter(BaseConverter):
    """``<key_id:name>``: an API key id, 12 lowercase hex digits (anything else matches no route)."""

    regex = KEY_ID_PATTERN
    part_isolating = True


def key_id_schema(converter: KeyIdConverter) -> dict[str, Any]:
    """The id's OpenAPI schema."""
    return {"type": "string", "pattern": f"^{KEY_ID_PATTERN}$"}


class ApiKeyCreateSchema(Schema):
    """A new key."""

    scope = fields.String(required=True, validate=validate.OneOf(SCOPES))
    sites = fields.List(
        fields.Integer(strict=True, validate=validate.Range(1, MAX_SITE_ID)),
        load_default=list,
        validate=validate.Length(max=MAX_SITES_PER_KEY),
        metadata={"description": "Sites a write key may post readings to"},
    )
    all_sites = fields.Boolean(load_default=False, metadata={"description": "A write key for every site"})
    name = fields.String(load_default="", validate=validate.Length(max=100))
    expires_days = fields.Float(
        load_default=None,
        allow_none=True,
        validate=validate.Range(0, MAX_EXPIRES_DAYS, min_inclusive=False),
        metadata={"description": "Days until the key stops working (none: never)"},
    )


class ApiKeySchema(Schema):
    """A key's metadata (never its secret)."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    scope = fields.String(required=True, validate=validate.OneOf(SCOPES))
    sites = fields.List(fields.Integer(), required=True)
    all_sites = fields.Boolean(required=True)
    created = fields.DateTime(required=True, allow_none=True)
    expires = fields.DateTime(required=True, allow_none=True)
    last_used = fields.DateTime(required=True, allow_none=True)


class ApiKeyCreatedSchema(ApiKeySchema):
    """A new key's metadata and its secret."""

    key = fields.String(required=True, metadata={"description": "The secret: shown once, never again"})


class ApiKeyListSchema(Schema):
    """Every key."""

    keys = fields.List(fields.Nested(ApiKeySchema), required=True)


@keys_bp.route("/", methods=["POST"], strict_slashes=False)
@keys_bp.arguments(ApiKeyCreateSchema)
@keys_bp.response(201, ApiKeyCreatedSchema)
@keys_bp.errors(413, 415)
def create_key(data: dict[str, Any]) -> dict[str, Any]:
    """Create a key; the answer holds its secret, shown this once."""
    key, secret = key_cases.create_api_key(services(), **data)
    return {**_fields(key), "key": secret}


@keys_bp.route("/", methods=["GET"], strict_slashes=False)
@keys_bp.response(200, ApiKeyListSchema)
@keys_bp.errors()
def list_keys() -> dict[str, Any]:
    """Every key, oldest first, without secrets."""
    return {"keys": [_fields(key) for key in key_cases.list_api_keys(services())]}


@keys_bp.route(f"/{KEY_ID}", methods=["GET"])
@keys_bp.response(200, ApiKeySchema)
@keys_bp.errors(404)
def get_key(key_id: str) -> dict[str, Any]:
    """One key's metadata."""
    return _fields(key_cases.get_api_key(services(), key_id))


@keys_bp.route(f"/{KEY_ID}", methods=["DELETE"])
@keys_bp.response(204)
@keys_bp.errors(404)
def revoke_key(key_id: str) -> Response:
    """Revoke a key: refused by the next request, in every process. 204, no body."""
    key_cases.revoke_api_key(services(), key_id)
    return Response(status=204)


def _fields(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "scope": key.scope,
        "sites": list(key.sites),
        "all_sites": key.all_sites,
        "created": key.created,
        "expires": key.expires,
        "last_used": key.last_used,
    }

"""The trust boundary in the OpenAPI document: security schemes, and per operation the keys it
accepts and the 401/403/415/429 answers it can give, from the same table the request hooks use
(:func:`redisolar.auth.policy.need_for`) and the app's ``AUTH_MODE``.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec, BasePlugin
from flask_smorest.utils import prepare_response
from marshmallow import Schema

from redisolar.auth.policy import SAFE_METHODS, Need, need_for

SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`rsk_…`): `Authorization: Bearer <key>`",
    },
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key"},
}
KEYED: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyHeader": []}]
_INT = {"schema": {"type": "integer"}}
_TEXT = {"schema": {"type": "string"}}
RATE_HEADERS = {
    "RateLimit-Policy": {"description": 'The budget, e.g. `"reads";q=1200;w=60`', **_TEXT},
    "RateLimit": {"description": 'What is left of it, e.g. `"reads";r=0;t=3`', **_TEXT},
}
RESPONSES: dict[str, dict[str, Any]] = {
    "UNAUTHORIZED": {
        "description": "No API key, or one that is unknown, revoked or expired",
        "headers": {"WWW-Authenticate": {"description": "`Bearer`", **_TEXT}},
    },
    "FORBIDDEN": {"description": "The key may not do this (scope, or sites of a write key)"},
    "TOO_MANY_REQUESTS": {
        "description": "Over the rate limit of the key (or of the client address)",
        "headers": {"Retry-After": {"description": "Seconds to wait", **_INT}, **RATE_HEADERS},
    },
}


def register_security(spec: APISpec, error_schema: type[Schema], content_type: str, mode: str) -> None:
    """Add the schemes and responses to ``spec``, and the plugin that documents each operation
    (before any blueprint is registered)."""
    for name, scheme in SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    for name, response in RESPONSES.items():
        full = {**response, "schema": error_schema}
        prepare_response(full, spec, content_type)
        spec.components.response(name, full)
    plugin = SecurityPlugin(mode)
    plugin.init_spec(spec)
    spec.plugins = [*spec.plugins, plugin]


class SecurityPlugin(BasePlugin):
    """Documents, per operation, which keys it accepts and the answers of the checks."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        rule = kwargs.get("rule")
        for method, operation in (operations or {}).items():
            need = need_for(getattr(rule, "endpoint", None), method.upper())
            operation["security"] = self.security(need)
            if need is Need.PUBLIC:
                continue
            responses = operation.setdefault("responses", {})
            statuses = {"429": "TOO_MANY_REQUESTS"}
            if self.mode != "off":
                statuses.update({"401": "UNAUTHORIZED", "403": "FORBIDDEN"})
            if method.upper() not in SAFE_METHODS:
                statuses["415"] = "UNSUPPORTED_MEDIA_TYPE"
                statuses["403"] = "FORBIDDEN"  # cross-site requests without a key, in every mode
            for status, name in statuses.items():
                responses.setdefault(status, name)

    def security(self, need: Need) -> list[dict[str, list[str]]]:
        """The security requirement of an operation: none, optional keys, or keys."""
        if need is Need.PUBLIC or self.mode == "off":
            return []
        optional = need is Need.READ and self.mode != "required"
        return [{}, *KEYED] if optional else list(KEYED)

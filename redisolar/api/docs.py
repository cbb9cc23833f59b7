"""The OpenAPI 3 document (``/api/openapi.json``) and interactive docs (``/api/docs``), offline.

flask-smorest builds the document from the schemas the routes parse and dump with. Swagger UI's
files come from the ``swagger-ui-bundle`` package and are served by the app itself
(``/api/docs/static/...``): the docs page needs no CDN.
"""

from __future__ import annotations

import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import flask
import flask_smorest
from flask_smorest.utils import prepare_response
from swagger_ui_bundle import swagger_ui_path

from redisolar.api.common import REDIS_UNAVAILABLE_RESPONSE, OtherThanConverter, SiteIdConverter
from redisolar.api.errors import ErrorSchema, register_error_handlers
from redisolar.api.keys_routes import KeyIdConverter, key_id_schema
from redisolar.api.security_doc import register_security
from redisolar.models.site import MAX_SITE_ID

DOCS_PREFIX = "/api"
SWAGGER_ASSETS_URL = "/api/docs/static"
DOC_ENDPOINTS = ("api-docs.", "swagger_ui_assets.")
"""Endpoint prefixes of the documentation itself (not described in the document)."""

API_CONFIG: dict[str, Any] = {
    "API_TITLE": "RediSolar",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": DOCS_PREFIX,
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": SWAGGER_ASSETS_URL + "/",
    "OPENAPI_SWAGGER_UI_CONFIG": {"validatorUrl": None},  # no call to validator.swagger.io: offline
    "API_SPEC_OPTIONS": {
        "info": {
            "description": "Solar-fleet monitoring on Redis. Every error answers "
            '`{"error": "...", "details": ...}`; 503 (with `Retry-After`) while Redis is unavailable. '
            "API keys go in `Authorization: Bearer <key>` or `X-API-Key`; which operations need one "
            "depends on the server's AUTH_MODE (docs/security.md). Limited responses carry the "
            "`RateLimit-Policy` and `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers-10)."
        }
    },
}


def _package_version() -> str:
    try:
        return version("redisolar")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0"


class Api(flask_smorest.Api):
    """flask-smorest's Api with RediSolar's error envelope (documented and answered)."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        register_error_handlers(self._app)

    def _register_responses(self) -> None:
        super()._register_responses()
        response = {
            "description": "Redis is unavailable; retry after the given seconds",
            "schema": self.ERROR_SCHEMA,
            "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
        }
        prepare_response(response, self.spec, self.DEFAULT_RESPONSE_CONTENT_TYPE)
        self.spec.components.response(REDIS_UNAVAILABLE_RESPONSE, response)


def init_api(app: flask.Flask, *blueprints: flask_smorest.Blueprint) -> Api:
    """Register ``blueprints`` on ``app`` with their documentation, the docs routes and error handlers."""
    for key, value in API_CONFIG.items():
        app.config.setdefault(key, value)
    app.config.setdefault("API_VERSION", _package_version())
    app.url_map.converters["site_id"] = SiteIdConverter
    app.url_map.converters["other_than"] = OtherThanConverter
    app.url_map.converters["key_id"] = KeyIdConverter
    api = Api(app)
    api.register_converter(SiteIdConverter, _site_id_schema)
    api.register_converter(KeyIdConverter, key_id_schema)
    register_security(api.spec, Api.ERROR_SCHEMA, api.DEFAULT_RESPONSE_CONTENT_TYPE, app.config["AUTH_MODE"])
    with warnings.catch_warnings():
        # The site text fields have two Regexp validators (not blank, no control characters); the
        # document can show one pattern, and apispec warns about the other.
        warnings.filterwarnings("ignore", "More than one regex validator", UserWarning)
        for blueprint in blueprints:
            api.register_blueprint(blueprint)
    app.register_blueprint(
        flask.Blueprint(
            "swagger_ui_assets",
            __name__,
            static_folder=str(swagger_ui_path),
            static_url_path=SWAGGER_ASSETS_URL,
        )
    )
    return api


def _site_id_schema(converter: SiteIdConverter) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": MAX_SITE_ID}

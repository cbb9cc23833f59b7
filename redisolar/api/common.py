"""What every API blueprint shares: the request parser, the Blueprint class, the site-id converter,
the services accessor and the documentation of error responses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from copy import deepcopy
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import flask
import flask_smorest
from marshmallow import Schema
from webargs import core as webargs_core
from webargs.flaskparser import FlaskParser, abort
from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter

from redisolar.api.errors import UnsupportedMediaType
from redisolar.errors import InvalidInput, InvalidQuery
from redisolar.models.site import MAX_SITE_ID
from redisolar.services import Services
from redisolar.timeutil import utcnow

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_WINDOW = timedelta(hours=24)

ERROR_RESPONSES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "REQUEST_ENTITY_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}
"""Status → the name of its documented response component (registered by flask-smorest)."""

REDIS_UNAVAILABLE_RESPONSE = "REDIS_UNAVAILABLE"
"""The documented 503 (with its Retry-After header), registered by :mod:`redisolar.api.docs`."""


class RequestParser(FlaskParser):
    """webargs' Flask parser, strict about bodies: validation errors are 400s (not 422); an empty body
    is a 400, a body that is not ``application/json`` (or ``+json``) a 415, malformed JSON a 400."""

    DEFAULT_VALIDATION_STATUS = 400

    def __init__(self) -> None:
        super().__init__()
        self._schemas: dict[type[Schema], Schema] = {}

    def _get_schema(self, argmap: Any, req: flask.Request) -> Schema:
        """The schema of ``argmap``: one instance per schema class, made once (webargs makes one per
        request, and a marshmallow schema deep-copies its fields when made: most of the cost of
        parsing a query string). A schema instance keeps no state between loads."""
        if isinstance(argmap, type) and issubclass(argmap, Schema):
            schema = self._schemas.get(argmap)
            if schema is None:
                schema = self._schemas[argmap] = argmap()
            return schema
        return super()._get_schema(argmap, req)

    def load_json(self, req: flask.Request, schema: Schema) -> Any:
        if not req.get_data(cache=True):  # reading the body enforces MAX_CONTENT_LENGTH (413)
            abort(400, messages={"json": ["A JSON request body is required."]})
        if not webargs_core.is_json(req.mimetype):
            given = req.mimetype or "no Content-Type"
            raise UnsupportedMediaType(f"The request body must be application/json, not {given}")
        try:
            return super().load_json(req, schema)
        except RecursionError:
            abort(400, messages={"json": ["The JSON body is nested too deeply."]})


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest Blueprint that parses with :class:`RequestParser`."""

    ARGUMENTS_PARSER = RequestParser()

    def body(self, schema: type[Schema] | Schema, *, description: str | None = None) -> Callable[[F], F]:
        """Document ``schema`` as the JSON request body (and its 400), as ``arguments`` does, without
        parsing anything: the view reads the body with :func:`json_body` and its compiled validator,
        and the schema only documents the shape."""
        parameter: dict[str, Any] = {"in": "json", "required": True, "schema": schema}
        if description is not None:
            parameter["description"] = description

        def decorate(func: F) -> F:
            apidoc = deepcopy(getattr(func, "_apidoc", {}))
            docs = apidoc.setdefault("arguments", {})
            docs.setdefault("parameters", []).append(parameter)
            docs.setdefault("responses", {})[400] = "BAD_REQUEST"
            func._apidoc = apidoc  # type: ignore[attr-defined]
            return func

        return decorate

    def errors(self, *statuses: int) -> Callable[[F], F]:
        """Document the error responses a view can give: ``statuses``, and 503 (Redis unavailable).

        flask-smorest documents the 400 of a view with ``@arguments`` and the catch-all "default"
        (500) itself.
        """

        def decorate(func: F) -> F:
            for status in statuses:
                func = self.alt_response(status, response=ERROR_RESPONSES[status])(func)
            return cast(F, self.alt_response(503, response=REDIS_UNAVAILABLE_RESPONSE)(func))

        return decorate


class SiteIdConverter(BaseConverter):
    """``<site_id:name>``: a site id in a path, decimal digits for 1 to 2**53-1.

    A path whose segment is not 1 to 16 ASCII digits (``abc``, ``-1``) matches no route; digits that no
    site can have (``0``, above 2**53-1) are a 404 "No site can have the id ..." whatever the method.
    """

    regex = r"[0-9]{1,16}"  # ASCII digits only; longer is beyond 2**53 anyway
    part_isolating = True
    weight = 50

    def to_python(self, value: str) -> int:
        site_id = int(value)
        if not 1 <= site_id <= MAX_SITE_ID:
            raise NotFound(f"No site can have the id {value} (ids are 1 to {MAX_SITE_ID})")
        return site_id

    def to_url(self, value: Any) -> str:
        return str(int(value))


class OtherThanConverter(BaseConverter):
    """``<other_than(word, ...):name>``: one path segment, except the given words.

    For a segment whose sibling paths are other resources: ``/readings/<id>/batch`` is POST-only, so
    ``GET .../batch`` must be a 405 with ``Allow: POST`` (as documented), not a GET of the metric "batch".
    """

    part_isolating = True

    def __init__(self, url_map: Any, *words: str) -> None:
        super().__init__(url_map)
        self.regex = "(?!(?:{})$)[^/]+".format("|".join(re.escape(word) for word in words))


def json_body() -> bytes:
    """The request's JSON body, as bytes: 400 if empty, 415 unless ``application/json`` (or
    ``+json``), 413 past ``MAX_CONTENT_LENGTH`` (as :class:`RequestParser` answers)."""
    request = flask.request
    data = request.get_data(cache=True)
    if not data:
        raise InvalidInput("A JSON request body is required", ["A JSON request body is required."])
    if not webargs_core.is_json(request.mimetype):
        given = request.mimetype or "no Content-Type"
        raise UnsupportedMediaType(f"The request body must be application/json, not {given}")
    return data


def services() -> Services:
    """The :class:`Services` of the current app."""
    return cast(Services, flask.current_app.extensions["redisolar"])


def time_range(args: dict[str, Any]) -> tuple[datetime, datetime]:
    """The ``[start, end)`` of parsed query ``args``: ``end`` defaults to now, ``start`` to 24 h
    before ``end``. Raises :class:`InvalidQuery` (400) unless ``start < end``."""
    end: datetime = args.get("end") or utcnow()
    start: datetime = args.get("start") or end - DEFAULT_WINDOW
    if end <= start:
        raise InvalidQuery(
            "The end of the range must be after its start",
            {"start": start.isoformat(), "end": end.isoformat()},
        )
    return start, end

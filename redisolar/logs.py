"""How RediSolar writes its logs: ``LOG_FORMAT=text`` (people) or ``json`` (one JSON object a line).

A JSON line holds ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``, ``message``, the
request's ``request_id`` (when logged while serving a request), the access line's ``method``,
``route``, ``path``, ``status`` and ``duration_ms`` (:mod:`redisolar.api.observe`), and ``exception``
(the traceback) when there is one.

No secret is written, whatever a caller passes: every line goes through :func:`redact`, which masks
the password of a URL (``redis://user:***@host``), a bearer token and an ``X-API-Key`` value, and the
keys RediSolar issues (``rsk_…``). The request hooks never log headers or query strings.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")
TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
ACCESS_LOGGER = "redisolar.access"
"""The logger of the one access line per request (on with ``--access-log``)."""
REQUEST_FIELDS = ("request_id", "method", "route", "path", "status", "duration_ms")
"""Attributes a record may carry (``extra=``) that a JSON line shows as fields of their own."""

_SECRETS = (
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@"), r"\1***@"),  # URL passwords
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1***"),
    (re.compile(r"(?i)(x-api-key['\"]?\s*[:=]\s*['\"]?)[^\s'\",]+"), r"\1***"),
    (re.compile(r"\brsk_[A-Za-z0-9_-]+"), "rsk_***"),
)


def redact(text: str) -> str:
    """``text`` with the secrets it might hold masked (see the module's docstring)."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """The text format, redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a line (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, default=str, ensure_ascii=False))


class RequestIdFilter(logging.Filter):
    """Adds the current request's id to a record logged while a request is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = _current_request_id()
        return True


def _current_request_id() -> str | None:
    from flask import g, has_request_context  # (logging is configured before any app exists)

    return g.get("request_id") if has_request_context() else None


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``LOG_FORMAT``."""
    return JsonFormatter() if log_format == "json" else RedactingFormatter(TEXT_FORMAT)


def configure_logging(level: str, log_format: str = "text", *, access_log: bool = False) -> None:
    """The process's root handler (stderr) in ``log_format``; the access logger on or off."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO if access_log else logging.WARNING)


def granian_formatters(log_format: str) -> dict[str, dict[str, Any]]:
    """The ``formatters`` of Granian's logging configuration, in ``log_format``."""
    if log_format == "json":
        return {"generic": {"()": JsonFormatter}, "access": {"()": JsonFormatter}}
    return {
        "generic": {"()": RedactingFormatter, "fmt": TEXT_FORMAT},
        "access": {"()": RedactingFormatter, "fmt": "%(message)s"},
    }

"""The Flask application factory (the seed's Step 8): ``create_app(config_name, test_config)``.

``create_app`` reads and validates the configuration (:mod:`redisolar.settings`), builds one
:class:`~redisolar.services.Services` (one pooled Redis client and the DAOs) kept in
``app.extensions["redisolar"]``, and registers the API blueprints, their OpenAPI document and the
error handlers. Nothing connects to Redis here or at import time: the app can be created while Redis
is down and serves 503s until it is back. The leaderboard reconciler thread is not started here
(``redisolar serve`` starts it in one process).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask

from redisolar.api.alerts_routes import alerts_bp
from redisolar.api.analytics_routes import analytics_bp
from redisolar.api.docs import init_api
from redisolar.api.events_routes import events_bp, webhooks_bp
from redisolar.api.json import StrictJSONProvider
from redisolar.api.keys_routes import keys_bp
from redisolar.api.metrics_routes import metrics_bp
from redisolar.api.observe import init_observe
from redisolar.api.routes import sites_bp
from redisolar.api.service_routes import service_bp
from redisolar.auth.checks import init_auth
from redisolar.metrics import instrument_redis, record_reconcile
from redisolar.models.site import configure_clock_skew, configure_reading_bounds
from redisolar.services import Services, build_services
from redisolar.settings import ConfigError, load_config, settings_from_config
from redisolar.web import init_app as init_web

log = logging.getLogger(__name__)

ENV_INSTANCE_PATH = "REDISOLAR_INSTANCE_PATH"
"""Environment variable naming the folder of the ``<config_name>.cfg`` files (default ``instance/``)."""


def create_app(config_name: str | None = None, test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application.

    ``config_name`` defaults to ``$REDISOLAR_CONFIG``, else ``dev``. Configuration, each layer
    overriding the previous: built-in defaults, ``instance/<config_name>.cfg``
    (optional), ``REDISOLAR_*`` environment variables, ``test_config``. Raises
    :class:`~redisolar.settings.ConfigError` (a ValueError) naming a bad setting.
    """
    config_name = config_name or os.environ.get("REDISOLAR_CONFIG") or "dev"
    app = Flask("redisolar", instance_relative_config=True, instance_path=_instance_path())
    load_config(app.config, config_name, test_config)
    configure_clock_skew(timedelta(seconds=app.config["CLOCK_SKEW_SECONDS"]))
    configure_reading_bounds(app.config["MAX_READING_WH"])
    app.json = StrictJSONProvider(app)  # never NaN/Infinity in a body (RFC 8259)
    app.extensions["redisolar"] = services = build_services(settings_from_config(app.config))
    instrument_redis(services.redis)  # Redis round trips and errors in /metrics
    services.updater.on_pass = record_reconcile
    init_api(app, service_bp, sites_bp, analytics_bp, keys_bp, metrics_bp, alerts_bp, events_bp, webhooks_bp)
    init_observe(app)  # first: request ids, metrics, access lines (redisolar.api.observe)
    init_auth(app)  # API keys, rate limits, cross-site refusals (docs/security.md)
    init_web(app)  # the dashboard: /dashboard, /sites/<id>; GET / for browsers
    log.info("app created: config %r, Redis at %s", config_name, get_services(app).settings.redis.describe())
    return app


def get_services(app: Flask) -> Services:
    """The :class:`Services` an app was built with (for the CLI and tests)."""
    services: Services = app.extensions["redisolar"]
    return services


def _instance_path() -> str | None:
    path = os.environ.get(ENV_INSTANCE_PATH)
    if path is not None and not os.path.isabs(path):
        raise ConfigError(f"{ENV_INSTANCE_PATH} must be an absolute path, got {path!r}")
    return path


__all__ = ["ConfigError", "create_app", "get_services"]

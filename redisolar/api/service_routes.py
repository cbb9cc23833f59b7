"""The service's own routes: ``GET /`` (the seed's index) and ``GET /health``.

- ``GET /`` answers the seed's JSON, also while Redis is down (``redis_connected: false``,
  ``redis_info: null``). A client that prefers ``text/html`` (a browser) gets the dashboard instead,
  once a blueprint registers the endpoint :data:`DASHBOARD_ENDPOINT` (the hook for the web UI).
- ``GET /health`` answers 200 ``healthy`` when Redis answers and has room, else 503 ``unhealthy`` with
  the error fields of every error response: Redis unreachable (with ``Retry-After``), Redis out of
  memory (``storage: "full"``, with ``Retry-After``), or Redis refusing the credentials (``redis.error``
  says which settings to check; no ``Retry-After``: waiting will not fix it). The body never holds a
  password.
- On a Redis Cluster (``REDIS_CLUSTER``) ``/health`` also reports ``cluster``: ``state``, ``nodes``,
  ``masters`` and ``slots_covered`` as the first reachable primary of the client's slot map sees them
  (``CLUSTER INFO``/``CLUSTER NODES``); a state other than ``ok`` is a 503. ``version`` and ``storage``
  come from every reachable primary (``full`` if any one is full).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis
from flask import current_app, request

from redisolar import store
from redisolar.api import render
from redisolar.api.common import Blueprint, services
from redisolar.api.errors import MISCONFIGURED, REDIS_UNAVAILABLE, STORAGE_FULL
from redisolar.api.schemas import HealthSchema, IndexSchema
from redisolar.auth.checks import may_see_details
from redisolar.config import Config
from redisolar.redis_faults import AUTH_HINT, StorageState, is_auth_failure, storage_state

DASHBOARD_ENDPOINT = "web.dashboard"
"""The endpoint ``GET /`` hands browsers to, when some blueprint registers it."""

ENDPOINTS = {
    "sites": [
        "GET /api/sites - Get all sites",
        "GET /api/sites/<id> - Get specific site",
        "POST /api/sites - Create new site",
        "PUT /api/sites/<id> - Update site",
        "DELETE /api/sites/<id> - Delete site",
        "GET /api/sites/search - Search sites",
        "GET /api/sites/stats - Get site statistics",
    ],
    "analytics": [
        "POST /api/analytics/readings/<site_id> - Add meter reading",
        "POST /api/analytics/readings/<site_id>/batch - Add multiple readings",
        "GET /api/analytics/readings/<site_id>/<metric> - Get time-series data",
        "GET /api/analytics/readings/<site_id>/latest - Get latest readings",
        "GET /api/analytics/analytics/<site_id> - Get site analytics",
        "GET /api/analytics/leaderboards/<type> - Get leaderboard",
        "GET /api/analytics/leaderboards/<type>/site/<site_id> - Get a site's position",
        "POST /api/analytics/leaderboards/update - Reconcile the leaderboards now",
        "GET /api/analytics/summary - Get overall summary",
    ],
    "service": [
        "GET /health - Health check",
        "GET /api/openapi.json - OpenAPI 3 document",
        "GET /api/docs - Interactive API documentation",
    ],
}

service_bp = Blueprint("service", __name__, description="The service: index and health")


@service_bp.route("/", methods=["GET"])
@service_bp.response(200, IndexSchema)
def index() -> Any:
    """The seed's index: the API is running, whether Redis answers, and the routes."""
    dashboard = current_app.view_functions.get(DASHBOARD_ENDPOINT)
    if dashboard is not None and _prefers_html():
        return dashboard()
    version = _redis_version()
    return {
        "message": "RediSolar API is running!",
        "redis_connected": version is not None,
        "redis_info": version if may_see_details() else None,
        "endpoints": ENDPOINTS,
    }


@service_bp.route("/health", methods=["GET"])
@service_bp.response(200, HealthSchema, description="Redis answers")
@service_bp.alt_response(
    503,
    schema=HealthSchema,
    description="Redis does not answer, refuses the credentials, or is out of memory (storage full)",
)
def health() -> Any:
    """Whether Redis answers and has room, where it is (no credentials) and which background threads
    run here."""
    probe = _probe()
    backend = _timeseries_backend() if probe.version is not None else None
    body: dict[str, Any] = {
        "status": "healthy" if probe.problem is None else "unhealthy",
        "redis": {
            "connected": probe.version is not None,
            **_where(services().settings.redis),
            "version": probe.version,
            "timeseries_backend": backend,
            "error": probe.error,
        },
        "storage": probe.storage,
        "background_services": {"leaderboard_updater": services().updater.is_running},
    }
    if probe.cluster is not None:
        body["cluster"] = probe.cluster
    if not may_see_details():  # AUTH_MODE=required and no read key: the status alone
        body = {"status": body["status"]}
    if probe.problem is None:
        return render.json_response(body)
    body.update(error=probe.problem, details=None)
    response = render.json_response(body, 503)
    if probe.problem != MISCONFIGURED:
        response.headers["Retry-After"] = str(current_app.config["RETRY_AFTER_SECONDS"])
    return response


def _prefers_html() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


@dataclass(frozen=True)
class _Probe:
    """What ``/health`` learnt from Redis."""

    version: str | None
    """The server's version ("unknown" if INFO is not allowed), or None when it does not answer."""
    error: str | None = None
    """Why Redis does not answer, for people (``redis.error``)."""
    storage: StorageState | None = None
    """``"ok"``, ``"full"`` (out of memory), or None when unknown."""
    cluster: dict[str, Any] | None = None
    """On a cluster: its state, nodes, masters and slots covered."""

    @property
    def problem(self) -> str | None:
        """The ``error`` of an unhealthy answer, or None when healthy."""
        if self.version is None:
            return MISCONFIGURED if self.error == AUTH_HINT else REDIS_UNAVAILABLE
        if self.cluster is not None and self.cluster["state"] != "ok":
            return REDIS_UNAVAILABLE
        return STORAGE_FULL if self.storage == "full" else None


def _probe() -> _Probe:
    """PING, INFO server and INFO memory in one round trip (of every primary, on a cluster)."""
    client = services().redis
    if store.is_cluster(client):
        return _cluster_probe(client)
    pipe = client.pipeline(transaction=False)
    pipe.response_callbacks = _InfoAsText(pipe.response_callbacks)  # type: ignore[assignment]
    pipe.ping()
    pipe.execute_command("INFO", "server")
    pipe.execute_command("INFO", "memory")
    try:
        pong, server, memory = pipe.execute(raise_on_error=False)
    except redis.RedisError as exc:  # no connection (or refused credentials)
        return _Probe(None, AUTH_HINT if is_auth_failure(exc) else "unreachable: try again shortly")
    if isinstance(pong, redis.RedisError):  # (an error reply to PING: e.g. NOAUTH)
        return _Probe(None, AUTH_HINT if is_auth_failure(pong) else "unreachable: try again shortly")
    if isinstance(server, Exception) or isinstance(memory, Exception):  # INFO not allowed (ACL)
        return _Probe("unknown")
    version = _info_fields(server, VERSION_FIELDS).get("redis_version", "unknown")
    return _Probe(version, storage=storage_state(_info_fields(memory, MEMORY_FIELDS)))


VERSION_FIELDS = frozenset({"redis_version"})
MEMORY_FIELDS = frozenset({"used_memory", "maxmemory", "maxmemory_policy"})
"""The fields of ``INFO memory`` that :func:`~redisolar.redis_faults.storage_state` reads."""


class _InfoAsText:
    """A pipeline's reply callbacks, except INFO's: its reply stays text, and :func:`_info_fields`
    reads the few fields ``/health`` needs (redis-py's INFO parser converts every field of the
    section, most of the probe's cost)."""

    def __init__(self, callbacks: Any) -> None:
        self._callbacks = callbacks

    def __contains__(self, command: object) -> bool:
        return str(command).upper() != "INFO" and command in self._callbacks

    def __getitem__(self, command: str) -> Any:
        return self._callbacks[command]


def _info_fields(reply: bytes | str, names: frozenset[str]) -> dict[str, str]:
    """The ``names`` fields of an INFO reply (``name:value`` lines, each after a line break: the
    reply starts with its section's ``# Title`` line)."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    fields = {}
    for name in names:
        at = text.find(f"\n{name}:")
        if at >= 0:
            start = at + len(name) + 2
            end = text.find("\n", start)
            fields[name] = text[start : end if end >= 0 else len(text)].strip()
    return fields


def _cluster_probe(client: redis.Redis) -> _Probe:
    """INFO server and memory of every primary the client knows; CLUSTER INFO and NODES of the first
    that answers."""
    answers = []
    for node in store.node_clients(client):
        pipe = node.pipeline(transaction=False)
        pipe.info("server")
        pipe.info("memory")
        pipe.cluster("INFO")
        pipe.cluster("NODES")
        try:
            answers.append(pipe.execute())
        except redis.RedisError as exc:
            if is_auth_failure(exc):
                return _Probe(None, AUTH_HINT)
    if not answers:
        return _Probe(None, "unreachable: try again shortly")
    server, _, info, nodes = answers[0]
    full = any(storage_state(memory) == "full" for _, memory, _, _ in answers)
    return _Probe(
        str(server.get("redis_version", "unknown")),
        storage="full" if full else "ok",
        cluster=_cluster(info, nodes),
    )


def _cluster(info: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``cluster`` part of ``/health`` from one node's CLUSTER INFO and CLUSTER NODES."""
    masters = [
        n for n in nodes.values() if "master" in n["flags"] and "fail" not in n["flags"] and n["slots"]
    ]
    return {
        "state": str(info.get("cluster_state")),
        "nodes": int(info.get("cluster_known_nodes", 0)),
        "masters": len(masters),
        "slots_covered": int(info.get("cluster_slots_ok", 0)),
    }


def _redis_version() -> str | None:
    """The server's version ("unknown" if INFO is not allowed), or None when it does not answer."""
    return _probe().version


def _timeseries_backend() -> str | None:
    try:
        return services().timeseries.backend.name
    except redis.RedisError:
        return None


@lru_cache(maxsize=16)
def _where(config: Config) -> dict[str, Any]:
    """Where ``config`` points: url (without credentials), host, port, db, key prefix (worked out
    once per configuration: callers copy it into their bodies)."""
    place: dict[str, Any] = {
        "url": config.describe(),
        "host": config.redis_host,
        "port": config.redis_port,
        "db": config.redis_db,
        "key_prefix": config.redis_key_prefix,
    }
    if config.redis_url:
        parts = urlsplit(config.redis_url)
        unix = parts.scheme == "unix"
        db = parse_qs(parts.query).get("db", [""])[0] or ("" if unix else parts.path.strip("/"))
        place.update(
            host=parts.path if unix else parts.hostname,
            port=None if unix else parts.port,
            db=int(db) if db.isdigit() else 0,
        )
    return place

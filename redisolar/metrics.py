"""What ``GET /metrics`` reports, in Prometheus' text format, summed over every process of a server.

Decisions:

- **prometheus_client**, Prometheus' own Python client, in its multiprocess mode: ``redisolar serve``
  (and ``demo``) creates a private directory before it forks
  (:func:`~redisolar.metrics_dir.multiprocess_dir`), every process writes its samples to
  memory-mapped files there, and a scrape of any worker sums them all (:func:`exposition`). A worker
  that dies is marked dead (:func:`~redisolar.metrics_dir.mark_dead`; its counters keep counting in
  the totals, as a counter must). The directory is removed when the server exits. The mode is fixed
  when ``prometheus_client`` is first imported, so nothing on the CLI's import path imports this
  module. Without the directory (tests, ``flask run``) the metrics are this process's own.
- **Redis round trips** are timed at one place, the services' client (:func:`instrument_redis`):
  every command (``execute_command``: commands, scripts, locks) and every pipeline's ``execute``,
  labelled with the command (``PIPELINE``/``MULTI`` for a pipeline). redis-py 8's own hooks
  (``redis.observability``) record the same points but only into an OpenTelemetry meter provider,
  whose Prometheus exporter knows nothing of worker processes; wiring it would add two dependencies
  and still not sum the workers.
- **Labels are bounded**: the route is Flask's URL rule (``/api/sites/<site_id:site_id>``), never the
  raw path (``<unmatched>`` when no rule matched); an unknown HTTP method is ``other``.
- ``/metrics`` does **not** count itself: a scrape is neither in the request counters nor in the
  latency histograms (Prometheus records each scrape itself: ``up``, ``scrape_duration_seconds``), so
  the request rates are the clients' traffic alone.
- Rejected readings count refused requests to the two readings routes, by reason (a refused batch
  counts once); readings ingested count the readings stored (``count`` of a batch's answer).
- Open alerts by kind (a gauge set by each evaluation pass, ``livemax``: the evaluating process's
  value) and the alert evaluator's runs by outcome and their durations (:mod:`redisolar.alerts`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

from redisolar.dao.scripts import ROUND_TRIP_OBSERVER
from redisolar.metrics_dir import ENV_DIR

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: a request served from Redis takes 1-10 ms here; beyond 10 s something is wrong."""
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5)
"""Seconds: a round trip on one machine takes 0.1-1 ms; a slow script or network shows above."""
RECONCILE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"

HTTP_REQUESTS = Counter(
    "redisolar_http_requests", "HTTP requests answered, by route, method and status",
    ["route", "method", "status"],
)  # fmt: skip
HTTP_LATENCY = Histogram(
    "redisolar_http_request_duration_seconds", "Time to answer an HTTP request, by route and method",
    ["route", "method"], buckets=LATENCY_BUCKETS,
)  # fmt: skip
READINGS_INGESTED = Counter("redisolar_readings_ingested", "Meter readings stored through the API")
READINGS_REJECTED = Counter(
    "redisolar_readings_rejected", "Requests posting readings that were refused, by reason", ["reason"]
)
RATE_LIMITED = Counter(
    "redisolar_rate_limited_requests", "Requests refused with 429 by a rate limit, by budget", ["budget"]
)
REDIS_LATENCY = Histogram(
    "redisolar_redis_round_trip_seconds", "Redis round trips (a command or a pipeline), by command",
    ["command"], buckets=REDIS_BUCKETS,
)  # fmt: skip
REDIS_ERRORS = Counter(
    "redisolar_redis_errors", "Redis calls that raised, by command and error class", ["command", "error"]
)
RECONCILE_RUNS = Counter(
    "redisolar_reconcile_runs", "Leaderboard reconciles, by outcome (done, skipped, failed)", ["outcome"]
)
RECONCILE_LATENCY = Histogram(
    "redisolar_reconcile_duration_seconds", "Time of one leaderboard reconcile", buckets=RECONCILE_BUCKETS
)

ALERT_EVALUATIONS = Counter(
    "redisolar_alert_evaluations", "Alert evaluation passes, by outcome (done, skipped, failed)", ["outcome"]
)
ALERT_EVALUATION_LATENCY = Histogram(
    "redisolar_alert_evaluation_duration_seconds",
    "Time of one alert evaluation pass",
    buckets=RECONCILE_BUCKETS,
)
ALERTS_OPEN = Gauge(
    "redisolar_alerts_open",
    "Open alerts by kind, as of the last evaluation",
    ["kind"],
    multiprocess_mode="livemax",
)


# -- scrapes ----------------------------------------------------------------------------------------
def exposition() -> tuple[bytes, str]:
    """The text of a scrape and its content type: every process's samples in multiprocess mode."""
    if not os.environ.get(ENV_DIR):
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


# -- recording ---------------------------------------------------------------------------------------
def record_request(route: str | None, method: str, status: int, seconds: float) -> None:
    """One answered request."""
    method = method if method in METHODS else "other"
    children = _REQUEST_CHILDREN.get((route, method, status))
    if children is None:
        children = _request_children(route, method, status)
    children[0].inc()
    children[1].observe(seconds)


_REQUEST_CHILDREN: dict[tuple[str | None, str, int], tuple[Any, Any]] = {}
"""The labelled counter and histogram of each (route, method, status) seen: prometheus_client's
``labels()`` validates and looks up its labels under a lock on every call, a cost per request (a
few routes × methods × statuses: bounded). Children stay valid across a fork (multiprocess values
follow the pid)."""


def _request_children(route: str | None, method: str, status: int) -> tuple[Any, Any]:
    name = route or UNMATCHED
    children = (HTTP_REQUESTS.labels(name, method, str(status)), HTTP_LATENCY.labels(name, method))
    _REQUEST_CHILDREN[route, method, status] = children
    return children


def record_reconcile(outcome: str, seconds: float) -> None:
    """One leaderboard reconcile (:class:`~redisolar.tasks.leaderboard_updater.LeaderboardUpdater`)."""
    RECONCILE_RUNS.labels(outcome).inc()
    if outcome == "done":
        RECONCILE_LATENCY.observe(seconds)


def record_alert_evaluation(outcome: str, seconds: float) -> None:
    """One alert evaluation pass (:class:`~redisolar.alerts.evaluator.AlertEvaluator`)."""
    ALERT_EVALUATIONS.labels(outcome).inc()
    if outcome == "done":
        ALERT_EVALUATION_LATENCY.observe(seconds)


def record_open_alerts(by_kind: dict[str, int], kinds: tuple[str, ...]) -> None:
    """The open alerts of each of ``kinds`` (0 for a kind with none)."""
    for kind in kinds:
        ALERTS_OPEN.labels(kind).set(by_kind.get(kind, 0))


def instrument_redis(client: Any) -> None:
    """Time every command and pipeline of ``client`` (a ``Redis`` or ``RedisCluster``), in place."""
    if getattr(client, "_redisolar_timed", False):
        return
    client.execute_command = _timed(client.execute_command, None)
    make_pipeline = client.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make_pipeline(*args, **kwargs)
        pipe.execute = _timed(pipe.execute, "MULTI" if getattr(pipe, "transaction", False) else "PIPELINE")
        return pipe

    client.pipeline = pipeline
    setattr(client, ROUND_TRIP_OBSERVER, _observe_round_trip)  # (redisolar.dao.scripts' lean round trips)
    client._redisolar_timed = True


def _observe_round_trip(command: str, seconds: float) -> None:
    latency = _LATENCY_CHILDREN.get(command)
    if latency is None:
        latency = _LATENCY_CHILDREN[command] = REDIS_LATENCY.labels(command)
    latency.observe(seconds)


def _timed(call: Callable[..., Any], name: str | None) -> Callable[..., Any]:
    """``call`` observed in :data:`REDIS_LATENCY` and :data:`REDIS_ERRORS` (``name``: the label, else
    the command's own name)."""

    def timed(*args: Any, **kwargs: Any) -> Any:
        command = name or _command_name(args)
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            REDIS_ERRORS.labels(command, type(exc).__name__).inc()
            raise
        finally:
            _observe_round_trip(command, time.perf_counter() - start)

    return timed


_LATENCY_CHILDREN: dict[str, Any] = {}
"""The latency histogram of each command name seen (bounded: names are cut to 32 characters and come
from this code's commands), as :data:`_REQUEST_CHILDREN`."""


def _command_name(args: tuple[Any, ...]) -> str:
    if not args:
        return "?"
    first = args[0]
    text = first.decode("ascii", "replace") if isinstance(first, bytes) else str(first)
    return text.upper()[:32]

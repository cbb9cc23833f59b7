"""The evaluator in ``redisolar serve``, in the one process that runs the leaderboard reconciler:
Granian's main process (:func:`with_evaluator`) or, under gunicorn, the worker that hosts it
(:func:`start_in_worker`, :func:`stop_in_worker`); every ``ALERT_EVALUATION_SECONDS`` (0: off). Each
pass also sets the ``/metrics`` gauge of open alerts by kind. ``prometheus_client`` is imported only
when a server starts (never on the CLI's import path: :mod:`redisolar.metrics`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis

from redisolar.alerts.evaluator import AlertEvaluator
from redisolar.alerts.rules import KINDS
from redisolar.alerts.service import EXTENSION, evaluator

log = logging.getLogger(__name__)

StartStop = tuple[Callable[[], None], Callable[[], None]]


def with_evaluator(app: Any, reconciler: StartStop | None) -> StartStop | None:
    """(start, stop) of ``reconciler`` (may be None) and of ``app``'s alert evaluator together."""
    interval = float(app.config.get("ALERT_EVALUATION_SECONDS") or 0)
    if interval <= 0:
        log.info("alert evaluator off (interval 0)")
        return reconciler
    from redisolar import metrics

    alert_evaluator = evaluator(app.extensions["redisolar"])

    def on_pass(outcome: str, seconds: float) -> None:
        metrics.record_alert_evaluation(outcome, seconds)
        if outcome == "done":
            metrics.record_open_alerts(alert_evaluator.last_open_by_kind, KINDS)

    alert_evaluator.on_pass = on_pass

    def start() -> None:
        if reconciler is not None:
            reconciler[0]()
        try:
            if alert_evaluator.rules.ensure_defaults():
                log.info("default alert rules stored: offline, daylight (fleet-wide)")
        except redis.RedisError:
            log.warning("the default alert rules could not be stored (Redis unavailable): next start")
        alert_evaluator.start(interval)

    def stop() -> None:
        alert_evaluator.stop()
        if reconciler is not None:
            reconciler[1]()

    return start, stop


def start_in_worker(app: Any) -> None:
    """(gunicorn, the worker that hosts the reconciler) Start ``app``'s evaluator, if not off."""
    started = with_evaluator(app, None)
    if started is not None:
        started[0]()


def stop_in_worker(app: Any) -> None:
    """(gunicorn, that worker exiting) Tell its evaluator to stop, without waiting (a daemon)."""
    services = (getattr(app, "extensions", None) or {}).get("redisolar")
    found = services.extensions.get(EXTENSION) if services is not None else None
    if isinstance(found, AlertEvaluator):
        found.stop(wait=False)

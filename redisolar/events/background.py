"""Where the webhook deliverer runs: with the reconciler, one per server (the consumer group makes
several servers safe). Under Granian (``redisolar serve``, ``demo``) in the main process
(:func:`with_deliverer`); under gunicorn (``--server gunicorn``) in the one worker the master
designates for the reconciler (:func:`start_in_worker`, :func:`stop_in_worker`, called by
:mod:`redisolar.server`'s hooks). ``WEBHOOK_DELIVERY`` = false (config) turns it off, e.g. for a server
that only serves streams while another delivers."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from redisolar.events.deliverer import Deliverer

log = logging.getLogger(__name__)

StartStop = tuple[Callable[[], None], Callable[[], None]]

EXTENSION = "redisolar.events.deliverer"
"""Where a gunicorn worker keeps its deliverer (``Services.extensions``), to stop it on exit."""


def _deliverer(app: Any) -> Deliverer | None:
    """``app``'s webhook deliverer, not started (None when ``WEBHOOK_DELIVERY`` is off)."""
    if not app.config.get("WEBHOOK_DELIVERY", True):
        log.info("webhook deliverer off (WEBHOOK_DELIVERY)")
        return None
    services = app.extensions["redisolar"]
    return Deliverer(services.redis, services.keys)


def with_deliverer(app: Any, others: StartStop | None) -> StartStop | None:
    """(start, stop) of ``others`` (may be None) and of ``app``'s webhook deliverer together."""
    deliverer = _deliverer(app)
    if deliverer is None:
        return others

    def start() -> None:
        if others is not None:
            others[0]()
        deliverer.start()
        log.info("webhook deliverer started in the main process %d", os.getpid())

    def stop() -> None:
        deliverer.stop()
        if others is not None:
            others[1]()

    return start, stop


def start_in_worker(app: Any) -> None:
    """(gunicorn, the worker that hosts the reconciler) Start ``app``'s deliverer, unless it is off."""
    deliverer = _deliverer(app)
    if deliverer is None:
        return
    app.extensions["redisolar"].extensions[EXTENSION] = deliverer
    deliverer.start()
    log.info("webhook deliverer started in worker %d", os.getpid())


def stop_in_worker(app: Any, wait: float = 2.0) -> None:
    """(gunicorn, that worker exiting) Stop its deliverer, waiting at most ``wait`` seconds for the
    delivery pass in flight (its thread is a daemon: an exiting worker need not wait longer)."""
    services = (getattr(app, "extensions", None) or {}).get("redisolar")
    found = services.extensions.pop(EXTENSION, None) if services is not None else None
    if isinstance(found, Deliverer):
        found.stop(timeout=wait)
        log.info("webhook deliverer stopped in worker %d", os.getpid())

"""Where the webhook deliverer runs: with the reconciler (``redisolar serve`` and ``demo``: Granian's main
process, one per server; the consumer group makes several servers safe). ``WEBHOOK_DELIVERY`` = false
(config) turns it off, e.g. for a server that only serves streams while another delivers."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from redisolar.events.deliverer import Deliverer

log = logging.getLogger(__name__)

StartStop = tuple[Callable[[], None], Callable[[], None]]


def with_deliverer(app: Any, others: StartStop | None) -> StartStop | None:
    """(start, stop) of ``others`` (may be None) and of ``app``'s webhook deliverer together."""
    if not app.config.get("WEBHOOK_DELIVERY", True):
        log.info("webhook deliverer off (WEBHOOK_DELIVERY)")
        return others
    services = app.extensions["redisolar"]
    deliverer = Deliverer(services.redis, services.keys)

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

"""Events: what changed in the fleet, appended to a Redis Stream, read by Server-Sent Events clients
(``GET /api/events``) and delivered to admin-registered webhooks.

- :mod:`~redisolar.events.stream`: :func:`publish` and the reads (the stream's key, retention, the
  cost on a cluster);
- :mod:`~redisolar.events.webhooks`: the registered webhooks, their secrets and delivery logs;
- :mod:`~redisolar.events.signing`: the ``X-RediSolar-Signature`` header (HMAC-SHA256 over
  ``timestamp.body``);
- :mod:`~redisolar.events.deliverer`: the background deliverer (a consumer group, retries with
  exponential backoff);
- :mod:`~redisolar.events.sse`: the Server-Sent Events body of ``GET /api/events``.

Nothing here runs at import time.
"""

from redisolar.events.stream import Event, publish, reading_calls

__all__ = ["Event", "publish", "reading_calls"]
